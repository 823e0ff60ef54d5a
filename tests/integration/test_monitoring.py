"""Monitoring read side on SQLite and PostgreSQL: the batch-operations grid (states, days left,
a fixed number of queries), lost contact, alarms and their acknowledgement, command progress."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from billing import accounts, control, ledger, monitoring, operators, sales
from billing.dispatch import send_batch
from billing.errors import BillingError, NotFound, PermissionDenied
from billing.views import balance_info
from schema.db import get_engine, unit_of_work
from schema.models import Alarm, AuditEntry, Command, Gateway, Meter, Operator
from tests.factories import POLICY, T0, Site, make_site, open_account

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = T0 + timedelta(days=10)  # 2026-11-12 10:00 in Shanghai


def sell(session: Session, site: Site, account_id: int, amount: str, key: str) -> None:
    sales.sell(session, account_id=account_id, amount=amount, payment_method="cash",
               idempotency_key=key, operator=site.admin, now=T0, policy=POLICY)


def charge(session: Session, account_id: int, meter: Meter, amount: str, at: datetime) -> None:
    account = ledger.lock_account(session, account_id)
    before = account.balance
    ledger.post(session, account, kind="charge", amount=-Decimal(amount),
                idempotency_key=f"charge:{meter.id}:{at.isoformat()}", effective_at=at,
                recorded_at=at, meter_id=meter.id)
    control.after_balance_change(session, account, before, policy=POLICY, now=at)


@contextmanager
def counting_selects(url: str) -> Iterator[list[str]]:
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = get_engine(url)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)


class TestMeterGrid:
    def test_each_meter_shows_the_state_its_account_and_contact_give_it(self, db_url: str) -> None:
        with unit_of_work(db_url) as s:
            site = make_site(s, meters=6)
            m = site.meters
            healthy = open_account(s, site, m[0], number="10001")
            low = open_account(s, site, m[1], number="10002")
            very_low = open_account(s, site, m[2], number="10003")
            open_account(s, site, m[3], number="10004")  # never paid: balance 0, arrears
            lost = open_account(s, site, m[5], number="10006")
            sell(s, site, healthy, "200", "a")
            sell(s, site, low, "40", "b")
            sell(s, site, very_low, "15", "c")
            sell(s, site, lost, "500", "d")
            m[5].lost_since = T0 + timedelta(hours=3)
            m[0].relay, m[0].power_protect = "closed", True
            m[0].last_reading_at = T0 + timedelta(hours=1)
            s.add(Meter(serial="M-SPARE", profile="acrel_dtsy1352", gateway=site.gateway,
                        bus_address=99))  # in the store room: no unit, no account

        with unit_of_work(db_url) as s:
            grid = {row.meter: row for row in monitoring.meter_grid(s, NOW, SHANGHAI)}

        assert {serial: row.state for serial, row in grid.items()} == {
            "M00001": "opened", "M00002": "alarm1", "M00003": "alarm2", "M00004": "arrears",
            "M00005": "not_opened", "M00006": "lost", "M-SPARE": "not_opened",
        }
        first = grid["M00001"]
        assert (first.unit, first.building, first.floor, first.gateway) == (
            "A101", "Building A", "A1F", "GW-01")
        assert (first.account, first.tenant, first.balance) == (
            "10001", "Lucky Noodle House 福满面馆", Decimal("200.00"))
        assert (first.relay, first.power_protect, first.alarm_level) == ("closed", True, "normal")
        assert first.last_reading_at == T0 + timedelta(hours=1)
        assert first.lost_since is None
        assert grid["M00006"].lost_since == T0 + timedelta(hours=3)
        assert grid["M00006"].alarm_level == "normal"  # lost whatever its balance
        unopened = grid["M00005"]
        assert (unopened.account, unopened.balance, unopened.alarm_level, unopened.days_left) == (
            None, None, None, None)
        spare = grid["M-SPARE"]
        assert (spare.unit, spare.building, spare.floor) == (None, None, None)
        # In building, floor and unit order; a meter without a unit last, on either database.
        assert list(grid) == ["M00001", "M00002", "M00003", "M00004", "M00005", "M00006",
                              "M-SPARE"]

    def test_a_lost_gateway_makes_its_meters_lost_since_it_went(self, db_url: str) -> None:
        with unit_of_work(db_url) as s:
            site = make_site(s, meters=2)
            site.gateway.lost_since = T0 + timedelta(hours=5)
            site.meters[1].lost_since = T0 + timedelta(hours=2)  # before the gateway went

        with unit_of_work(db_url) as s:
            grid = monitoring.meter_grid(s, NOW, SHANGHAI)

        assert [(row.state, row.lost_since) for row in grid] == [
            ("lost", T0 + timedelta(hours=5)), ("lost", T0 + timedelta(hours=2))]

    def test_days_left_comes_from_the_last_7_days_charges_as_at_the_counter(
        self, db_url: str
    ) -> None:
        with unit_of_work(db_url) as s:
            site = make_site(s, meters=3)
            steady = open_account(s, site, site.meters[0], number="10001")
            sell(s, site, steady, "200", "a")
            # 10 a day for 10 days: 100 left, lasting 10 more days at the last week's rate.
            for day in range(10):
                charge(s, steady, site.meters[0], "10", T0 + timedelta(days=day, hours=12))
            # Opened 2 days ago: averaged over its 2 days, not over 7.
            recent = accounts.open_account(
                s, number="10002", tenant_name="Metro Coffee", meter_ids=[site.meters[1].id],
                operator=site.admin, now=NOW - timedelta(days=2), policy=POLICY,
            ).id
            sales.sell(s, account_id=recent, amount="60", payment_method="cash",
                       idempotency_key="r", operator=site.admin, now=NOW - timedelta(days=2),
                       policy=POLICY)
            charge(s, recent, site.meters[1], "5", NOW - timedelta(days=1, hours=12))
            charge(s, recent, site.meters[1], "5", NOW - timedelta(hours=12))
            idle = open_account(s, site, site.meters[2], number="10003")
            sell(s, site, idle, "80", "c")

        with unit_of_work(db_url) as s:
            grid = {row.account: row for row in monitoring.meter_grid(s, NOW, SHANGHAI)}
            counter = {
                number: balance_info(s, account_id, now=NOW, tz=SHANGHAI)
                for number, account_id in (("10001", steady), ("10002", recent),
                                           ("10003", idle))
            }

        assert (grid["10001"].balance, grid["10001"].days_left) == (Decimal("100.00"),
                                                                    Decimal("10.0"))
        assert grid["10001"].runs_out_on == date(2026, 11, 22)
        assert (grid["10002"].balance, grid["10002"].days_left) == (Decimal("50.00"),
                                                                    Decimal("10.0"))
        assert grid["10003"].days_left is None  # nothing used: no estimate
        for number, info in counter.items():
            assert (grid[number].days_left, grid[number].runs_out_on) == (
                info.days_left, info.runs_out_on), number

    def test_an_account_in_arrears_has_no_days_left(self, db_url: str) -> None:
        with unit_of_work(db_url) as s:
            site = make_site(s, meters=1)
            account_id = open_account(s, site, site.meters[0])
            sell(s, site, account_id, "10", "a")
            charge(s, account_id, site.meters[0], "12", NOW - timedelta(hours=1))

        with unit_of_work(db_url) as s:
            (row,) = monitoring.meter_grid(s, NOW, SHANGHAI)

        assert (row.state, row.balance, row.days_left, row.runs_out_on) == (
            "arrears", Decimal("-2.00"), Decimal(0), date(2026, 11, 12))

    def test_the_grid_takes_the_same_few_queries_for_3_meters_or_30(self, db_url: str) -> None:
        def grow_to(meters: int) -> int:
            """Add meters (every other one opened, paid and charged); count the grid's queries."""
            with unit_of_work(db_url) as s:
                site = Site(s.scalars(select(Gateway)).one(), [],
                            s.scalars(select(Operator)).one())
                for i in range(len(s.scalars(select(Meter.id)).all()), meters):
                    meter = Meter(serial=f"N{i:04d}", profile="acrel_dtsy1352",
                                  gateway=site.gateway, bus_address=i + 1)
                    s.add(meter)
                    s.flush()
                    if i % 2:
                        account_id = open_account(s, site, meter, number=f"{10001 + i}")
                        sell(s, site, account_id, "100", f"sale-{i}")
                        charge(s, account_id, meter, "3", NOW - timedelta(days=1))
            with unit_of_work(db_url) as s, counting_selects(db_url) as statements:
                assert len(monitoring.meter_grid(s, NOW, SHANGHAI)) == meters
            return len(statements)

        with unit_of_work(db_url) as s:
            make_site(s, meters=0)
        assert grow_to(3) == grow_to(30) == 2

    def test_the_days_left_query_can_be_kept_by_the_caller(self, db_url: str) -> None:
        with unit_of_work(db_url) as s:
            site = make_site(s, meters=1)
            account_id = open_account(s, site, site.meters[0])
            sell(s, site, account_id, "100", "a")
            charge(s, account_id, site.meters[0], "10", NOW - timedelta(days=1))
        with unit_of_work(db_url) as s:
            spend = monitoring.recent_spend(s, NOW)
        assert spend == {account_id: (Decimal("-10"), NOW - timedelta(days=7))}

        with unit_of_work(db_url) as s, counting_selects(db_url) as statements:
            (row,) = monitoring.meter_grid(s, NOW, SHANGHAI, spend=spend)

        assert len(statements) == 1
        assert row.days_left == Decimal("62.9")  # 90 left at 10 a week: 1.43 a day


