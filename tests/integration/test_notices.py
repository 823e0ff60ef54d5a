"""Billing tells tenants and operators: messages queued with the money and the alarms, then
delivered by the sender through a GSM modem emulator on a pseudo-terminal — what arrives is
what the tenant's phone would show."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing import alarms, parameters, sales
from billing.charging import FinalReading, charge_readings
from notify.channels.gsm import GsmModem
from notify.sender import Router, Sender
from schema.db import unit_of_work
from schema.models import Account, Command, Gateway, Meter, Operator, OutboxMessage
from tests.factories import POLICY, T0, make_site, open_account
from tests.gsm_modem import ModemEmulator

TENANT_PHONE = "+8613800138000"
DUTY_PHONE = "+8613900139000"
ALERTING = replace(POLICY, alert_recipients=(DUTY_PHONE,), currency="元")


@pytest.fixture
def modem() -> Iterator[ModemEmulator]:
    emulator = ModemEmulator()
    yield emulator
    emulator.close()


def deliver(url: str, modem: ModemEmulator, at: datetime) -> list[tuple[str, str]]:
    """Run the sender once at `at`; (number, text) of what reached phones."""
    before = len(modem.arrived)
    Sender(url, Router([GsmModem(modem.port, timeout_s=2)]), tz=POLICY.tz,
           clock=lambda: at).run_once()
    return [(a.number, a.text) for a in modem.arrived[before:]]


def run_commands(url: str) -> None:
    """What the collector does with queued trip and close commands: writes them, confirmed."""
    with unit_of_work(url) as s:
        for command in s.scalars(select(Command).where(Command.state == "queued")):
            command.state = "confirmed"
            meter = s.get_one(Meter, command.meter_id)
            meter.relay = "open" if command.kind == "trip" else "closed"


def test_three_levels_three_messages_and_a_trip_then_one_confirmation_and_a_close(
    db_url: str, modem: ModemEmulator
) -> None:
    """60.00 at 1.20 a kWh, alarm 1 at 50.00 and alarm 2 at 20.00: 10 kWh → 48.00 (alarm 1),
    1 kWh more → 46.80 (nothing new), 24 → 18.00 (alarm 2), 16 → -1.20 (arrears: the meter is
    tripped and the tenant told so). A sale of 100.00 closes it and is confirmed, once."""
    with unit_of_work(db_url) as s:
        made = make_site(s)
        meter_id = made.meters[0].id
        account_id = open_account(s, made, made.meters[0])
        account = s.get_one(Account, account_id)
        account.balance, account.phone = Decimal("60.00"), TENANT_PHONE
        charge_readings(s, [FinalReading(meter_id, T0, Decimal(0))], policy=ALERTING, now=T0)
    arrived = []
    energy = Decimal(0)
    for hour, kwh in enumerate(["10", "1", "24", "16"], start=1):
        energy += Decimal(kwh)
        at = T0 + timedelta(hours=hour)
        with unit_of_work(db_url) as s:
            charge_readings(s, [FinalReading(meter_id, at, energy)], policy=ALERTING, now=at)
        arrived += deliver(db_url, modem, at)
    assert arrived == [
        (TENANT_PHONE, "账户10001余额偏低：48.00元，预计可用4.0天，请及时充值。"),
        (TENANT_PHONE, "账户10001余额严重不足：18.00元，预计可用0.4天，请及时充值。"),
        (TENANT_PHONE, "账户10001欠费1.20元，已停止供电。充值后将自动恢复供电。"),
    ]
    with unit_of_work(db_url) as s:
        assert [(c.kind, c.meter_id) for c in s.scalars(select(Command))] == [("trip", meter_id)]
    run_commands(db_url)
    with unit_of_work(db_url) as s:
        s.get_one(Account, account_id).language = "en"
        sale_at = T0 + timedelta(hours=5)
        sales.sell(s, account_id=account_id, amount="100.00", payment_method="cash",
                   idempotency_key="form-1", operator=s.get_one(Operator, made.admin.id),
                   now=sale_at, policy=ALERTING)
        # The same form posted twice (a double click) is confirmed once.
        sales.sell(s, account_id=account_id, amount="100.00", payment_method="cash",
                   idempotency_key="form-1", operator=s.get_one(Operator, made.admin.id),
                   now=sale_at, policy=ALERTING)
        assert [c.kind for c in s.scalars(select(Command).order_by(Command.id))] == [
            "trip", "close"]
    run_commands(db_url)
    assert deliver(db_url, modem, sale_at) == [
        (TENANT_PHONE, "Account 10001: recharge of 100.00 元 received. Balance 98.80 元, "
                       "enough for about 1.6 days."),
    ]
    # Arrears cleared with the sale: falling into it again tells the tenant again.
    later = sale_at + timedelta(hours=1)
    with unit_of_work(db_url) as s:
        charge_readings(s, [FinalReading(meter_id, later, energy + 83)], policy=ALERTING,
                        now=later)
    assert [text for _, text in deliver(db_url, modem, later)] == [
        "Account 10001 owes 0.80 元: power has been switched off. It comes back on by itself "
        "once you recharge.",
    ]


def test_an_account_without_a_phone_is_not_messaged(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        made = make_site(s)
        account_id = open_account(s, made, made.meters[0])
        s.get_one(Account, account_id).balance = Decimal("10.00")
        charge_readings(s, [FinalReading(made.meters[0].id, T0, Decimal(0)),
                            FinalReading(made.meters[0].id, T0 + timedelta(hours=1),
                                         Decimal(20))], policy=ALERTING, now=T0)
        assert s.get_one(Account, account_id).alarm_level == "arrears"
        assert s.scalars(select(OutboxMessage)).all() == []


def test_operators_hear_of_a_lost_gateway_once_and_again_after_it_came_back(
    db_url: str, modem: ModemEmulator
) -> None:
    """To the duty phone from the settings; once the alarm SMS number is saved on the default
    parameters page, to that number instead."""
    with unit_of_work(db_url) as s:
        made = make_site(s)
        s.get_one(Gateway, made.gateway.id).lost_since = T0
        policy = parameters.effective_policy(s, ALERTING)
    for minutes in (0, 30):  # still lost at the next cycle: told once
        with unit_of_work(db_url) as s:
            alarms.contact(s, at=T0 + timedelta(minutes=90 + minutes), policy=policy)
    assert deliver(db_url, modem, T0 + timedelta(hours=2)) == [
        (DUTY_PHONE, "通讯管理机GW-01自2026-11-02 10:00起失去联系，请检查网络和供电。"),
    ]
    with unit_of_work(db_url) as s:
        s.get_one(Gateway, made.gateway.id).lost_since = None
        alarms.contact(s, at=T0 + timedelta(hours=3), policy=policy)
        s.get_one(Gateway, made.gateway.id).lost_since = T0 + timedelta(hours=4)
        base = parameters.defaults(ALERTING, collect_interval_s=1800)
        parameters.save(s, {"alarm_sms_number": "13700137000"}, base=base,
                        operator=s.get_one(Operator, made.admin.id), now=T0)
        policy = parameters.effective_policy(s, ALERTING)
        alarms.contact(s, at=T0 + timedelta(hours=5), policy=policy)
    assert deliver(db_url, modem, T0 + timedelta(hours=5)) == [
        ("13700137000", "通讯管理机GW-01自2026-11-02 14:00起失去联系，请检查网络和供电。"),
    ]
