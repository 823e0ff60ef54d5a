"""Reports (报表中心) as finance and energy managers check them — on SQLite and PostgreSQL.

The shop's story: Lucky Noodle House (account 10001, meter M00001 in unit A101) buys credit at the
counter around midnight in Shanghai, one sale is reversed, some money is refunded, and its meter
is charged for what it used. The sales report must add up to the cent and put each entry on the
local day it happened; the energy analysis must show the same day's energy and charges.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import operators, reports, sales
from billing.charging import FinalReading, charge_readings
from billing.errors import BillingError, PermissionDenied
from billing.reports import Scope
from collector.readings import MeterReading
from collector.tsdb_sql import SqlReadingStore
from schema.db import unit_of_work
from schema.models import Account, Building, Floor, LedgerEntry, Meter, Operator, Unit
from tests.factories import POLICY, T0, make_site, open_account

SHANGHAI = POLICY.tz
NOV_2 = date(2026, 11, 2)
NOV_3 = date(2026, 11, 3)
LAST_SECOND_OF_NOV_2 = datetime(2026, 11, 2, 15, 59, 59, tzinfo=UTC)  # 23:59:59 in Shanghai
MIDNIGHT_NOV_3 = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)  # 00:00 on 3 Nov in Shanghai


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def operator(s: Session, username: str) -> Operator:
    return s.scalars(select(Operator).where(Operator.username == username)).one()


def ledger_before(s: Session, at: datetime) -> Decimal:
    """What a finance person would add up by hand: every entry effective before `at`."""
    total = s.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.effective_at < at))
    return total or Decimal(0)


@pytest.fixture(params=["index", "scan"])
def access_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways to the ledger's entries (see billing.reports._effective_at) give one answer."""
    monkeypatch.setattr(reports, "INDEX_SHARE", math.inf if request.param == "index" else 0.0)


@pytest.fixture
def shop(db_url: str) -> int:
    """Account 10001 with meter M00001, the story above, and a cashier; returns the account."""
    with unit_of_work(db_url) as s:
        site = make_site(s, meters=2)
        account_id = open_account(s, site, site.meters[0])
        operators.create_operator(
            s, username="cashier", display_name="Wang Fang", password="cashier pass",
            role="cashier", now=T0,
        )
    with unit_of_work(db_url) as s:
        admin, cashier = operator(s, "admin"), operator(s, "cashier")

        def sell(amount: str, method: str, when: datetime, key: str) -> sales.PostResult:
            return sales.sell(s, account_id=account_id, amount=amount, payment_method=method,
                              idempotency_key=key, operator=cashier, now=when, policy=POLICY)

        sell("100.00", "cash", LAST_SECOND_OF_NOV_2, "s1")
        sell("50.00", "card", MIDNIGHT_NOV_3, "s2")
        mistake = sell("30.00", "cash", utc(3, 2), "s3")
        sales.reverse(s, entry_id=mistake.entry.id, reason="typed 30 for 3",
                      idempotency_key="r1", operator=admin, now=utc(3, 3), policy=POLICY)
        sales.refund(s, account_id=account_id, amount="20.00", reason="overpaid",
                     idempotency_key="f1", operator=cashier, now=utc(3, 4), policy=POLICY)
    # The meter's register at 12:00, 13:00 and 14:00 Shanghai time on 3 Nov; 1.2000 per kWh,
    # so 0.0123 kWh costs 0.0148 (4 places): the report must carry those places.
    meter_id = meter_ids(db_url)["M00001"]
    with unit_of_work(db_url) as s:
        charge_readings(s, [FinalReading(meter_id, utc(3, 4), Decimal("10.0000"))],
                        policy=POLICY, now=utc(3, 4))
        charge_readings(s, [FinalReading(meter_id, utc(3, 5), Decimal("10.0123"))],
                        policy=POLICY, now=utc(3, 5))
        charge_readings(s, [FinalReading(meter_id, utc(3, 6), Decimal("12.5123"))],
                        policy=POLICY, now=utc(3, 6))
    return account_id


def meter_ids(url: str) -> dict[str, int]:
    with unit_of_work(url) as s:
        return {serial: id_ for id_, serial in s.execute(select(Meter.id, Meter.serial))}