class TestLostContact:
    def test_lost_meters_and_gateways_longest_lost_first(self, db_url: str) -> None:
        with unit_of_work(db_url) as s:
            site = make_site(s, meters=3)
            open_account(s, site, site.meters[2])
            site.meters[2].lost_since = NOW - timedelta(hours=26, minutes=5)
            site.meters[2].last_reading_at = NOW - timedelta(hours=26, minutes=35)
            site.meters[0].lost_since = NOW - timedelta(minutes=40)
            site.gateway.lost_since = NOW - timedelta(minutes=45)
            site.gateway.last_contact_at = NOW - timedelta(minutes=50)
            s.add(Gateway(name="GW-02", host="10.0.0.9", port=502))  # answering

        with unit_of_work(db_url) as s:
            meters = monitoring.lost_meters(s, NOW)
            gateways = monitoring.lost_gateways(s, NOW)

        assert [(m.meter, m.unit, m.account, m.lost_for) for m in meters] == [
            ("M00003", "A103", "10001", timedelta(hours=26, minutes=5)),
            ("M00001", "A101", None, timedelta(minutes=40)),
        ]
        assert meters[0].last_reading_at == NOW - timedelta(hours=26, minutes=35)
        assert meters[0].tenant == "Lucky Noodle House 福满面馆"
        (gateway,) = gateways
        assert (gateway.gateway, gateway.address, gateway.meters, gateway.lost_for) == (
            "GW-01", "127.0.0.1:1502", 3, timedelta(minutes=45))
        assert gateway.last_contact_at == NOW - timedelta(minutes=50)

    def test_nothing_is_listed_when_everything_answers(self, db_url: str) -> None:
        with unit_of_work(db_url) as s:
            make_site(s, meters=2)
        with unit_of_work(db_url) as s:
            assert monitoring.lost_meters(s, NOW) == []
            assert monitoring.lost_gateways(s, NOW) == []


