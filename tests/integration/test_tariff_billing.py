"""A month of time-of-use + tiered consumption billed through the database, priced by hand.

The shop draws a steady 2 kW, so every half-hour reading adds exactly 1.00 kWh. Its tariff:

    band periods (local)   00-08 valley · 08-10 flat · 10-12 peak · 12-14 sharp · 14-19 peak ·
                           19-23 flat · 23-24 valley
    per day                valley 18 kWh · flat 12 · peak 14 · sharp 4 = 48 kWh
    band prices            sharp 1.30 · peak 1.10 · flat 0.70 · valley 0.30
    day's cost             4 × 1.30 + 14 × 1.10 + 12 × 0.70 + 18 × 0.30 = 34.40
    tiers (per month)      0 kWh: +0.00 · 1,000 kWh: +0.05 · 2,000 kWh: +0.30

November 2026 has 30 days: 1,440 kWh. Band prices: 30 × 34.40 = 1,032.00. Tier surcharge on the
440 kWh past 1,000: 440 × 0.05 = 22.00. The month costs 1,054.00, to the cent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from billing import pricing
from billing.charging import FinalReading, charge_readings
from schema.db import unit_of_work
from schema.models import (
    Account,
    Alarm,
    ChargeDaily,
    LedgerEntry,
    Meter,
    MeterBilling,
    Operator,
)
from tests.factories import POLICY, make_site, open_account

SHANGHAI = POLICY.tz
MONTH_START = datetime(2026, 11, 1, tzinfo=SHANGHAI)

SPEC: dict[str, Any] = {
    "kind": "tou_tiered",
    "band_prices": {"sharp": "1.30", "peak": "1.10", "flat": "0.70", "valley": "0.30"},
    "plans": {
        "standard": [
            {"start": "00:00", "band": "valley"},
            {"start": "08:00", "band": "flat"},
            {"start": "10:00", "band": "peak"},
            {"start": "12:00", "band": "sharp"},
            {"start": "14:00", "band": "peak"},
            {"start": "19:00", "band": "flat"},
            {"start": "23:00", "band": "valley"},
        ]
    },
    "seasons": [{"name": "all year", "plan": "standard"}],
    "tiers": [
        {"from_kwh": "0", "surcharge": "0"},
        {"from_kwh": "1000", "surcharge": "0.05"},
        {"from_kwh": "2000", "surcharge": "0.30"},
    ],
    "tier_period": "month",
}


def raised(spec: dict[str, Any], by: str) -> dict[str, Any]:
    prices = {band: str(Decimal(p) + Decimal(by)) for band, p in spec["band_prices"].items()}
    return {**spec, "band_prices": prices}


def shop_on_tariff(url: str, *, change_on_16th: bool = False) -> tuple[int, int]:
    with unit_of_work(url) as s:
        site = make_site(s)
        tariff = pricing.create_tariff(
            s, name="Commercial TOU 2026", spec=SPEC, effective_from=MONTH_START,
            operator=site.admin, now=MONTH_START - timedelta(days=1),
        )
        if change_on_16th:
            pricing.add_version(
                s, tariff.id, spec=raised(SPEC, "0.10"),
                effective_from=datetime(2026, 11, 16, tzinfo=SHANGHAI),
                operator=site.admin, now=MONTH_START - timedelta(days=1),
            )
        meter = site.meters[0]
        meter.tariff_id = tariff.id
        account_id = open_account(s, site, meter)
        return account_id, meter.id


def bill_the_month(url: str, account_id: int, meter_id: int) -> Decimal:
    with unit_of_work(url) as s:
        s.get_one(Account, account_id).balance = Decimal(0)  # only charges from here on
    readings = [
        FinalReading(meter_id, MONTH_START + timedelta(minutes=30 * i), Decimal(i))
        for i in range(30 * 48 + 1)
    ]
    for day in range(31):
        batch = readings[day * 48 : day * 48 + 49]
        with unit_of_work(url) as s:
            charge_readings(s, batch, policy=POLICY, now=batch[-1].at)
    with unit_of_work(url) as s:
        total = s.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.kind == "charge"))
        assert total is not None
        assert s.get_one(Meter, meter_id).band_source == "time"
        return -total


def test_a_month_of_tou_and_tiered_consumption_matches_the_hand_priced_bill(db_url: str) -> None:
    account_id, meter_id = shop_on_tariff(db_url)
    assert bill_the_month(db_url, account_id, meter_id) == Decimal("1054.00")


def test_the_month_is_kept_per_day_and_band_for_cost_reports(db_url: str) -> None:
    """charge_daily: each local day holds valley 18 kWh (5.40), flat 12 (8.40), peak 14 (15.40)
    and sharp 4 (5.20) until the tier surcharge starts on day 21 (the 1,000th kWh); the month's
    rows add up to the bill, 1,054.00, and the half hour before midnight belongs to its day."""
    account_id, meter_id = shop_on_tariff(db_url)
    bill_the_month(db_url, account_id, meter_id)
    with unit_of_work(db_url) as s:
        rows = s.scalars(select(ChargeDaily).order_by(ChargeDaily.on_date, ChargeDaily.band)).all()
    first_day = {row.band: (row.energy_kwh, row.cost) for row in rows if row.on_date.day == 1}
    assert first_day == {
        "valley": (Decimal(18), Decimal("5.40")),
        "flat": (Decimal(12), Decimal("8.40")),
        "peak": (Decimal(14), Decimal("15.40")),
        "sharp": (Decimal(4), Decimal("5.20")),
    }
    assert {row.on_date.day for row in rows} == set(range(1, 31))
    assert sum(row.energy_kwh for row in rows) == Decimal(1440)
    assert sum(row.cost for row in rows) == Decimal("1054.00")
    last_day = {row.band: row.cost for row in rows if row.on_date.day == 30}
    assert last_day["valley"] == Decimal("18") * Decimal("0.35")  # past 1,000 kWh: +0.05


def test_a_tariff_change_mid_month_prices_the_second_half_at_the_new_prices(db_url: str) -> None:
    """From 16 November every band costs 0.10 more: 15 days × 48 kWh × 0.10 = 72.00 more. The
    tier counter carries on through the change, so the surcharge is still 22.00."""
    account_id, meter_id = shop_on_tariff(db_url, change_on_16th=True)
    assert bill_the_month(db_url, account_id, meter_id) == Decimal("1126.00")


def test_a_scheduled_change_cannot_start_in_the_past(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        site = make_site(s)
        tariff = pricing.create_tariff(s, name="T", spec=SPEC, effective_from=MONTH_START,
                                       operator=site.admin, now=MONTH_START)
    with unit_of_work(db_url) as s:
        admin = s.get_one(Operator, site.admin.id)
        try:
            pricing.add_version(s, tariff.id, spec=raised(SPEC, "0.1"),
                                effective_from=MONTH_START + timedelta(days=1), operator=admin,
                                now=MONTH_START + timedelta(days=2))
        except pricing.BillingError as exc:
            assert "not in the past" in str(exc)
        else:
            raise AssertionError("a change in the past was accepted")


def test_a_band_the_tariff_does_not_price_falls_back_to_our_clock(db_url: str) -> None:
    """The meter says 2 kWh were 'deep_valley'; the tariff has no such band. The interval
    (10:00-11:00, all peak by our clock) is priced by time instead: 2 × 1.10 = 2.20."""
    account_id, meter_id = shop_on_tariff(db_url)
    start = datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI)
    bands = {"sharp": Decimal(0), "peak": Decimal(0), "flat": Decimal(0),
             "valley": Decimal(0), "deep_valley": Decimal("100")}
    later = {**bands, "deep_valley": Decimal("102")}
    with unit_of_work(db_url) as s:
        s.get_one(Account, account_id).balance = Decimal(0)
        charge_readings(s, [FinalReading(meter_id, start, Decimal("100"), bands),
                            FinalReading(meter_id, start + timedelta(hours=1), Decimal("102"),
                                         later)], policy=POLICY, now=start)
        assert s.get_one(Account, account_id).balance == Decimal("-2.2000")
        assert s.get_one(Meter, meter_id).band_source == "time"


def test_readings_no_tariff_version_covers_wait_with_an_alarm(db_url: str) -> None:
    account_id, meter_id = shop_on_tariff(db_url)
    before = MONTH_START - timedelta(hours=2)  # the tariff starts on 1 November
    with unit_of_work(db_url) as s:
        balance = s.get_one(Account, account_id).balance
        for minutes in (0, 30, 60):
            charge_readings(s, [FinalReading(meter_id, before + timedelta(minutes=minutes),
                                             Decimal(100 + minutes))], policy=POLICY, now=before)
        assert s.get_one(Account, account_id).balance == balance
        (alarm,) = s.scalars(select(Alarm)).all()  # raised once, not per reading
        assert alarm.kind == "tariff_error"
        assert s.get_one(MeterBilling, meter_id).billed_at == before  # nothing moved on
        s.get_one(Meter, meter_id).tariff_id = None  # mended: the site's flat price applies
    with unit_of_work(db_url) as s:
        charge_readings(s, [FinalReading(meter_id, before + timedelta(minutes=90),
                                         Decimal(190))], policy=POLICY, now=before)
        # the whole 90 kWh since the last billed reading, at the default 1.20
        assert s.get_one(Account, account_id).balance == balance - Decimal("108.00")
        (alarm,) = s.scalars(select(Alarm)).all()
        assert alarm.cleared_at == before + timedelta(minutes=90)  # priced again: cleared


def test_a_holiday_in_the_calendar_uses_the_holiday_plan(db_url: str) -> None:
    """With a holiday plan of valley all day, 2 kWh at noon on a holiday cost 2 × 0.30 = 0.60
    instead of sharp's 2 × 1.30."""
    spec = {**SPEC, "plans": {**SPEC["plans"], "holiday": [{"start": "00:00", "band": "valley"}]},
            "holiday_plan": "holiday"}
    noon = datetime(2026, 11, 11, 12, 0, tzinfo=SHANGHAI)
    with unit_of_work(db_url) as s:
        site = make_site(s)
        tariff = pricing.create_tariff(s, name="With holidays", spec=spec,
                                       effective_from=MONTH_START, operator=site.admin,
                                       now=MONTH_START)
        pricing.set_holiday(s, noon.date(), name="Mall anniversary 商场周年庆",
                            operator=site.admin, now=MONTH_START)
        site.meters[0].tariff_id = tariff.id
        account_id = open_account(s, site, site.meters[0])
        meter_id = site.meters[0].id
    with unit_of_work(db_url) as s:
        charge_readings(s, [FinalReading(meter_id, noon, Decimal("10")),
                            FinalReading(meter_id, noon + timedelta(hours=1), Decimal("12"))],
                        policy=POLICY, now=noon)
        assert s.get_one(Account, account_id).balance == Decimal("-0.6000")
