"""Accounts, sales, refunds and reversals as a property team uses them — on SQLite and PostgreSQL.

Each story starts from a shop with one meter and follows the money through the ledger; the
ledger sums to the balance at every step (`balance()` checks it on every read).
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import accounts, control, ledger, operators, sales
from billing.charging import FinalReading, charge_readings
from billing.errors import BillingError, PermissionDenied
from billing.policy import BillingPolicy
from billing.receipts import receipt_for_entry, render_receipt
from billing.views import balance_info
from schema.db import unit_of_work
from schema.models import (
    Account,
    AccountClosing,
    AccountMeter,
    Alarm,
    AuditEntry,
    Command,
    LedgerEntry,
    Meter,
    MeterReplacement,
    Operator,
)
from tests.factories import POLICY, T0, make_site

SHANGHAI = POLICY.tz


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def admin(s: Session) -> Operator:
    return s.scalars(select(Operator).where(Operator.username == "admin")).one()


def shop(url: str, *, meters: int = 1, credit: str | None = "100.00") -> tuple[int, list[int]]:
    """A shop's account holding `meters` meters, opened with a first sale of `credit`."""
    with unit_of_work(url) as s:
        site = make_site(s, meters=meters)
        for meter in site.meters:
            meter.relay = "closed"
            meter.price_per_kwh = Decimal("1.0000")
        first = accounts.FirstSale(credit, "cash", "opening") if credit else None
        account = accounts.open_account(
            s, number="10001", tenant_name="福满面馆 Lucky Noodle House", phone="13800000001",
            id_number="91310000MA1K", notes="corner shop", operator=site.admin, now=T0,
            policy=POLICY, meter_ids=[m.id for m in site.meters], first_sale=first,
        )
        return account.id, [m.id for m in site.meters]


def balance(url: str, account_id: int) -> Decimal:
    with unit_of_work(url) as s:
        account = s.get_one(Account, account_id)
        assert ledger.ledger_sum(s, account_id) == account.balance, "ledger must sum to balance"
        return account.balance


def sell(url: str, account_id: int, amount: object, key: str, when: datetime = T0,
         policy: BillingPolicy = POLICY) -> sales.PostResult:
    with unit_of_work(url) as s:
        return sales.sell(s, account_id=account_id, amount=amount, payment_method="cash",
                          idempotency_key=key, operator=admin(s), now=when, policy=policy)


def refund(url: str, account_id: int, amount: object, key: str, reason: str = "moving out"
           ) -> sales.PostResult:
    with unit_of_work(url) as s:
        return sales.refund(s, account_id=account_id, amount=amount, reason=reason,
                            idempotency_key=key, operator=admin(s), now=at(10), policy=POLICY)


def reverse(url: str, entry_id: int, key: str, reason: str = "typed 500 for 50"
            ) -> sales.PostResult:
    with unit_of_work(url) as s:
        return sales.reverse(s, entry_id=entry_id, reason=reason, idempotency_key=key,
                             operator=admin(s), now=at(20), policy=POLICY)


def test_opening_an_account_with_a_first_sale(db_url: str) -> None:
    account_id, meter_ids = shop(db_url, meters=2)
    assert balance(db_url, account_id) == Decimal("100.00")
    with unit_of_work(db_url) as s:
        account = s.get_one(Account, account_id)
        assert (account.tenant_name, account.id_number, account.notes) == (
            "福满面馆 Lucky Noodle House", "91310000MA1K", "corner shop")
        assert [m.id for m in control.account_meters(s, account_id)] == meter_ids
        sale = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "sale")).one()
        assert sale.receipt_no == "20261102-0001"
        actions = s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert "account.open" in actions and "sale" in actions