def raise_alarm(session: Session, meter: Meter, kind: str, at: datetime, *,
                account_id: int | None = None, cleared_at: datetime | None = None) -> int:
    alarm = Alarm(kind=kind, meter_id=meter.id, account_id=account_id, raised_at=at,
                  value="1234.50 → 12.00 kWh", detail="The meter's energy went backwards",
                  cleared_at=cleared_at)
    session.add(alarm)
    session.flush()
    return alarm.id


class TestAlarms:
    @pytest.fixture
    def alarms(self, db_url: str) -> dict[str, int]:
        with unit_of_work(db_url) as s:
            site = make_site(s, meters=2)
            account_id = open_account(s, site, site.meters[0])
            operators.create_operator(s, username="viewer", password="correct horse",
                                      role="viewer", now=T0)
            return {
                "backwards": raise_alarm(s, site.meters[0], "energy_backwards",
                                         T0 + timedelta(hours=1), account_id=account_id),
                "tariff": raise_alarm(s, site.meters[1], "tariff_error", T0 + timedelta(hours=2)),
                # 2026-11-01 23:30 in Shanghai: the day before T0's local day.
                "old": raise_alarm(s, site.meters[1], "energy_backwards",
                                   datetime(2026, 11, 1, 15, 30, tzinfo=UTC),
                                   cleared_at=T0),
            }

    def test_real_time_alarms_are_those_not_cleared_newest_first(
        self, db_url: str, alarms: dict[str, int]
    ) -> None:
        with unit_of_work(db_url) as s:
            rows = monitoring.open_alarms(s)

        assert [row.alarm_id for row in rows] == [alarms["tariff"], alarms["backwards"]]
        backwards = rows[1]
        assert (backwards.kind, backwards.meter, backwards.unit, backwards.account) == (
            "energy_backwards", "M00001", "A101", "10001")
        assert backwards.value == "1234.50 → 12.00 kWh"
        assert backwards.acknowledged_at is None

    def test_acknowledging_records_who_when_and_why_with_an_audit_row(
        self, db_url: str, alarms: dict[str, int]
    ) -> None:
        with unit_of_work(db_url) as s:
            admin = s.scalars(select(Operator).where(Operator.username == "admin")).one()
            monitoring.acknowledge_alarms(s, [alarms["tariff"]], operator=admin,
                                          note="  Meter replaced by the electrician  ", now=NOW)

        with unit_of_work(db_url) as s:
            row = next(r for r in monitoring.open_alarms(s) if r.alarm_id == alarms["tariff"])
            audit = s.scalars(
                select(AuditEntry).where(AuditEntry.action == "alarm.acknowledge")
            ).one()
        assert (row.acknowledged_at, row.acknowledged_by, row.ack_note) == (
            NOW, "admin", "Meter replaced by the electrician")
        assert row.cleared_at is None  # still open until its cause goes away
        assert (audit.actor, audit.target, audit.detail["note"]) == (
            "admin", f"alarm {alarms['tariff']}", "Meter replaced by the electrician")

    def test_a_viewer_cannot_acknowledge(self, db_url: str, alarms: dict[str, int]) -> None:
        with unit_of_work(db_url) as s:
            viewer = s.scalars(select(Operator).where(Operator.username == "viewer")).one()
            with pytest.raises(PermissionDenied):
                monitoring.acknowledge_alarms(s, [alarms["tariff"]], operator=viewer, note="",
                                              now=NOW)

    def test_one_already_acknowledged_refuses_the_whole_batch(
        self, db_url: str, alarms: dict[str, int]
    ) -> None:
        with unit_of_work(db_url) as s:
            admin = s.scalars(select(Operator).where(Operator.username == "admin")).one()
            monitoring.acknowledge_alarms(s, [alarms["tariff"]], operator=admin, note="",
                                          now=NOW)

        with unit_of_work(db_url) as s:
            admin = s.scalars(select(Operator).where(Operator.username == "admin")).one()
            with pytest.raises(BillingError, match=f"Already acknowledged: #{alarms['tariff']}"):
                monitoring.acknowledge_alarms(
                    s, [alarms["backwards"], alarms["tariff"]], operator=admin, note="",
                    now=NOW)
            with pytest.raises(NotFound, match="No such alarm: #999"):
                monitoring.acknowledge_alarms(s, [999], operator=admin, note="", now=NOW)
            with pytest.raises(BillingError, match="Choose at least one alarm"):
                monitoring.acknowledge_alarms(s, [], operator=admin, note="", now=NOW)

        with unit_of_work(db_url) as s:
            assert s.get_one(Alarm, alarms["backwards"]).acknowledged_at is None

    def test_history_takes_site_local_days_and_kinds(
        self, db_url: str, alarms: dict[str, int]
    ) -> None:
        with unit_of_work(db_url) as s:
            day_of_t0 = monitoring.alarm_history(s, date(2026, 11, 2), date(2026, 11, 2),
                                                 SHANGHAI)
            day_before = monitoring.alarm_history(s, date(2026, 11, 1), date(2026, 11, 1),
                                                  SHANGHAI)
            both = monitoring.alarm_history(s, date(2026, 11, 1), date(2026, 11, 2), SHANGHAI,
                                            kinds=["energy_backwards"])
            kinds = monitoring.alarm_kinds(s)

        assert [r.alarm_id for r in day_of_t0] == [alarms["tariff"], alarms["backwards"]]
        assert [(r.alarm_id, r.cleared_at) for r in day_before] == [(alarms["old"], T0)]
        assert [r.alarm_id for r in both] == [alarms["backwards"], alarms["old"]]
        assert kinds == ["energy_backwards", "tariff_error"]

    def test_history_refuses_dates_in_the_wrong_order(self, db_url: str) -> None:
        with unit_of_work(db_url) as s, pytest.raises(BillingError, match="start date"):
            monitoring.alarm_history(s, date(2026, 11, 3), date(2026, 11, 2), SHANGHAI)


