"""Billing on a flat price, run the same way on SQLite and on the real PostgreSQL server.

Worked examples: a shop with 10.00 of credit uses electricity, goes into arrears, is tripped,
buys 50.00, and is closed again — and the ledger sums to the balance at every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing import ledger, operators
from billing.charging import charge_readings
from billing.errors import BillingError, PermissionDenied
from billing.sales import sell
from schema.db import unit_of_work
from schema.models import Account, Command, LedgerEntry, Meter
from tests.factories import POLICY, T0, make_site, open_account

PRICE = Decimal("1.2345")


@dataclass(frozen=True)
class R:
    meter_id: int
    at: datetime
    energy_kwh: Decimal


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def setup_shop(url: str, credit: str = "10.00") -> tuple[int, int]:
    with unit_of_work(url) as s:
        site = make_site(s)
        meter = site.meters[0]
        meter.price_per_kwh = PRICE
        meter.relay = "closed"
        account_id = open_account(s, site, meter)
        sell(s, account_id=account_id, amount=credit, payment_method="cash",
             idempotency_key="opening", operator=site.admin, now=T0, policy=POLICY)
        return account_id, meter.id


def charge(url: str, *readings: R) -> list[Command]:
    with unit_of_work(url) as s:
        return charge_readings(s, readings, policy=POLICY, now=readings[-1].at).commands


def balance(url: str, account_id: int) -> Decimal:
    with unit_of_work(url) as s:
        account = s.get_one(Account, account_id)
        assert ledger.ledger_sum(s, account_id) == account.balance, "ledger must sum to balance"
        return account.balance


def commands(url: str, meter_id: int) -> list[tuple[str, str]]:
    with unit_of_work(url) as s:
        rows = s.scalars(select(Command).where(Command.meter_id == meter_id).order_by(Command.id))
        return [(c.kind, c.state) for c in rows]


def test_energy_is_charged_at_the_meters_price_from_cumulative_cost(db_url: str) -> None:
    account_id, meter_id = setup_shop(db_url)
    charge(db_url, R(meter_id, at(0), Decimal("100.00")))  # first reading: the base, no charge
    assert balance(db_url, account_id) == Decimal("10.0000")

    charge(db_url, R(meter_id, at(30), Decimal("101.00")))  # 1.00 kWh × 1.2345
    assert balance(db_url, account_id) == Decimal("8.7655")

    charge(db_url, R(meter_id, at(60), Decimal("102.50")))  # 2.50 kWh to date → 3.08625 → 3.0863
    assert balance(db_url, account_id) == Decimal("6.9137")

    with unit_of_work(db_url) as s:
        charges = s.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == "charge").order_by(LedgerEntry.id)
        ).all()
        assert [(c.amount, c.energy_kwh) for c in charges] == [
            (Decimal("-1.2345"), Decimal("1.0000")),
            (Decimal("-1.8518"), Decimal("1.5000")),
        ]
        assert charges[-1].balance_after == Decimal("6.9137")


def test_the_same_reading_twice_charges_once(db_url: str) -> None:
    account_id, meter_id = setup_shop(db_url)
    charge(db_url, R(meter_id, at(0), Decimal("100.00")))
    reading = R(meter_id, at(30), Decimal("102.00"))
    charge(db_url, reading)
    charge(db_url, reading)
    charge(db_url, reading, R(meter_id, at(15), Decimal("101.00")))  # late, older reading too
    assert balance(db_url, account_id) == Decimal("10.00") - Decimal("2.4690")
    with unit_of_work(db_url) as s:
        assert ledger.entry_count(s, account_id) == 2  # the opening sale and one charge


def test_a_month_of_small_charges_does_not_drift(db_url: str) -> None:
    """1,440 half-hour readings of 0.01 kWh each: 14.40 kWh × 1.2345 = 17.7768 exactly."""
    account_id, meter_id = setup_shop(db_url, credit="100.00")
    readings = [R(meter_id, at(30 * i), Decimal("500.00") + Decimal("0.01") * i)
                for i in range(1441)]
    for start in range(0, len(readings), 240):
        charge(db_url, *readings[start:start + 240])
    assert balance(db_url, account_id) == Decimal("100.00") - Decimal("17.7768")


def test_a_reading_that_goes_backwards_charges_nothing_and_rebases(db_url: str) -> None:
    account_id, meter_id = setup_shop(db_url)
    charge(db_url, R(meter_id, at(0), Decimal("100.00")))
    charge(db_url, R(meter_id, at(30), Decimal("3.00")))  # meter replaced: register reset
    assert balance(db_url, account_id) == Decimal("10.0000")
    charge(db_url, R(meter_id, at(60), Decimal("4.00")))  # 1 kWh after the re-base
    assert balance(db_url, account_id) == Decimal("8.7655")


def test_arrears_trips_once_and_a_sale_closes_again(db_url: str) -> None:
    account_id, meter_id = setup_shop(db_url)
    charge(db_url, R(meter_id, at(0), Decimal("100.00")))
    charge(db_url, R(meter_id, at(30), Decimal("108.00")))  # 9.876: still 0.124 left
    assert commands(db_url, meter_id) == []

    charge(db_url, R(meter_id, at(60), Decimal("109.00")))  # into arrears
    assert balance(db_url, account_id) == Decimal("10.00") - Decimal("11.1105")
    assert commands(db_url, meter_id) == [("trip", "queued")]

    charge(db_url, R(meter_id, at(90), Decimal("109.50")))  # the trip is pending: no second one
    assert commands(db_url, meter_id) == [("trip", "queued")]

    with unit_of_work(db_url) as s:
        admin = s.scalars(select(operators.Operator)).one()
        result = sell(s, account_id=account_id, amount="50.00", payment_method="card",
                      idempotency_key="form-1", operator=admin, now=at(100), policy=POLICY)
        assert result.balance == Decimal("10.00") - Decimal("11.7278") + Decimal("50.00")
    assert commands(db_url, meter_id) == [("trip", "queued"), ("close", "queued")]
    assert balance(db_url, account_id) == Decimal("48.2722")


def test_a_power_protected_meter_is_not_tripped(db_url: str) -> None:
    account_id, meter_id = setup_shop(db_url, credit="1.00")
    with unit_of_work(db_url) as s:
        s.get_one(Meter, meter_id).power_protect = True
    charge(db_url, R(meter_id, at(0), Decimal("100.00")), R(meter_id, at(30), Decimal("110.00")))
    assert balance(db_url, account_id) < 0
    assert commands(db_url, meter_id) == []


def test_a_sale_posts_once_per_drawn_form(db_url: str) -> None:
    account_id, _ = setup_shop(db_url)
    for _ in range(3):  # a double (triple) click
        with unit_of_work(db_url) as s:
            admin = s.scalars(select(operators.Operator)).one()
            sell(s, account_id=account_id, amount="50.00", payment_method="cash",
                 idempotency_key="form-42", operator=admin, now=at(5), policy=POLICY)
    assert balance(db_url, account_id) == Decimal("60.00")
    with unit_of_work(db_url) as s:
        assert ledger.entry_count(s, account_id) == 2


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "greater than 0"),
        ("-5", "greater than 0"),
        ("1.234", "at most 2 decimal places"),
        ("abc", "must be a number"),
        ("50000.01", "per-sale maximum"),
    ],
)
def test_a_bad_sale_is_refused_with_a_reason_and_saves_nothing(
    db_url: str, amount: str, message: str
) -> None:
    account_id, _ = setup_shop(db_url)
    with pytest.raises(BillingError, match=message), unit_of_work(db_url) as s:
        admin = s.scalars(select(operators.Operator)).one()
        sell(s, account_id=account_id, amount=amount, payment_method="cash",
             idempotency_key="bad", operator=admin, now=at(5), policy=POLICY)
    assert balance(db_url, account_id) == Decimal("10.00")


def test_only_an_operator_with_the_sell_permission_may_sell(db_url: str) -> None:
    account_id, _ = setup_shop(db_url)
    with unit_of_work(db_url) as s:
        operators.create_operator(s, username="viewer", password="just looking", role="viewer",
                                  now=T0)
    with pytest.raises(PermissionDenied), unit_of_work(db_url) as s:
        viewer = s.scalars(
            select(operators.Operator).where(operators.Operator.username == "viewer")
        ).one()
        sell(s, account_id=account_id, amount="10", payment_method="cash",
             idempotency_key="v", operator=viewer, now=at(5), policy=POLICY)
    assert balance(db_url, account_id) == Decimal("10.00")


def test_a_sale_on_a_closed_account_is_refused(db_url: str) -> None:
    account_id, _ = setup_shop(db_url)
    with unit_of_work(db_url) as s:
        s.get_one(Account, account_id).status = "closed"
    with pytest.raises(BillingError, match="closed"), unit_of_work(db_url) as s:
        admin = s.scalars(select(operators.Operator)).one()
        sell(s, account_id=account_id, amount="10", payment_method="cash",
             idempotency_key="c", operator=admin, now=at(5), policy=POLICY)


def test_money_is_exact_in_the_database(db_url: str) -> None:
    """0.0001 added 10,000 times is exactly 1.0000, stored and summed by the database."""
    account_id, _ = setup_shop(db_url, credit="0.01")
    with unit_of_work(db_url) as s:
        account = ledger.lock_account(s, account_id)
        for i in range(10_000):
            ledger.post(s, account, kind="transfer", amount=Decimal("0.0001"),
                        idempotency_key=f"tiny-{i}", effective_at=T0, recorded_at=T0)
    assert balance(db_url, account_id) == Decimal("1.0100")
    with unit_of_work(db_url) as s:
        total = s.scalar(
            select(func.sum(LedgerEntry.amount)).where(LedgerEntry.kind == "transfer")
        )
        assert total == Decimal("1.0000")
        assert str(total) == "1.0000"
