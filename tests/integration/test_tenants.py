"""The tenant's side of an account (billing/tenants.py) on SQLite and PostgreSQL.

The story: Lucky Noodle House (10001) opens on 31 October at 08:00 with shops A101 and A102, PIN
135790 and 200.00 in cash; Tea Corner (10002) next door has A103 and PIN 246801. Prices are the
flat 1.20 per kWh. Shanghai time throughout; "now" is 2 November 10:00.

  A101: 31 Oct 09:00 reads 1000.00 (first reading), 19:00 1020.00      20.00 kWh  24.00 (31 Oct)
        1 Nov 00:00 1020.00, 12:00 1030.50                              10.50 kWh  12.60 (1 Nov)
        2 Nov 00:00 1030.50, 09:30 1033.00                               2.50 kWh   3.00 (2 Nov)
  A102: 2 Nov 00:00 500.00 (first reading), 08:00 504.25                4.25 kWh   5.10 (2 Nov)
  A103 (Tea Corner): 2 Nov 00:00 0.00, 09:00 100.00                   100.00 kWh 120.00 (2 Nov)

So Lucky Noodle used 6.75 kWh for 8.10 today, 17.25 kWh for 20.70 in November, and has
200.00 − 24.00 − 12.60 − 8.10 = 155.30 left. Since opening (2 days 2 hours) it spent 44.70, about
21.46 a day: 155.30 / 21.46 = 7.2 days left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import accounts, control, operators, sales, tenants
from billing.accounts import FirstSale
from billing.charging import charge_readings
from billing.errors import BillingError, PermissionDenied
from billing.tenants import RestoreRefused, Tenant
from schema.db import unit_of_work
from schema.models import Account, AuditEntry, Command, Meter, Operator
from tests.factories import POLICY, make_site

TZ = POLICY.tz
NOW = datetime(2026, 11, 2, 10, 0, tzinfo=TZ).astimezone(UTC)
OPENED = datetime(2026, 10, 31, 8, 0, tzinfo=TZ).astimezone(UTC)
LUCKY_PIN, TEA_PIN = "135790", "246801"


@dataclass(frozen=True)
class R:
    meter_id: int
    at: datetime
    energy_kwh: Decimal


def local(day: int, hour: float) -> datetime:
    """A Shanghai time on `day` October (31) or November (1-3), as UTC."""
    month = 10 if day == 31 else 11
    return (datetime(2026, month, day, tzinfo=TZ) + timedelta(hours=hour)).astimezone(UTC)


def ids(s: Session) -> dict[str, int]:
    found = {a.number: a.id for a in s.scalars(select(Account))}
    found.update({m.serial: m.id for m in s.scalars(select(Meter))})
    return found


def mall(url: str, *, tenant_control: bool = False) -> dict[str, int]:
    with unit_of_work(url) as s:
        site = make_site(s, meters=3)
        a101, a102, a103 = site.meters
        for meter in site.meters:
            meter.relay = "closed"
        lucky = accounts.open_account(
            s, number="10001", tenant_name="Lucky Noodle House 福满面馆", operator=site.admin,
            now=OPENED, policy=POLICY, meter_ids=[a101.id, a102.id], pin=LUCKY_PIN,
            first_sale=FirstSale("200.00", "cash", "lucky-opening"),
        )
        tea = accounts.open_account(
            s, number="10002", tenant_name="Tea Corner", operator=site.admin, now=OPENED,
            policy=POLICY, meter_ids=[a103.id], pin=TEA_PIN,
            first_sale=FirstSale("300.00", "cash", "tea-opening"),
        )
        lucky.tenant_control = tea.tenant_control = tenant_control
        s.flush()
        readings = [
            R(a101.id, local(31, 9), Decimal("1000.00")),
            R(a101.id, local(31, 19), Decimal("1020.00")),
            R(a101.id, local(1, 0), Decimal("1020.00")),
            R(a101.id, local(1, 12), Decimal("1030.50")),
            R(a101.id, local(2, 0), Decimal("1030.50")),
            R(a101.id, local(2, 9.5), Decimal("1033.00")),
            R(a102.id, local(2, 0), Decimal("500.00")),
            R(a102.id, local(2, 8), Decimal("504.25")),
            R(a103.id, local(2, 0), Decimal("0.00")),
            R(a103.id, local(2, 9), Decimal("100.00")),
        ]
        for reading in readings:
            charge_readings(s, [reading], policy=POLICY, now=reading.at)
        return ids(s)


def sign_in(url: str, number: str, pin: str, at: datetime = NOW) -> tenants.SignIn:
    with unit_of_work(url) as s:
        return tenants.sign_in(s, number, pin, now=at)


def lucky(url: str) -> Tenant:
    signed = sign_in(url, "10001", LUCKY_PIN)
    assert signed.outcome == "ok" and signed.tenant is not None
    return signed.tenant


def view(url: str, tenant: Tenant | None, account_id: int) -> tenants.TenantView:
    with unit_of_work(url) as s:
        return tenants.account_view(s, tenant=tenant, account_id=account_id, now=NOW, tz=TZ)


def test_the_tenant_signs_in_with_the_account_number_and_pin(db_url: str) -> None:
    known = mall(db_url)

    signed = sign_in(db_url, " 10001 ", LUCKY_PIN)

    assert signed.outcome == "ok"
    assert signed.tenant is not None
    assert (signed.tenant.account_id, signed.tenant.name) == (
        known["10001"], "Lucky Noodle House 福满面馆"
    )
    with unit_of_work(db_url) as s:
        stored = s.get_one(Account, known["10001"]).pin_hash
        assert stored is not None and stored.startswith("$argon2") and LUCKY_PIN not in stored
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "tenant.sign_in")).one()
        assert (entry.actor, entry.target) == ("tenant:10001", "10001")


def test_unknown_account_no_pin_and_wrong_pin_get_the_same_answer(db_url: str) -> None:
    mall(db_url)
    with unit_of_work(db_url) as s:
        site_admin = s.scalars(select(Operator)).first()
        accounts.open_account(s, number="10003", tenant_name="No PIN Ltd", operator=site_admin,
                              now=OPENED, policy=POLICY)

    assert sign_in(db_url, "99999", LUCKY_PIN).outcome == "wrong"
    assert sign_in(db_url, "10003", "000000").outcome == "wrong"
    assert sign_in(db_url, "10001", TEA_PIN).outcome == "wrong"
    assert sign_in(db_url, "10001", "").outcome == "wrong"


def test_five_wrong_pins_lock_the_account_for_fifteen_minutes(db_url: str) -> None:
    known = mall(db_url)

    outcomes = [sign_in(db_url, "10001", "111111", NOW + timedelta(seconds=i)).outcome
                for i in range(5)]

    assert outcomes == ["wrong"] * 4 + ["locked"]
    locked = sign_in(db_url, "10001", LUCKY_PIN, NOW + timedelta(minutes=14))
    assert locked.outcome == "locked"
    assert locked.locked_until == NOW + timedelta(seconds=4, minutes=15)
    # The neighbour is not affected, and the lock runs out.
    assert sign_in(db_url, "10002", TEA_PIN).outcome == "ok"
    assert sign_in(db_url, "10001", LUCKY_PIN, NOW + timedelta(minutes=16)).outcome == "ok"
    with unit_of_work(db_url) as s:
        account = s.get_one(Account, known["10001"])
        assert (account.pin_failed_attempts, account.pin_locked_until) == (0, None)
        assert s.scalars(
            select(AuditEntry.action).where(AuditEntry.action == "tenant.pin_lock")
        ).all() == ["tenant.pin_lock"]


def test_a_right_pin_resets_the_count_of_wrong_ones(db_url: str) -> None:
    mall(db_url)
    for _ in range(4):
        assert sign_in(db_url, "10001", "111111").outcome == "wrong"
    assert sign_in(db_url, "10001", LUCKY_PIN).outcome == "ok"
    assert [sign_in(db_url, "10001", "111111").outcome for _ in range(4)] == ["wrong"] * 4


def test_the_tenant_changes_the_pin_and_the_old_one_stops_working(db_url: str) -> None:
    mall(db_url)
    tenant = lucky(db_url)

    with unit_of_work(db_url) as s:
        changed = tenants.change_pin(s, tenant=tenant, current_pin=LUCKY_PIN,
                                     new_pin="864209", now=NOW)

    assert changed.outcome == "ok" and changed.tenant is not None
    assert sign_in(db_url, "10001", LUCKY_PIN).outcome == "wrong"
    assert sign_in(db_url, "10001", "864209").outcome == "ok"
    with unit_of_work(db_url) as s:
        # The session that changed it goes on; one signed in with the old PIN has ended.
        assert tenants.still_signed_in(s, changed.tenant)
        assert not tenants.still_signed_in(s, tenant)


def test_changing_the_pin_checks_the_rules_and_counts_a_wrong_current_pin(db_url: str) -> None:
    mall(db_url)
    tenant = lucky(db_url)
    with unit_of_work(db_url) as s:
        for new_pin, message in (("12345", "A PIN is 6 digits"), ("12345a", "A PIN is 6 digits"),
                                 (LUCKY_PIN, "The new PIN must differ from the current one")):
            with pytest.raises(BillingError, match=message):
                tenants.change_pin(s, tenant=tenant, current_pin=LUCKY_PIN, new_pin=new_pin,
                                   now=NOW)

    outcomes = []
    for _ in range(5):
        with unit_of_work(db_url) as s:
            outcomes.append(tenants.change_pin(s, tenant=tenant, current_pin="000000",
                                               new_pin="864209", now=NOW).outcome)

    assert outcomes == ["wrong"] * 4 + ["locked"]
    assert sign_in(db_url, "10001", LUCKY_PIN).outcome == "locked"


def test_an_operator_resets_a_forgotten_pin_and_lifts_the_lock(db_url: str) -> None:
    known = mall(db_url)
    tenant = lucky(db_url)
    for _ in range(5):
        sign_in(db_url, "10001", "111111")
    with unit_of_work(db_url) as s:
        viewer = operators.create_operator(s, username="viewer", password="correct horse",
                                           role="viewer", now=NOW)
        with pytest.raises(PermissionDenied):
            tenants.set_pin(s, operator=viewer, account_id=known["10001"], pin="555555", now=NOW)
    with unit_of_work(db_url) as s:
        admin = s.scalars(select(Operator).where(
            Operator.username == "admin")).one()
        with pytest.raises(BillingError, match="A PIN is 6 digits"):
            tenants.set_pin(s, operator=admin, account_id=known["10001"], pin="5555", now=NOW)
        tenants.set_pin(s, operator=admin, account_id=known["10001"], pin="555555", now=NOW)

    assert sign_in(db_url, "10001", "555555").outcome == "ok"
    with unit_of_work(db_url) as s:
        assert not tenants.still_signed_in(s, tenant)
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "account.set_pin")).one()
        assert (entry.actor, entry.target) == ("admin", "10001")
        assert "555555" not in str(entry.detail)


def test_a_tenant_cannot_read_or_act_on_another_account(db_url: str) -> None:
    known = mall(db_url, tenant_control=True)
    tenant = lucky(db_url)

    with pytest.raises(PermissionDenied):
        view(db_url, tenant, known["10002"])
    with pytest.raises(PermissionDenied):
        view(db_url, None, known["10001"])
    with unit_of_work(db_url) as s:
        with pytest.raises(PermissionDenied):
            tenants.restore_power(s, tenant=tenant, account_id=known["10002"],
                                  meter_id=known["M00003"], now=NOW, policy=POLICY)
        # Its own account, but the neighbour's meter.
        with pytest.raises(PermissionDenied, match="not on your account"):
            tenants.restore_power(s, tenant=tenant, account_id=known["10001"],
                                  meter_id=known["M00003"], now=NOW, policy=POLICY)


def test_the_tenants_view_against_the_worked_example(db_url: str) -> None:
    known = mall(db_url)

    shown = view(db_url, lucky(db_url), known["10001"])

    assert (shown.number, shown.tenant, shown.units) == (
        "10001", "Lucky Noodle House 福满面馆", ("A101", "A102")
    )
    assert shown.balance.balance == Decimal("155.30")
    assert shown.balance.average_daily_cost == Decimal("21.46")
    assert shown.balance.days_left == Decimal("7.2")
    assert shown.balance.alarm_level == "normal"
    assert (shown.today.energy_kwh, shown.today.cost) == (Decimal("6.75"), Decimal("8.10"))
    assert (shown.month.energy_kwh, shown.month.cost) == (Decimal("17.25"), Decimal("20.70"))
    assert len(shown.days) == 30
    assert (shown.days[0].on_date, shown.days[-1].on_date) == (date(2026, 10, 4), date(2026, 11, 2))
    used = {d.on_date: (d.energy_kwh, d.cost) for d in shown.days if d.energy_kwh}
    assert used == {
        date(2026, 10, 31): (Decimal("20.00"), Decimal("24.00")),
        date(2026, 11, 1): (Decimal("10.50"), Decimal("12.60")),
        date(2026, 11, 2): (Decimal("6.75"), Decimal("8.10")),
    }
    assert [(m.serial, m.unit, m.relay, m.refusal) for m in shown.meters] == [
        ("M00001", "A101", "closed", "not_allowed"), ("M00002", "A102", "closed", "not_allowed"),
    ]
    assert [(r.kind, r.amount, r.balance_after, r.payment_method) for r in shown.recharges] == [
        ("sale", Decimal("200.00"), Decimal("200.00"), "cash"),
    ]


def test_a_meter_moved_to_another_account_counts_only_while_it_was_held(db_url: str) -> None:
    known = mall(db_url)
    with unit_of_work(db_url) as s:
        admin = s.scalars(select(Operator)).first()
        accounts.remove_meter(s, account_id=known["10002"], meter_id=known["M00003"],
                              operator=admin, now=NOW, policy=POLICY, trip=False)
        accounts.add_meter(s, account_id=known["10001"], meter_id=known["M00003"],
                           operator=admin, now=local(3, 0), policy=POLICY)
        for reading in (R(known["M00003"], local(3, 0), Decimal("100.00")),
                        R(known["M00003"], local(3, 9.5), Decimal("110.00"))):
            charge_readings(s, [reading], policy=POLICY, now=reading.at)

    with unit_of_work(db_url) as s:
        tenant = tenants.sign_in(s, "10001", LUCKY_PIN, now=local(3, 10)).tenant
        shown = tenants.account_view(s, tenant=tenant, account_id=known["10001"],
                                     now=local(3, 10), tz=TZ)

    # 3 November: A103's 10 kWh are Lucky Noodle's; its 100 kWh of the 2nd stay Tea Corner's.
    assert (shown.today.energy_kwh, shown.today.cost) == (Decimal("10.00"), Decimal("12.00"))
    assert shown.days[-2].energy_kwh == Decimal("6.75")


def trip(url: str, meter_id: int, *, by_operator: bool = False) -> None:
    """The meter tripped and confirmed open (by billing, or by an operator)."""
    with unit_of_work(url) as s:
        meter = s.get_one(Meter, meter_id)
        admin = s.scalars(select(Operator)).first() if by_operator else None
        command = control.queue_command(s, meter, "trip", now=NOW, operator=admin,
                                        reason="test")
        command.state = "confirmed"
        meter.relay = "open"


def restore(url: str, tenant: Tenant, account_id: int, meter_id: int) -> Command:
    with unit_of_work(url) as s:
        return tenants.restore_power(s, tenant=tenant, account_id=account_id, meter_id=meter_id,
                                     now=NOW, policy=POLICY)


def test_the_tenant_restores_a_tripped_meter_where_allowed(db_url: str) -> None:
    known = mall(db_url, tenant_control=True)
    trip(db_url, known["M00001"])
    tenant = lucky(db_url)
    assert [m.refusal for m in view(db_url, tenant, known["10001"]).meters] == [None, "on"]

    command = restore(db_url, tenant, known["10001"], known["M00001"])

    assert (command.kind, command.state, command.requested_by) == ("close", "queued", None)
    with unit_of_work(db_url) as s:
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "tenant.restore_power")
        ).one()
        assert (entry.actor, entry.target, entry.detail["account"]) == (
            "tenant:10001", "M00001", "10001"
        )
    shown = view(db_url, tenant, known["10001"])
    assert [(m.restoring, m.refusal) for m in shown.meters] == [(True, "pending"), (False, "on")]
    with pytest.raises(RestoreRefused, match="already being restored"):
        restore(db_url, tenant, known["10001"], known["M00001"])


def test_restoring_is_refused_without_permission_credit_or_over_an_operator(db_url: str) -> None:
    known = mall(db_url)
    trip(db_url, known["M00001"])
    trip(db_url, known["M00002"], by_operator=True)
    tenant = lucky(db_url)
    with pytest.raises(RestoreRefused, match="has not enabled remote restore") as refused:
        restore(db_url, tenant, known["10001"], known["M00001"])
    assert refused.value.reason == "not_allowed"

    with unit_of_work(db_url) as s:
        admin = s.scalars(select(Operator)).first()
        tenants.set_tenant_control(s, operator=admin, account_id=known["10001"], allowed=True,
                                   now=NOW)
    with pytest.raises(RestoreRefused, match="switched off by the management office"):
        restore(db_url, tenant, known["10001"], known["M00002"])

    with unit_of_work(db_url) as s:
        admin = s.scalars(select(Operator)).first()
        sales.refund(s, account_id=known["10001"], amount="155.30", reason="test",
                     idempotency_key="refund-all", operator=admin, now=NOW, policy=POLICY)
    with pytest.raises(RestoreRefused, match="must be above 0") as refused:
        restore(db_url, tenant, known["10001"], known["M00001"])
    assert refused.value.reason == "no_credit"
    with unit_of_work(db_url) as s:
        assert s.scalars(select(Command).where(Command.kind == "close")).all() == []


def test_only_an_operator_with_control_lets_tenants_restore(db_url: str) -> None:
    known = mall(db_url)
    with unit_of_work(db_url) as s:
        cashier = operators.create_operator(s, username="cashier", password="correct horse",
                                            role="cashier", now=NOW)
        with pytest.raises(PermissionDenied):
            tenants.set_tenant_control(s, operator=cashier, account_id=known["10001"],
                                       allowed=True, now=NOW)


def test_a_closed_account_cannot_sign_in(db_url: str) -> None:
    known = mall(db_url)
    tenant = lucky(db_url)
    with unit_of_work(db_url) as s:
        admin = s.scalars(select(Operator)).first()
        accounts.close_account(s, account_id=known["10001"], operator=admin, now=NOW,
                               policy=POLICY, idempotency_key="close")

    assert sign_in(db_url, "10001", LUCKY_PIN).outcome == "closed"
    with pytest.raises(tenants.SignedOut):
        view(db_url, tenant, known["10001"])


def test_opening_an_account_refuses_a_bad_pin(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        site = make_site(s)
        with pytest.raises(BillingError, match="A PIN is 6 digits"):
            accounts.open_account(s, number="10001", tenant_name="Lucky", operator=site.admin,
                                  now=NOW, policy=POLICY, pin="12 34 56")