def test_command_progress_follows_each_command(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        site = make_site(s, meters=2)
        result = send_batch(s, [m.id for m in site.meters], "trip", operator=site.admin,
                            policy=POLICY, now=T0)
        ids = [command.id for command in result.commands]
    with unit_of_work(db_url) as s:
        first = s.get_one(Command, ids[0])
        first.state, first.attempts, first.completed_at = "confirmed", 1, T0 + timedelta(seconds=4)
        first.result = "relay open (read back)"

    with unit_of_work(db_url) as s:
        rows = monitoring.command_progress(s, ids)

    assert [(r.meter, r.unit, r.kind, r.state, r.attempts) for r in rows] == [
        ("M00002", "A102", "trip", "queued", 0),
        ("M00001", "A101", "trip", "confirmed", 1),
    ]
    assert rows[1].completed_at == T0 + timedelta(seconds=4)
    assert rows[1].result == "relay open (read back)"
    with unit_of_work(db_url) as s:
        assert monitoring.command_progress(s, []) == []


def test_grid_state_priority() -> None:
    assert monitoring.grid_state(lost=True, alarm_level="arrears") == "lost"
    assert monitoring.grid_state(lost=True, alarm_level=None) == "lost"
    assert monitoring.grid_state(lost=False, alarm_level=None) == "not_opened"
    assert [monitoring.grid_state(lost=False, alarm_level=level)
            for level in control.ALARM_LEVELS] == ["opened", "alarm1", "alarm2", "arrears"]
    assert set(monitoring.STATES) == {"lost", "arrears", "alarm2", "alarm1", "opened",
                                      "not_opened"}


def test_a_closed_account_leaves_its_meter_not_opened(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        site = make_site(s, meters=1)
        account_id = open_account(s, site, site.meters[0])
        accounts.close_account(s, account_id=account_id, operator=site.admin, now=T0,
                               policy=POLICY, idempotency_key="close")
    with unit_of_work(db_url) as s:
        (row,) = monitoring.meter_grid(s, NOW, SHANGHAI)
    assert (row.state, row.account, row.balance) == ("not_opened", None, None)
