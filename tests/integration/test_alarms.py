"""The alarm lifecycle: balance levels, overload with hysteresis, lost contact, anomalies —
raised once while their condition lasts, acknowledged, cleared when it ends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing import alarms, monitoring, sales, site
from billing.charging import FinalReading, charge_readings
from billing.errors import BillingError
from schema.db import unit_of_work
from schema.models import Account, Alarm, Command, Gateway, Meter, Operator
from tests.factories import POLICY, T0, make_site, open_account


def alarm_log(url: str) -> list[tuple[str, str | None]]:
    """(kind, cleared or open) of every alarm, in the order raised."""
    with unit_of_work(url) as s:
        rows = s.scalars(select(Alarm).order_by(Alarm.id)).all()
        return [(a.kind, "cleared" if a.cleared_at else "open") for a in rows]


def test_a_balance_falling_through_the_levels_raises_each_once(db_url: str) -> None:
    """Alarm 1 at 50.00, alarm 2 at 20.00, at 1.20 a kWh. 60.00 → 48.00 (alarm 1) → 46.80 (still
    alarm 1: nothing new) → 18.00 (alarm 2 replaces it) → -1.20 (arrears, and a trip). A sale of
    100.00 clears arrears; consumption brings alarm 1 back, raised anew."""
    with unit_of_work(db_url) as s:
        made = make_site(s)
        meter_id = made.meters[0].id
        account_id = open_account(s, made, made.meters[0])
        s.get_one(Account, account_id).balance = Decimal("60.00")
        charge_readings(s, [FinalReading(meter_id, T0, Decimal(0))], policy=POLICY, now=T0)
    energy = Decimal(0)
    for hour, kwh in enumerate(["10", "1", "24", "16"], start=1):
        energy += Decimal(kwh)
        at = T0 + timedelta(hours=hour)
        with unit_of_work(db_url) as s:
            charge_readings(s, [FinalReading(meter_id, at, energy)], policy=POLICY, now=at)
    assert alarm_log(db_url) == [
        ("alarm1", "cleared"), ("alarm2", "cleared"), ("arrears", "open"),
    ]
    with unit_of_work(db_url) as s:
        assert s.get_one(Account, account_id).balance == Decimal("-1.20")
        assert [c.kind for c in s.scalars(select(Command))] == ["trip"]
        (arrears,) = monitoring.open_alarms(s)
        assert (arrears.kind, arrears.account, arrears.value) == ("arrears", "10001", "-1.20")
        sales.sell(s, account_id=account_id, amount="100.00", payment_method="cash",
                   idempotency_key="k1", operator=s.get_one(Operator, made.admin.id),
                   now=T0 + timedelta(hours=5), policy=POLICY)
    assert alarm_log(db_url)[-1] == ("arrears", "cleared")
    assert [a for a in alarm_log(db_url) if a[1] == "open"] == []
    at = T0 + timedelta(hours=6)
    with unit_of_work(db_url) as s:  # 98.80 → 44.80: alarm 1 again
        charge_readings(s, [FinalReading(meter_id, at, energy + 45)], policy=POLICY, now=at)
    assert alarm_log(db_url)[-1] == ("alarm1", "open")
    assert len(alarm_log(db_url)) == 4


@dataclass(frozen=True)
class Power:
    meter_id: int
    at: datetime
    power_kw: Decimal | None


def test_overload_needs_a_sustained_excess_and_clears_below_ninety_percent(db_url: str) -> None:
    """Threshold 10 kW, sustained 5 minutes: 12 kW at 0' starts the clock, 12 kW at 5' raises;
    9.5 kW (between 9 and 10) keeps the alarm open; 11 kW again raises nothing new; 8.9 kW
    clears it. A meter that dips just under the threshold before 5 minutes never raises."""
    with unit_of_work(db_url) as s:
        made = make_site(s, meters=2)
        hot, hovering = (m.id for m in made.meters)
        s.get_one(Meter, hot).overload_kw = Decimal(10)
    watch = alarms.OverloadWatch(timedelta(minutes=5))
    steps = [
        (0, "12", "12"), (5, "12", "9.9"), (10, "9.5", "10.5"), (15, "11", "9.5"),
        (20, "8.9", "10.2"),
    ]
    seen = []
    for minutes, hot_kw, hovering_kw in steps:
        at = T0 + timedelta(minutes=minutes)
        with unit_of_work(db_url) as s:
            watch.check(
                s,
                [Power(hot, at, Decimal(hot_kw)), Power(hovering, at, Decimal(hovering_kw))],
                thresholds={hot: Decimal(10)},
                default_kw=Decimal(10),
            )
        seen.append(alarm_log(db_url))
    assert seen == [
        [], [("overload", "open")], [("overload", "open")], [("overload", "open")],
        [("overload", "cleared")],
    ]
    with unit_of_work(db_url) as s:
        (alarm,) = s.scalars(select(Alarm)).all()
        assert (alarm.meter_id, alarm.value) == (hot, "12 kW > 10 kW")
        assert alarm.raised_at == T0 + timedelta(minutes=5)


def test_lost_meters_and_gateways_raise_once_and_clear_when_found(db_url: str) -> None:
    """A lost gateway raises one alarm, not one per meter behind it; a meter still lost when
    its gateway is back raises its own."""
    with unit_of_work(db_url) as s:
        made = make_site(s, meters=2)
        meter_id, gateway_id = made.meters[0].id, made.gateway.id
        spare = Gateway(name="GW-02", host="127.0.0.1", port=1503, transport="tcp",
                        lost_since=T0)
        s.add(spare)
        s.get_one(Meter, meter_id).lost_since = T0
        s.get_one(Gateway, gateway_id).lost_since = T0
    for minutes in (0, 30):  # a second cycle while still lost raises nothing more
        with unit_of_work(db_url) as s:
            alarms.contact(s, at=T0 + timedelta(minutes=90 + minutes), policy=POLICY)
    with unit_of_work(db_url) as s:
        rows = sorted(monitoring.open_alarms(s), key=lambda r: r.alarm_id)
        assert [(r.kind, r.meter, r.gateway) for r in rows] == [
            ("lost_contact", None, "GW-01"),
            ("lost_contact", None, "GW-02"),
        ]
        s.get_one(Gateway, gateway_id).lost_since = None  # the gateway answers again
    with unit_of_work(db_url) as s:
        alarms.contact(s, at=T0 + timedelta(hours=3), policy=POLICY)
        rows = sorted(monitoring.open_alarms(s), key=lambda r: r.alarm_id)
        assert [(r.meter, r.gateway, r.cleared_at) for r in rows] == [
            (None, "GW-02", None), ("M00001", None, None),
        ]
        s.get_one(Meter, meter_id).lost_since = None
    with unit_of_work(db_url) as s:
        alarms.contact(s, at=T0 + timedelta(hours=4), policy=POLICY)
        assert [r.gateway for r in monitoring.open_alarms(s)] == ["GW-02"]
        with pytest.raises(BillingError, match="alarm history"):
            site.delete_gateway(s, spare.id, operator=s.get_one(Operator, made.admin.id),
                                now=T0)


def test_acknowledging_an_anomaly_clears_it_but_not_a_lasting_condition(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        made = make_site(s)
        meter_id = made.meters[0].id
        account_id = open_account(s, made, made.meters[0])
        s.get_one(Account, account_id).balance = Decimal("30.00")
        charge_readings(s, [FinalReading(meter_id, T0, Decimal(100)),
                            FinalReading(meter_id, T0 + timedelta(hours=1), Decimal(90)),
                            FinalReading(meter_id, T0 + timedelta(hours=2), Decimal(99))],
                        policy=POLICY, now=T0)
    assert alarm_log(db_url) == [("energy_backwards", "open"), ("alarm2", "open")]
    with unit_of_work(db_url) as s:
        ids = [a.id for a in s.scalars(select(Alarm).order_by(Alarm.id))]
        monitoring.acknowledge_alarms(s, ids, operator=s.get_one(Operator, made.admin.id),
                                      note="checked on site", now=T0 + timedelta(hours=3))
    assert alarm_log(db_url) == [("energy_backwards", "cleared"), ("alarm2", "open")]