def test_receipt_numbers_are_gap_free_per_local_day(db_url: str) -> None:
    account_id, _ = shop(db_url)
    numbers = [sell(db_url, account_id, "10.00", f"k{i}").entry.receipt_no for i in range(3)]
    assert numbers == ["20261102-0002", "20261102-0003", "20261102-0004"]
    with pytest.raises(BillingError):
        sell(db_url, account_id, "0", "refused")  # refused: its number is given back
    assert sell(db_url, account_id, "1.00", "k9").entry.receipt_no == "20261102-0005"
    # 23:59:59 on 2 Nov in Shanghai is 15:59:59 UTC; 16:00 UTC is already 3 November there.
    late = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
    assert sell(db_url, account_id, "1.00", "next-day", late).entry.receipt_no == "20261103-0001"


def test_a_sale_over_the_hoarding_limit_is_refused(db_url: str) -> None:
    account_id, _ = shop(db_url)
    tight = replace(POLICY, hoarding_limit=Decimal("500.00"))
    with pytest.raises(BillingError, match=r"hoarding limit of 500\.00; at most 400\.00"):
        sell(db_url, account_id, "400.01", "too-much", policy=tight)
    sell(db_url, account_id, "400.00", "just-right", policy=tight)
    assert balance(db_url, account_id) == Decimal("500.00")


def test_a_refund_up_to_the_available_balance_with_a_reason(db_url: str) -> None:
    account_id, _ = shop(db_url)
    with pytest.raises(BillingError, match=r"more than the available balance 100\.00"):
        refund(db_url, account_id, "100.01", "r1")
    with pytest.raises(BillingError, match="needs a reason"):
        refund(db_url, account_id, "10.00", "r2", reason="  ")
    result = refund(db_url, account_id, "30.00", "r3")
    assert result.entry.amount == Decimal("-30.00") and result.entry.note == "moving out"
    assert refund(db_url, account_id, "30.00", "r3").repeated  # a double click refunds once
    assert balance(db_url, account_id) == Decimal("70.00")


def test_a_reversal_undoes_one_sale_once_as_a_linked_entry(db_url: str) -> None:
    account_id, _ = shop(db_url)
    mistake = sell(db_url, account_id, "500.00", "typo").entry
    assert balance(db_url, account_id) == Decimal("600.00")
    reversal = reverse(db_url, mistake.id, "rev-1").entry
    assert (reversal.kind, reversal.amount, reversal.reference_id) == (
        "reversal", Decimal("-500.00"), mistake.id)
    assert reverse(db_url, mistake.id, "rev-1").repeated
    with pytest.raises(BillingError, match=f"already reversed by {reversal.receipt_no}"):
        reverse(db_url, mistake.id, "rev-2")
    assert balance(db_url, account_id) == Decimal("100.00")
    with unit_of_work(db_url) as s:  # the sale itself is never edited
        assert s.get_one(LedgerEntry, mistake.id).amount == Decimal("500.00")


def test_a_refund_reversed_puts_the_money_back(db_url: str) -> None:
    account_id, _ = shop(db_url)
    wrong = refund(db_url, account_id, "40.00", "r").entry
    reverse(db_url, wrong.id, "undo-refund", reason="refunded the wrong account")
    assert balance(db_url, account_id) == Decimal("100.00")


def test_only_sales_and_refunds_can_be_reversed(db_url: str) -> None:
    _account_id, (meter_id,) = shop(db_url)
    with unit_of_work(db_url) as s:
        charge_readings(s, [FinalReading(meter_id, at(0), Decimal("10")),
                            FinalReading(meter_id, at(30), Decimal("12"))], policy=POLICY,
                        now=at(30))
        charge = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "charge")).one()
    with pytest.raises(BillingError, match="not a charge"):
        reverse(db_url, charge.id, "x")


def test_a_reversal_needs_the_reverse_permission(db_url: str) -> None:
    account_id, _ = shop(db_url)
    entry = sell(db_url, account_id, "10.00", "s").entry
    with unit_of_work(db_url) as s:
        operators.create_operator(s, username="cashier", password="till-drawer", role="cashier",
                                  now=T0)
    with pytest.raises(PermissionDenied), unit_of_work(db_url) as s:
        cashier = s.scalars(select(Operator).where(Operator.username == "cashier")).one()
        sales.reverse(s, entry_id=entry.id, reason="oops", idempotency_key="c",
                      operator=cashier, now=at(5), policy=POLICY)


