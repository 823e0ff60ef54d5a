"""Sale (售电): a cashier credits an account once per drawn form; nobody else can."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, update
from streamlit.testing.v1 import AppTest

from billing import ledger
from schema.db import unit_of_work
from schema.models import Account, Command, Meter
from tests.app.support import TIMEOUT_S, Site


def sale_page() -> None:
    from app.screens.sale import render

    render()


def cashier_on_sale_page(site: Site) -> AppTest:
    at = site.open_app("cashier")
    return at.switch_page("screens/sale.py").run()


def fill_in(at: AppTest, account: Account, amount: str, method: str = "cash") -> AppTest:
    at.selectbox(key="sale_account").set_value(account.id)
    at.text_input(key="sale_amount").input(amount)
    at.radio(key="sale_method").set_value(method)
    return at.button(key="sale_submit").click().run()


def test_a_viewer_has_no_sale_page(site: Site) -> None:
    at = site.open_app("viewer")

    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("screens/sale.py")


def test_the_sale_page_itself_refuses_a_viewer(site: Site) -> None:
    before = site.ledger_count()
    at = AppTest.from_function(sale_page, default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = site.operator_ids["viewer"]
    at.session_state["operator_username"] = "viewer"

    at.run()

    assert [e.value for e in at.error] == [
        "You are not allowed to sell electricity. Ask an administrator for the cashier role."
    ]
    assert not at.text_input
    assert site.ledger_count() == before


def test_cashier_sells_50_and_the_balance_rises_by_exactly_50(site: Site) -> None:
    account = site.account("10003")
    at = cashier_on_sale_page(site)
    assert at.title[0].value == "Sell electricity"

    fill_in(at, account, "50.00", "card")

    assert not at.error
    after = site.account("10003").balance
    assert after == account.balance + Decimal("50.00")
    assert [s.value for s in at.success] == [
        f"Sale posted: 50.00 CNY to account 10003. New balance: {after:,.2f} CNY."
    ]
    assert not at.text_input  # the form waits for "New sale": a second click posts nothing
    (download,) = at.get("download_button")
    assert re.fullmatch(r"Receipt \d{8}-\d{4} \(PDF\)", download.proto.label)  # PDF offered


def test_resubmitting_the_same_drawn_form_posts_once(site: Site) -> None:
    account = site.account("10003")
    at = cashier_on_sale_page(site)
    drawn_key = at.session_state["sale_idempotency_key"]
    fill_in(at, account, "50.00")
    count = site.ledger_count()
    assert at.session_state["sale_idempotency_key"] != drawn_key

    at.button(key="sale_new").click().run()
    at.session_state["sale_idempotency_key"] = drawn_key  # the browser resends the first form
    fill_in(at, account, "50.00")

    assert site.ledger_count() == count
    assert site.account("10003").balance == account.balance + Decimal("50.00")
    assert at.info[0].value.startswith("This sale was already posted; nothing was charged twice.")


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("abc", "Sale amount must be a number, for example 100.00"),
        ("", "Sale amount must be a number, for example 100.00"),
        ("0", "Sale amount must be greater than 0"),
        ("-5", "Sale amount must be greater than 0"),
        ("1.234", "Sale amount can have at most 2 decimal places"),
        ("50000.01", "Sale amount 50000.01 is above the per-sale maximum of 50000.00"),
    ],
)
def test_a_bad_amount_is_refused_and_posts_nothing(site: Site, amount: str, message: str) -> None:
    account = site.account("10003")
    before = site.ledger_count()
    at = cashier_on_sale_page(site)
    drawn_key = at.session_state["sale_idempotency_key"]

    fill_in(at, account, amount)

    assert [e.value for e in at.error] == [message]
    assert site.ledger_count() == before
    assert site.account("10003").balance == account.balance
    # The cashier corrects the amount in the same form, under the same key.
    assert at.text_input(key="sale_amount").value == amount
    assert at.session_state["sale_idempotency_key"] == drawn_key


def test_an_account_must_be_chosen(site: Site) -> None:
    before = site.ledger_count()
    at = cashier_on_sale_page(site)
    at.text_input(key="sale_amount").input("50.00")

    at.button(key="sale_submit").click().run()

    assert [e.value for e in at.error] == ["Choose an account first."]
    assert site.ledger_count() == before


def test_a_sale_out_of_arrears_restores_the_supply(site: Site) -> None:
    now = datetime.now(UTC)
    with unit_of_work(site.url) as session:
        # Shop A101 used up its credit and was tripped; the collector confirmed every command.
        account = ledger.lock_account(
            session, session.scalars(select(Account.id).where(Account.number == "10001")).one()
        )
        ledger.post(session, account, kind="charge", amount=-(account.balance + 10),
                    idempotency_key="test-arrears", effective_at=now, recorded_at=now)
        meter = session.scalars(select(Meter).where(Meter.serial == "M00001")).one()
        meter.relay = "open"
        session.execute(
            update(Command).where(Command.meter_id == meter.id).values(state="confirmed")
        )
    assert site.account("10001").balance == Decimal("-10")
    at = cashier_on_sale_page(site)

    fill_in(at, site.account("10001"), "100")

    assert site.account("10001").balance == Decimal("90")
    assert [i.value for i in at.info] == [
        "Supply will be restored: a close command is queued for 1 meter(s)."
    ]
    with unit_of_work(site.url) as session:
        queued = session.scalars(
            select(Command.kind).where(Command.meter_id == meter.id, Command.state == "queued")
        ).all()
    assert queued == ["close"]