def report(url: str, period: reports.SalesPeriod, on: date) -> reports.SalesReport:
    with unit_of_work(url) as s:
        return reports.sales_report(s, operator=operator(s, "admin"), period=period, on=on,
                                    tz=SHANGHAI)


def test_the_daily_report_adds_up_to_the_cent_and_keeps_shanghai_days(
    db_url: str, shop: int, access_path: None
) -> None:
    nov_2, nov_3 = report(db_url, "day", NOV_2), report(db_url, "day", NOV_3)

    # 23:59:59 on 2 Nov is the 2nd's; 00:00:00 on 3 Nov is the 3rd's.
    assert (nov_2.totals.sales, nov_2.totals.sales_count) == (Decimal("100.00"), 1)
    assert (nov_3.totals.sales, nov_3.totals.sales_count) == (Decimal("80.00"), 2)
    assert nov_3.totals.refunds == Decimal("20.00")
    assert (nov_3.totals.reversals, nov_3.totals.reversals_count) == (Decimal("-30.00"), 1)
    # 0.0148 + 3.0000: 2.5 kWh at 1.2000 after 0.0123 kWh.
    assert (nov_3.totals.charges, nov_3.totals.charges_count) == (Decimal("3.0148"), 2)
    assert nov_3.totals.net_sales == Decimal("30.00")

    with unit_of_work(db_url) as s:
        assert nov_2.opening == ledger_before(s, utc(1, 16)) == Decimal(0)
        assert nov_3.opening == ledger_before(s, MIDNIGHT_NOV_3) == Decimal("100.00")
        balance = s.get_one(Account, shop).balance
    assert nov_2.closing == nov_3.opening
    # opening + sales - refunds ± reversals - charges = closing, exactly
    assert nov_3.opening + Decimal("80.00") - Decimal("20.00") - Decimal("30.00") - Decimal(
        "3.0148"
    ) == nov_3.closing == balance == Decimal("126.9852")


def test_money_over_the_counter_by_payment_method_and_by_operator(db_url: str, shop: int) -> None:
    nov_3 = report(db_url, "day", NOV_3)

    by_method = {line.key: line for line in nov_3.by_method}
    assert set(by_method) == {"card", "cash"}
    assert (by_method["card"].sales_count, by_method["card"].sales) == (1, Decimal("50.00"))
    cash = by_method["cash"]
    # The reversed sale was cash, so the reversal takes cash back out of the drawer.
    assert (cash.sales, cash.refunds, cash.reversals) == (
        Decimal("30.00"), Decimal("20.00"), Decimal("-30.00")
    )
    assert cash.net == Decimal("-20.00")
    assert sum(line.net for line in nov_3.by_method) == nov_3.totals.net_sales

    by_operator = {line.key: line for line in nov_3.by_operator}
    assert set(by_operator) == {"Wang Fang (cashier)", "admin"}
    assert by_operator["Wang Fang (cashier)"].net == Decimal("60.00")
    assert by_operator["admin"].reversals_count == 1


def test_monthly_and_yearly_reports_chain_their_lines(db_url: str, shop: int) -> None:
    month = report(db_url, "month", date(2026, 11, 17))
    year = report(db_url, "year", NOV_3)

    assert (month.start_on, month.end_on) == (date(2026, 11, 1), date(2026, 11, 30))
    assert [line.start_on for line in month.lines] == [
        date(2026, 11, d) for d in range(1, 31)
    ]
    assert month.lines[1].movements.sales == Decimal("100.00")
    assert month.lines[2].movements.sales == Decimal("80.00")
    for line, following in zip(month.lines, month.lines[1:], strict=False):
        assert line.closing == following.opening
    assert month.lines[-1].closing == month.closing == year.closing

    assert [line.start_on.month for line in year.lines] == list(range(1, 13))
    assert year.lines[10].movements.sales == Decimal("180.00")
    assert year.opening == month.opening == Decimal(0)
    assert sum((line.movements.change for line in year.lines), Decimal(0)) == year.closing


def test_reports_need_the_view_permission(db_url: str, shop: int) -> None:
    with unit_of_work(db_url) as s, pytest.raises(PermissionDenied):
        reports.sales_report(s, operator=None, period="day", on=NOV_3, tz=SHANGHAI)