def test_alarm_levels_follow_the_balance_with_account_and_meter_thresholds(db_url: str) -> None:
    account_id, (meter_id,) = shop(db_url, credit="100.00")

    def level() -> str:
        with unit_of_work(db_url) as s:
            return s.get_one(Account, account_id).alarm_level

    def spend(to_kwh: str, minute: int) -> None:
        with unit_of_work(db_url) as s:
            charge_readings(s, [FinalReading(meter_id, at(minute), Decimal(to_kwh))],
                            policy=POLICY, now=at(minute))

    spend("0", 0)
    assert level() == "normal"
    spend("55", 30)  # 45.00 left: at or below alarm 1 (50.00)
    assert level() == "alarm1"
    spend("81", 60)  # 19.00 left: alarm 2 (20.00)
    assert level() == "alarm2"
    with unit_of_work(db_url) as s:
        s.get_one(Meter, meter_id).alarm2_amount = Decimal("10.00")  # the meter's own threshold
    sell(db_url, account_id, "0.01", "nudge")  # any balance change re-evaluates
    assert level() == "alarm1"
    spend("100", 90)  # 0.01 left
    spend("101", 120)  # -0.99
    assert level() == "arrears"


def test_power_protect_keeps_supply_on_and_restore_prepaid_trips_again(db_url: str) -> None:
    account_id, (meter_id,) = shop(db_url, credit="5.00")

    def cmds() -> list[tuple[str, str]]:
        with unit_of_work(db_url) as s:
            rows = s.scalars(select(Command).where(Command.meter_id == meter_id)
                             .order_by(Command.id))
            return [(c.kind, c.reason) for c in rows]

    with unit_of_work(db_url) as s:
        control.set_power_protect(s, meter_id, True, operator=admin(s), policy=POLICY,
                                  now=at(1))
        charge_readings(s, [FinalReading(meter_id, at(2), Decimal("0")),
                            FinalReading(meter_id, at(30), Decimal("10"))], policy=POLICY,
                        now=at(30))
    assert balance(db_url, account_id) == Decimal("-5.00")
    assert cmds() == [], "a power-protected meter is not tripped in arrears"
    with unit_of_work(db_url) as s:
        control.set_power_protect(s, meter_id, False, operator=admin(s), policy=POLICY,
                                  now=at(40))
        actions = s.scalars(select(AuditEntry.action)).all()
    assert "meter.power_protect_on" in actions and "meter.restore_prepaid" in actions
    assert cmds() == [("trip", "arrears: balance -5.0000")]


def test_days_left_from_the_last_seven_days_of_charges(db_url: str) -> None:
    account_id, (meter_id,) = shop(db_url, credit="100.00")
    readings = [FinalReading(meter_id, T0 + timedelta(days=d), Decimal(6 * d)) for d in range(8)]
    with unit_of_work(db_url) as s:
        charge_readings(s, readings, policy=POLICY, now=readings[-1].at)
    now = T0 + timedelta(days=7)
    with unit_of_work(db_url) as s:
        info = balance_info(s, account_id, now=now, tz=SHANGHAI)
    # 7 days × 6 kWh × 1.00 = 42.00 spent: 6.00 a day; 58.00 left lasts 9.7 days.
    assert info.balance == Decimal("58.00")
    assert info.average_daily_cost == Decimal("6.00")
    assert info.days_left == Decimal("9.7")
    assert info.runs_out_on == (now + timedelta(days=9.7)).astimezone(SHANGHAI).date()


