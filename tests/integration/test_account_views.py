"""Account search and the record queries behind the accounts and sales screens, on SQLite and
PostgreSQL; and the account services those screens add (an opening posted once per form, a meter
added or removed).

The story: a mall with four shops. Lucky Noodle House (10001) opens on 2 November at 10:00 with
shop A101 and 100.00 in cash; Tea Corner (10002) opens with A102 and 50.00 by card. The cashier
sells and refunds, the administrator reverses a mistyped sale, Tea Corner closes in the evening,
and Lucky Noodle's meter is replaced by A103's.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import account_views as views
from billing import accounts, ledger, operators, sales
from billing.account_views import RecordFilter
from billing.errors import BillingError, PermissionDenied
from schema.db import unit_of_work
from schema.models import Account, AccountMeter, AuditEntry, Command, LedgerEntry, Meter, Operator
from tests.factories import POLICY, T0, make_site

TZ = POLICY.tz
DAY = date(2026, 11, 2)  # T0 is 10:00 on this day in Shanghai


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def operator(s: Session, username: str) -> Operator:
    return s.scalars(select(Operator).where(Operator.username == username)).one()


def account_id(s: Session, number: str) -> int:
    return s.scalars(select(Account.id).where(Account.number == number)).one()


def meter_id(s: Session, serial: str) -> int:
    return s.scalars(select(Meter.id).where(Meter.serial == serial)).one()


def mall(url: str) -> None:
    """The story above, up to the closing and the meter replacement."""
    with unit_of_work(url) as s:
        site = make_site(s, meters=4)
        operators.create_operator(s, username="cashier", password="correct horse",
                                  role="cashier", now=T0, display_name="Ms Wang")
        accounts.open_account(
            s, number="10001", tenant_name="Lucky Noodle House 福满面馆", phone="13800000001",
            meter_ids=[site.meters[0].id], operator=site.admin, now=T0, policy=POLICY,
            first_sale=accounts.FirstSale("100.00", "cash", "open-1"),
        )
        accounts.open_account(
            s, number="10002", tenant_name="Tea Corner 茶角", phone="13900000002",
            id_number="91310000TEA", meter_ids=[site.meters[1].id], operator=operator(s, "admin"),
            now=at(1), policy=POLICY, first_sale=accounts.FirstSale("50.00", "card", "open-2"),
        )
    with unit_of_work(url) as s:
        cashier, admin = operator(s, "cashier"), operator(s, "admin")
        noodle, tea = account_id(s, "10001"), account_id(s, "10002")
        sales.sell(s, account_id=noodle, amount="500.00", payment_method="cash",
                   idempotency_key="typo", operator=cashier, now=at(2), policy=POLICY)
        sales.sell(s, account_id=noodle, amount="50.00", payment_method="transfer",
                   idempotency_key="right", operator=cashier, now=at(2.1), policy=POLICY)
        sales.refund(s, account_id=tea, amount="20.00", reason="overpaid", idempotency_key="r1",
                     operator=cashier, now=at(3), policy=POLICY, payment_method="cash")
        typo = s.scalars(select(LedgerEntry.id).where(LedgerEntry.idempotency_key == "sale:typo"))
        sales.reverse(s, entry_id=typo.one(), reason="typed 500 for 50",
                      idempotency_key="rv1", operator=admin, now=at(4), policy=POLICY)
        accounts.close_account(s, account_id=tea, operator=admin, now=at(9), policy=POLICY,
                               idempotency_key="close-tea", note="moved out")
        accounts.replace_meter(s, account_id=noodle, old_meter_id=meter_id(s, "M00001"),
                               new_meter_id=meter_id(s, "M00003"), operator=admin, now=at(10),
                               policy=POLICY)
        # 23:30 and 00:30 local: the last sale of 2 November and the first of 3 November.
        sales.sell(s, account_id=noodle, amount="10.00", payment_method="cash",
                   idempotency_key="late", operator=cashier, now=at(13.5), policy=POLICY)
        sales.sell(s, account_id=noodle, amount="11.00", payment_method="cash",
                   idempotency_key="next-day", operator=cashier, now=at(14.5), policy=POLICY)


def day(on: date = DAY, **narrowing: object) -> RecordFilter:
    return RecordFilter(on, on, TZ, **narrowing)  # type: ignore[arg-type]


def test_accounts_are_found_by_number_tenant_phone_unit_or_meter(db_url: str) -> None:
    mall(db_url)
    with unit_of_work(db_url) as s:
        found = {
            text: [row.number for row in views.search_accounts(s, text, status=None)]
            for text in ("1000", "noodle", "福满", "13900000002", "a102", "M00003", "tea", "x%")
        }
        open_now = [row.number for row in views.search_accounts(s, "")]
        closed = [row.number for row in views.search_accounts(s, "", status="closed")]
        (noodle,) = views.search_accounts(s, "10001")
        (tea,) = views.search_accounts(s, "10002", status="closed")
    assert found == {
        "1000": ["10001", "10002"], "noodle": ["10001"], "福满": ["10001"],
        "13900000002": ["10002"], "a102": ["10002"], "M00003": ["10001"], "tea": ["10002"],
        "x%": [],
    }
    assert open_now == ["10001"] and closed == ["10002"]
    # The noodle shop holds A103 now; the tea shop is shown with the shop it closed in.
    assert (noodle.units, noodle.meters, noodle.status) == ("A103", "M00003", "open")
    assert noodle.balance == Decimal("171.00")
    assert (tea.units, tea.meters, tea.status, tea.balance) == ("A102", "M00002", "closed",
                                                                Decimal("0.00"))
    assert tea.closed_at == at(9)


def test_sales_of_a_local_day_with_totals_by_payment_method(db_url: str) -> None:
    mall(db_url)
    with unit_of_work(db_url) as s:
        rows = views.counter_records(s, "sale", day())
        totals = views.counter_totals(s, "sale", day())
        next_day = views.counter_records(s, "sale", day(DAY + timedelta(days=1)))
        both_days = views.counter_records(
            s, "sale", RecordFilter(DAY, DAY + timedelta(days=1), TZ)
        )
    assert [(r.receipt_no, r.account, r.amount, r.payment_method) for r in rows] == [
        ("20261102-0001", "10001", Decimal("100.00"), "cash"),
        ("20261102-0002", "10002", Decimal("50.00"), "card"),
        ("20261102-0003", "10001", Decimal("500.00"), "cash"),
        ("20261102-0004", "10001", Decimal("50.00"), "transfer"),
        ("20261102-0008", "10001", Decimal("10.00"), "cash"),  # 23:30 local
    ]
    assert [r.receipt_no for r in next_day] == ["20261103-0001"]  # 00:30 local, 3 November
    assert len(both_days) == 6
    assert rows[2].reversed_by == "20261102-0006" and rows[2].operator == "Ms Wang"
    assert rows[0].operator == "admin"
    assert (totals.count, totals.amount) == (5, Decimal("710.00"))
    assert [(m.payment_method, m.count, m.amount) for m in totals.by_method] == [
        ("card", 1, Decimal("50.00")), ("cash", 3, Decimal("610.00")),
        ("transfer", 1, Decimal("50.00")),
    ]
    assert (totals.reversed_count, totals.reversed_amount) == (1, Decimal("500.00"))


def test_records_narrowed_by_account_operator_and_payment_method(db_url: str) -> None:
    mall(db_url)
    with unit_of_work(db_url) as s:
        cashier = operator(s, "cashier").id
        by_tenant = views.counter_records(s, "sale", day(account="tea"))
        by_operator = views.counter_records(s, "sale", day(operator_id=cashier))
        cash_by_cashier = views.counter_totals(
            s, "sale", day(operator_id=cashier, payment_method="cash")
        )
        refunds = views.counter_records(s, "refund", day())
        reversals = views.counter_records(s, "reversal", day())
    assert [r.account for r in by_tenant] == ["10002"]
    assert [r.amount for r in by_operator] == [Decimal("500.00"), Decimal("50.00"),
                                               Decimal("10.00")]
    assert (cash_by_cashier.count, cash_by_cashier.amount) == (2, Decimal("510.00"))
    # The closing paid out the tea shop's 30.00 as a refund of its own.
    assert [(r.receipt_no, r.amount, r.note) for r in refunds] == [
        ("20261102-0005", Decimal("-20.00"), "overpaid"),
        ("20261102-0007", Decimal("-30.00"), "account closed"),
    ]
    (reversal,) = reversals
    assert (reversal.amount, reversal.reverses, reversal.operator) == (
        Decimal("-500.00"), "20261102-0003", "admin")
    assert reversal.note.startswith("typed 500 for 50")


def test_a_receipt_is_found_by_number_and_reversible_entries_leave_out_reversed_ones(
    db_url: str,
) -> None:
    mall(db_url)
    with unit_of_work(db_url) as s:
        found = views.find_receipt(s, " 20261102-0004 ")
        missing = views.find_receipt(s, "20261102-0099")
        reversible = views.reversible_entries(s, on=DAY, tz=TZ)
    assert found is not None and (found.kind, found.amount) == ("sale", Decimal("50.00"))
    assert missing is None
    # Every sale and refund of the day but the reversed 500.00, latest first.
    assert [r.receipt_no for r in reversible] == [
        "20261102-0008", "20261102-0007", "20261102-0005", "20261102-0004", "20261102-0002",
        "20261102-0001",
    ]


def test_openings_and_closings_of_a_period(db_url: str) -> None:
    mall(db_url)
    with unit_of_work(db_url) as s:
        opened = views.openings(s, day())
        opened_by_cashier = views.openings(s, day(operator_id=operator(s, "cashier").id))
        closed = views.closings(s, day())
        closed_next_day = views.closings(s, day(DAY + timedelta(days=1)))
        closing = views.closing_of(s, account_id(s, "10002"))
        receipt = s.get(LedgerEntry, closing.refund_entry_id) if closing else None
    assert [(o.number, o.operator, o.status, o.units) for o in opened] == [
        ("10001", "admin", "open", "A103"), ("10002", "admin", "closed", "A102"),
    ]
    assert opened_by_cashier == []
    assert closed_next_day == []
    (row,) = closed
    assert row == closing
    assert (row.number, row.final_balance, row.refunded, row.debt, row.meters, row.note) == (
        "10002", Decimal("30.00"), Decimal("30.00"), Decimal("0.00"), "M00002", "moved out")
    assert receipt is not None and receipt.receipt_no == row.receipt_no == "20261102-0007"


def test_meters_replacements_and_recent_entries_of_an_account(db_url: str) -> None:
    mall(db_url)
    with unit_of_work(db_url) as s:
        noodle = account_id(s, "10001")
        meters = views.account_meters(s, noodle)
        free = views.free_meters(s)
        (replaced,) = views.replacements(s, noodle)
        recent = views.recent_entries(s, noodle, limit=3)
        suggested = views.suggest_account_number(s)
    assert [(m.serial, m.unit) for m in meters] == [("M00003", "A103")]
    # M00001 was replaced and M00002 released by the closing: both can be given out again.
    assert [(m.serial, m.unit) for m in free] == [("M00001", "A101"), ("M00002", "A102"),
                                                  ("M00004", "A104")]
    assert (replaced.old_meter, replaced.new_meter, replaced.value_transferred) == (
        "M00001", "M00003", Decimal("150.00"))
    assert [(e.kind, e.amount, e.balance_after) for e in recent] == [
        ("sale", Decimal("11.00"), Decimal("171.00")),
        ("sale", Decimal("10.00"), Decimal("160.00")),
        ("reversal", Decimal("-500.00"), Decimal("150.00")),
    ]
    assert suggested == "10003"


def test_posting_the_same_opening_form_twice_opens_one_account(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        site = make_site(s, meters=2)
    form = {"number": "20001", "tenant_name": "Book Nook 书角", "now": T0, "policy": POLICY,
            "first_sale_amount": "80.00", "payment_method": "card"}
    with unit_of_work(db_url) as s:
        first = accounts.open_account_once(
            s, form_key="form-1", operator=operator(s, "admin"), meter_ids=[site.meters[0].id],
            **form,  # type: ignore[arg-type]
        )
        assert not first.repeated and first.first_sale is not None
    with unit_of_work(db_url) as s:
        again = accounts.open_account_once(
            s, form_key="form-1", operator=operator(s, "admin"), meter_ids=[site.meters[0].id],
            **form,  # type: ignore[arg-type]
        )
        assert again.repeated and again.account.balance == Decimal("80.00")
        assert again.first_sale is not None and again.first_sale.receipt_no == "20261102-0001"
    with unit_of_work(db_url) as s, pytest.raises(BillingError, match="20001 is already in use"):
        accounts.open_account_once(s, form_key="form-2", operator=operator(s, "admin"), **form)  # type: ignore[arg-type]
    with unit_of_work(db_url) as s:
        assert s.scalar(select(func.count()).select_from(Account)) == 1
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 1


def test_an_opening_without_a_first_sale_and_without_the_permission(db_url: str) -> None:
    with unit_of_work(db_url) as s:
        make_site(s)
        operators.create_operator(s, username="viewer", password="correct horse", role="viewer",
                                  now=T0)
    with unit_of_work(db_url) as s:
        result = accounts.open_account_once(
            s, form_key="f", number="30001", tenant_name="Kiosk", operator=operator(s, "admin"),
            now=T0, policy=POLICY,
        )
        assert result.first_sale is None and result.account.balance == 0
    with unit_of_work(db_url) as s, pytest.raises(PermissionDenied):
        accounts.open_account_once(s, form_key="g", number="30002", tenant_name="Kiosk 2",
                                   operator=operator(s, "viewer"), now=T0, policy=POLICY)


def test_a_meter_added_to_an_account_in_arrears_is_tripped_and_a_removed_one_too(
    db_url: str,
) -> None:
    with unit_of_work(db_url) as s:
        site = make_site(s, meters=3)
        for meter in site.meters:
            meter.relay = "closed"
        accounts.open_account(s, number="10001", tenant_name="Lucky Noodle House",
                              meter_ids=[site.meters[0].id], operator=site.admin, now=T0,
                              policy=POLICY)
    with unit_of_work(db_url) as s:
        admin, noodle = operator(s, "admin"), account_id(s, "10001")
        # Opened without credit: the account is in arrears.
        added = accounts.add_meter(s, account_id=noodle, meter_id=meter_id(s, "M00002"),
                                   operator=admin, now=at(1), policy=POLICY)
        assert sorted((c.meter_id, c.kind) for c in added) == [
            (meter_id(s, "M00001"), "trip"), (meter_id(s, "M00002"), "trip")]
        sales.sell(s, account_id=noodle, amount="100.00", payment_method="cash",
                   idempotency_key="s", operator=admin, now=at(2), policy=POLICY)
        removed = accounts.remove_meter(s, account_id=noodle, meter_id=meter_id(s, "M00002"),
                                        operator=admin, now=at(3), policy=POLICY)
        assert [(c.meter_id, c.kind, c.reason) for c in removed] == [
            (meter_id(s, "M00002"), "trip", "removed from account 10001")]
        kept = accounts.remove_meter(s, account_id=noodle, meter_id=meter_id(s, "M00001"),
                                     operator=admin, now=at(4), policy=POLICY, trip=False)
        assert kept == []
    with unit_of_work(db_url) as s:
        assert views.account_meters(s, account_id(s, "10001")) == []
        assert s.scalar(select(func.count()).select_from(AccountMeter)) == 2
        assert s.scalar(select(func.count()).select_from(Command)) >= 3
        actions = s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert actions.count("account.detach_meter") == 2
        with pytest.raises(BillingError, match="is not on account 10001"):
            accounts.remove_meter(s, account_id=account_id(s, "10001"),
                                  meter_id=meter_id(s, "M00001"), operator=operator(s, "admin"),
                                  now=at(5), policy=POLICY)
        assert ledger.ledger_sum(s, account_id(s, "10001")) == Decimal("100.00")


def test_day_bounds_are_local_midnights() -> None:
    start, end = views.day_bounds(DAY, DAY, TZ)
    assert (start.astimezone(UTC), end.astimezone(UTC)) == (
        datetime(2026, 11, 1, 16, 0, tzinfo=UTC), datetime(2026, 11, 2, 16, 0, tzinfo=UTC))