# --- energy --------------------------------------------------------------------------------------


def add_building_b(url: str) -> int:
    """A second building with one unit and meter M00003 (not on any account)."""
    with unit_of_work(url) as s:
        gateway_id = s.scalars(select(Meter.gateway_id)).first()
        building = Building(code="B", name="Building B")
        floor = Floor(building=building, level=1, name="B1F")
        unit = Unit(floor=floor, number="B101", name="Shop B101")
        meter = Meter(serial="M00003", profile="acrel_dtsy1352", gateway_id=gateway_id,
                      bus_address=3, unit=unit)
        s.add_all([building, floor, unit, meter])
        s.flush()
        return meter.id


def write(url: str, *readings: tuple[str, datetime, str]) -> None:
    ids = meter_ids(url)
    SqlReadingStore(url).write(
        [MeterReading(ids[serial], at, Decimal(kwh)) for serial, at, kwh in readings]
    )


def analysis(url: str, scope: Scope, start_on: date, end_on: date) -> reports.EnergyAnalysis:
    with unit_of_work(url) as s:
        query = reports.energy_query(s, operator=operator(s, "admin"), scope=scope,
                                     start_on=start_on, end_on=end_on, tz=SHANGHAI)
    return reports.energy_analysis(query, SqlReadingStore(url))


def test_energy_and_cost_per_shanghai_day_by_building_floor_and_unit(
    db_url: str, shop: int, access_path: None
) -> None:
    add_building_b(db_url)
    write(
        db_url,
        # M00001: the readings the shop was charged for (12:00, 13:00, 14:00 on 3 Nov).
        ("M00001", utc(3, 4), "10.0000"), ("M00001", utc(3, 5), "10.0123"),
        ("M00001", utc(3, 6), "12.5123"),
        # M00002: 23:30 on 2 Nov, then 00:30 on 3 Nov: the 1.5 kWh between are the 3rd's.
        ("M00002", utc(2, 15, 30), "100.00"), ("M00002", utc(2, 16, 30), "101.50"),
        ("M00003", utc(3, 1), "7.00"), ("M00003", utc(3, 9), "9.00"),
    )

    site = analysis(db_url, Scope(), NOV_2, NOV_3)
    assert site.group == "building"
    assert [(g.label, g.energy_kwh, g.cost) for g in site.groups] == [
        # M00001 2.5123 kWh and M00002 1.5 kWh (M00002's first reading starts its 2nd at 0).
        ("Building A", Decimal("4.0123"), Decimal("3.0148")),
        ("Building B", Decimal("2.00"), Decimal(0)),
    ]
    assert [(d.on, d.energy_kwh, d.cost) for d in site.days] == [
        (NOV_2, Decimal(0), Decimal(0)),
        (NOV_3, Decimal("6.0123"), Decimal("3.0148")),
    ]
    # What was charged, by tariff band: the flat default price is one rate (band '').
    assert [d.by_band for d in site.days] == [{}, {"": (Decimal("2.5123"), Decimal("3.0148"))}]

    building = analysis(db_url, Scope(building_id=building_id(db_url, "A")), NOV_3, NOV_3)
    assert [(g.label, g.energy_kwh) for g in building.groups] == [("A1F", Decimal("4.0123"))]
    floor = analysis(db_url, Scope(floor_id=floor_id(db_url, "A1F")), NOV_3, NOV_3)
    assert floor.group == "unit"
    assert [(g.label, g.energy_kwh, g.cost) for g in floor.groups] == [
        ("A101", Decimal("2.5123"), Decimal("3.0148")),
        ("A102", Decimal("1.50"), Decimal(0)),
    ]
    unit = analysis(db_url, Scope(unit_id=unit_id(db_url, "A101")), NOV_3, NOV_3)
    assert unit.group == "meter"
    assert [(g.label, g.cost) for g in unit.groups] == [("M00001", Decimal("3.0148"))]