def test_closing_refunds_the_rest_releases_and_trips_every_meter(db_url: str) -> None:
    account_id, meter_ids = shop(db_url, meters=2, credit="100.00")
    with unit_of_work(db_url) as s:
        charge_readings(s, [FinalReading(meter_ids[0], at(0), Decimal("100.00"))],
                        policy=POLICY, now=at(0))
        result = accounts.close_account(
            s, account_id=account_id, operator=admin(s), now=at(60), policy=POLICY,
            idempotency_key="close-1", final_readings={meter_ids[0]: Decimal("112.34")},
        )
        assert result.closing.final_balance == Decimal("87.6600")
        assert result.closing.refunded == Decimal("87.66")
        assert result.closing.debt == Decimal("0")
        assert result.closing.meters == ["M00001", "M00002"]
        assert [c.kind for c in result.commands] == ["trip", "trip"]
    assert balance(db_url, account_id) == Decimal("0")
    with unit_of_work(db_url) as s:
        assert s.get_one(Account, account_id).status == "closed"
        links = s.scalars(select(AccountMeter).where(AccountMeter.account_id == account_id))
        assert all(link.detached_at is not None for link in links)
        assert s.scalars(select(AccountClosing)).one().receipt_no is not None
    with pytest.raises(BillingError, match="closed"):
        sell(db_url, account_id, "10.00", "after-close")


def test_closing_an_account_in_debt_records_the_debt(db_url: str) -> None:
    account_id, (meter_id,) = shop(db_url, credit="10.00")
    with unit_of_work(db_url) as s:
        charge_readings(s, [FinalReading(meter_id, at(0), Decimal("0")),
                            FinalReading(meter_id, at(30), Decimal("12.5"))], policy=POLICY,
                        now=at(30))
        result = accounts.close_account(s, account_id=account_id, operator=admin(s), now=at(60),
                                        policy=POLICY, idempotency_key="close-2")
        assert (result.closing.debt, result.refund) == (Decimal("2.5000"), None)


def test_old_meter_transfer_moves_the_value_to_the_new_meter(db_url: str) -> None:
    account_id, (old_id, new_id) = shop(db_url, meters=2, credit="80.00")
    with unit_of_work(db_url) as s:
        accounts.detach_meter(s, s.get_one(Account, account_id), new_id, operator=admin(s),
                              now=at(1))
        charge_readings(s, [FinalReading(old_id, at(0), Decimal("500"))], policy=POLICY,
                        now=at(0))
        record = accounts.replace_meter(
            s, account_id=account_id, old_meter_id=old_id, new_meter_id=new_id,
            operator=admin(s), now=at(30), policy=POLICY, old_final_energy_kwh=Decimal("505"),
        )
        assert record.value_transferred == Decimal("75.0000")  # 80 − 5 kWh × 1.00
        assert [m.id for m in control.account_meters(s, account_id)] == [new_id]
        assert s.scalars(select(MeterReplacement)).one().old_final_energy_kwh == Decimal("505")
    assert balance(db_url, account_id) == Decimal("75.0000")


def test_a_meter_going_backwards_raises_an_anomaly_and_charges_nothing(db_url: str) -> None:
    account_id, (meter_id,) = shop(db_url)
    with unit_of_work(db_url) as s:
        charge_readings(s, [FinalReading(meter_id, at(0), Decimal("900")),
                            FinalReading(meter_id, at(30), Decimal("3"))], policy=POLICY,
                        now=at(30))
        alarm = s.scalars(select(Alarm)).one()
        assert (alarm.kind, alarm.meter_id, alarm.value) == (
            "energy_backwards", meter_id, "900.00 → 3.00 kWh")
    assert balance(db_url, account_id) == Decimal("100.00")


def test_a_sale_prints_a_receipt_with_the_chinese_tenant_name(db_url: str) -> None:
    account_id, _ = shop(db_url)
    entry = sell(db_url, account_id, "1234.50", "big-sale").entry
    with unit_of_work(db_url) as s:
        data = receipt_for_entry(s, entry.id, site_name="Metro Mall 地铁商城", currency="CNY",
                                 tz=SHANGHAI)
    text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=render_receipt(data),
                          capture_output=True, check=True).stdout.decode()
    for expected in ("福满面馆", "20261102-0002", "1,234.50", "1,334.50", "A101", "M00001",
                     "地铁商城"):
        assert expected in text, f"{expected!r} missing from the receipt"
