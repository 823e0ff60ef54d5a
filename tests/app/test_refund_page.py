"""Refund (退电): a cashier pays money back once per drawn form, never more than the balance,
always with a reason; a viewer cannot refund."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from schema.db import unit_of_work
from schema.models import Account, LedgerEntry
from tests.app.support import TIMEOUT_S, Site


def refund_page() -> None:
    from app.screens.refund import render

    render()


def on_refund_page(site: Site) -> AppTest:
    return site.open_app("cashier").switch_page("screens/refund.py").run()


def fill_in(at: AppTest, account: Account | None, amount: str, reason: str = "overpaid",
            method: str = "cash") -> AppTest:
    if account is not None:
        at.selectbox(key="refund_account").set_value(account.id)
    at.text_input(key="refund_amount").input(amount)
    at.text_input(key="refund_reason").input(reason)
    at.radio(key="refund_method").set_value(method)
    return at.button(key="refund_submit").click().run()


def test_a_viewer_has_no_refund_page(site: Site) -> None:
    at = site.open_app("viewer")

    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("screens/refund.py")


def test_the_refund_page_itself_refuses_a_viewer(site: Site) -> None:
    before = site.ledger_count()
    at = AppTest.from_function(refund_page, default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = site.operator_ids["viewer"]
    at.session_state["operator_username"] = "viewer"

    at.run()

    assert [e.value for e in at.error] == [
        "You are not allowed to refund. Ask an administrator for the cashier role."
    ]
    assert not at.text_input
    assert site.ledger_count() == before


def test_cashier_refunds_once_with_a_reason_and_gets_a_receipt(site: Site) -> None:
    account = site.account("10004")
    at = on_refund_page(site)
    assert at.title[0].value == "Refund"
    drawn_key = at.session_state["refund_idempotency_key"]

    fill_in(at, account, "10.00", "meter misread", "transfer")

    assert not at.error
    after = site.account("10004").balance
    assert after == account.balance - Decimal("10.00")
    assert [s.value for s in at.success] == [
        f"Refund posted: 10.00 CNY paid back from account 10004. New balance: {after:,.2f} CNY."
    ]
    (download,) = at.get("download_button")
    assert re.fullmatch(r"Receipt \d{8}-\d{4} \(PDF\)", download.proto.label)
    assert not at.text_input
    with unit_of_work(site.url) as session:
        entry = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "refund")).one()
    assert (entry.amount, entry.note, entry.payment_method) == (
        Decimal("-10.00"), "meter misread", "transfer")
    count = site.ledger_count()

    at.button(key="refund_new").click().run()
    at.session_state["refund_idempotency_key"] = drawn_key  # the browser resends the form
    fill_in(at, account, "10.00", "meter misread", "transfer")

    assert at.info[0].value.startswith("This refund was already posted; nothing was paid twice.")
    assert site.ledger_count() == count
    assert site.account("10004").balance == after


def test_refunding_the_whole_balance_trips_the_meter(site: Site) -> None:
    account = site.account("10004")
    at = on_refund_page(site)

    fill_in(at, account, f"{account.balance:.2f}", "moving out")

    assert site.account("10004").balance == 0
    assert [i.value for i in at.info] == ["A trip command is queued for 1 meter(s)."]


@pytest.mark.parametrize(
    ("amount", "reason", "message"),
    [
        ("99999", "overpaid", "Refund amount 99999.00 is more than the available balance {b}"),
        ("10", "  ", "A refund needs a reason"),
        ("ten", "overpaid", "Refund amount must be a number, for example 100.00"),
        ("0", "overpaid", "Refund amount must be greater than 0"),
    ],
)
def test_a_bad_refund_is_refused_and_posts_nothing(
    site: Site, amount: str, reason: str, message: str
) -> None:
    account = site.account("10004")
    before = site.ledger_count()
    at = on_refund_page(site)

    fill_in(at, account, amount, reason)

    assert [e.value for e in at.error] == [message.format(b=f"{account.balance:.2f}")]
    assert site.ledger_count() == before
    assert at.text_input(key="refund_amount").value == amount


def test_an_account_must_be_chosen(site: Site) -> None:
    before = site.ledger_count()

    at = fill_in(on_refund_page(site), None, "10")

    assert [e.value for e in at.error] == ["Choose an account first."]
    assert site.ledger_count() == before