def test_energy_is_compared_with_the_previous_period_and_trended(db_url: str, shop: int) -> None:
    # M00002 uses 1 kWh on each of 1..3 Nov and 3 kWh on each of 4..6 Nov.
    write(db_url, ("M00002", utc(1, 0), "0.00"))
    for day, kwh in ((1, 1), (2, 2), (3, 3), (4, 6), (5, 9), (6, 12)):
        write(db_url, ("M00002", utc(day, 12), f"{kwh}.00"))

    result = analysis(db_url, Scope(), date(2026, 11, 4), date(2026, 11, 6))

    assert (result.previous_start_on, result.previous_end_on) == (date(2026, 11, 1), NOV_3)
    assert (result.energy_kwh, result.previous_energy_kwh) == (Decimal(9), Decimal(3))
    assert reports.change_pct(result.energy_kwh, result.previous_energy_kwh) == Decimal("200.0")
    # The 7-day trend of 6 Nov: 1+1+1+3+3+3 over the 7 days 31 Oct .. 6 Nov.
    assert result.days[-1].trend_kwh.quantize(Decimal("0.01")) == Decimal("1.71")


def building_id(url: str, code: str) -> int:
    with unit_of_work(url) as s:
        return s.scalars(select(Building.id).where(Building.code == code)).one()


def floor_id(url: str, name: str) -> int:
    with unit_of_work(url) as s:
        return s.scalars(select(Floor.id).where(Floor.name == name)).one()


def unit_id(url: str, number: str) -> int:
    with unit_of_work(url) as s:
        return s.scalars(select(Unit.id).where(Unit.number == number)).one()


def test_a_range_that_ends_before_it_starts_is_refused(db_url: str, shop: int) -> None:
    with pytest.raises(BillingError, match="The end date is before the start date"):
        analysis(db_url, Scope(), NOV_3, NOV_2)
    with pytest.raises(BillingError, match="Choose at most 366 days"):
        analysis(db_url, Scope(), date(2025, 1, 1), NOV_3)


def test_metering_meters_show_their_registers_and_energy_over_the_range(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        make_site(s, meters=2)
        s.scalars(select(Meter).where(Meter.serial == "M00002")).one().profile = "chint_ddsu666"
    # Before the range, in it (the last reading of 3 Nov is 23:50 Shanghai time), after it.
    write(db_url, ("M00002", utc(1, 12), "500.00"), ("M00002", utc(2, 3), "510.25"),
          ("M00002", utc(3, 15, 50), "530.75"), ("M00002", utc(3, 16, 10), "531.00"),
          ("M00001", utc(2, 3), "1.00"))

    with unit_of_work(db_url) as s:
        admin = operator(s, "admin")
        assert [m.serial for m in reports.metering_meters(s, operator=admin)] == ["M00002"]
        query = reports.metering_query(s, operator=admin, start_on=NOV_2, end_on=NOV_3,
                                       tz=SHANGHAI)
    (row,) = reports.metering_energy(query, SqlReadingStore(db_url))
    assert row.model == "Chint DDSU666"
    assert (row.start_kwh, row.end_kwh, row.energy_kwh) == (
        Decimal("500.00"), Decimal("530.75"), Decimal("30.75")
    )
    assert row.last_reading_at == utc(3, 15, 50)


def test_reading_history_covers_whole_local_days(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        make_site(s, meters=1)
    write(db_url, ("M00001", LAST_SECOND_OF_NOV_2, "1.00"), ("M00001", MIDNIGHT_NOV_3, "2.00"),
          ("M00001", utc(3, 15, 59), "3.00"), ("M00001", utc(3, 16), "4.00"))

    with unit_of_work(db_url) as s:
        admin = operator(s, "admin")
        (meter,) = reports.find_meters(s, operator=admin, text="a101")
        query = reports.reading_query(s, operator=admin, meter_id=meter.id, start_on=NOV_3,
                                      end_on=NOV_3, tz=SHANGHAI)
        with pytest.raises(BillingError, match="Choose at most 31 days"):
            reports.reading_query(s, operator=admin, meter_id=meter.id,
                                  start_on=date(2026, 10, 1), end_on=NOV_3, tz=SHANGHAI)
    got = reports.reading_history(query, SqlReadingStore(db_url))
    assert [r.energy_kwh for r in got] == [Decimal("2.00"), Decimal("3.00")]
