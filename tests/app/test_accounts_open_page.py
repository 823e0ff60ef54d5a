"""Open account (开户): a cashier opens an account with free meters and a first sale, once per
drawn form; mistakes are refused with nothing saved; a viewer cannot open accounts."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from schema.db import unit_of_work
from schema.models import Account, AccountMeter, Meter
from tests.app.support import TIMEOUT_S, Site

FREE_SHOPS = ["A201", "A302", "B103", "B204", "B305"]  # the demo mall's shops without account


def open_account_page() -> None:
    from app.screens.open_account import render

    render()


def on_open_page(site: Site) -> AppTest:
    return site.open_app("cashier").switch_page("screens/open_account.py").run()


def meter_ids(site: Site, *serials: str) -> list[int]:
    with unit_of_work(site.url) as session:
        found = {
            serial: meter_id
            for serial, meter_id in session.execute(
                select(Meter.serial, Meter.id).where(Meter.serial.in_(serials))
            )
        }
    return [found[serial] for serial in serials]


def fill_in(at: AppTest, *, number: str | None = None, tenant: str = "Book Nook 书角",
            meters: list[int] | None = None, amount: str = "", method: str = "cash") -> AppTest:
    if number is not None:
        at.text_input(key="open_account_number").input(number)
    at.text_input(key="open_account_tenant").input(tenant)
    at.text_input(key="open_account_phone").input("13812345678")
    at.text_input(key="open_account_id_number").input("91310000BOOK")
    at.text_area(key="open_account_notes").input("corner by the escalator")
    at.multiselect(key="open_account_meters").set_value(meters or [])
    at.text_input(key="open_account_amount").input(amount)
    at.radio(key="open_account_method").set_value(method)
    return at.button(key="open_account_submit").click().run()


def account_count(site: Site) -> int:
    with unit_of_work(site.url) as session:
        return session.scalar(select(func.count()).select_from(Account)) or 0


def test_a_viewer_has_no_open_account_page(site: Site) -> None:
    at = site.open_app("viewer")

    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("screens/open_account.py")


def test_the_open_account_page_itself_refuses_a_viewer(site: Site) -> None:
    at = AppTest.from_function(open_account_page, default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = site.operator_ids["viewer"]
    at.session_state["operator_username"] = "viewer"

    at.run()

    assert [e.value for e in at.error] == [
        "You are not allowed to open accounts. Ask an administrator for the cashier role."
    ]
    assert not at.text_input


def test_cashier_opens_an_account_with_two_meters_and_a_first_sale_once(site: Site) -> None:
    at = on_open_page(site)
    assert at.title[0].value == "Open an account"
    assert at.text_input(key="open_account_number").value == "10049"  # after 10048
    # Only meters no account holds are offered.
    assert [label.split(" · ")[1] for label in at.multiselect(key="open_account_meters").options
            ] == FREE_SHOPS
    drawn_key = at.session_state["open_account_idempotency_key"]
    free = meter_ids(site, "M00009", "M00018")
    before = site.ledger_count()

    fill_in(at, meters=free, amount="200", method="card")

    assert not at.error
    assert [s.value for s in at.success] == [
        "Account 10049 opened for Book Nook 书角 with 2 meter(s).",
        "First sale: 200.00 CNY. Balance: 200.00 CNY.",
    ]
    (receipt,) = at.get("download_button")
    assert re.fullmatch(r"Receipt \d{8}-\d{4} \(PDF\)", receipt.proto.label)
    assert not at.text_input  # the form waits for "Open another account"
    account = site.account("10049")
    assert (account.tenant_name, account.phone, account.id_number, account.notes) == (
        "Book Nook 书角", "13812345678", "91310000BOOK", "corner by the escalator")
    assert account.balance == Decimal("200.00")
    with unit_of_work(site.url) as session:
        held = session.scalars(
            select(AccountMeter.meter_id).where(AccountMeter.account_id == account.id)
        ).all()
    assert sorted(held) == sorted(free)
    assert site.ledger_count() == before + 1

    # The browser sends the same form again: nothing new is opened or charged.
    at.button(key="open_account_new").click().run()
    at.session_state["open_account_idempotency_key"] = drawn_key
    fill_in(at, number="10049", meters=[], amount="200", method="card")

    assert [i.value for i in at.info] == [
        "This form was already posted: account 10049 was opened once, and nothing was "
        "charged twice."
    ]
    assert site.ledger_count() == before + 1
    assert site.account("10049").balance == Decimal("200.00")


def test_open_another_account_draws_a_fresh_form(site: Site) -> None:
    at = fill_in(on_open_page(site), tenant="Kiosk 报刊亭")
    assert [i.value for i in at.info] == [
        "The account has no credit yet: sell electricity to it before its meters are used."
    ]

    at.button(key="open_account_new").click().run()

    assert at.text_input(key="open_account_number").value == "10050"
    assert at.text_input(key="open_account_tenant").value == ""


def test_the_tenants_language_is_kept_for_messages_and_the_kiosk(site: Site) -> None:
    at = on_open_page(site)
    assert at.radio(key="open_account_language").value == "zh"  # the default
    at.radio(key="open_account_language").set_value("en")
    fill_in(at, number="10049", tenant="Corner Café")
    with unit_of_work(site.url) as session:
        account = session.scalars(select(Account).where(Account.number == "10049")).one()
        assert account.language == "en"


@pytest.mark.parametrize(
    ("number", "tenant", "amount", "message"),
    [
        ("10049", " ", "", "Tenant name is required"),
        ("", "Book Nook", "", "Account number is required"),
        ("10001", "Book Nook", "", "Account number 10001 is already in use"),
        ("10049", "Book Nook", "abc", "Sale amount must be a number, for example 100.00"),
        ("10049", "Book Nook", "0", "Sale amount must be greater than 0"),
    ],
)
def test_a_mistake_is_refused_and_nothing_is_saved(
    site: Site, number: str, tenant: str, amount: str, message: str
) -> None:
    accounts, entries = account_count(site), site.ledger_count()
    at = on_open_page(site)
    drawn_key = at.session_state["open_account_idempotency_key"]

    fill_in(at, number=number, tenant=tenant, meters=meter_ids(site, "M00009"), amount=amount)

    assert [e.value for e in at.error] == [message]
    assert (account_count(site), site.ledger_count()) == (accounts, entries)
    assert at.text_input(key="open_account_tenant").value == tenant  # to correct and resend
    assert at.session_state["open_account_idempotency_key"] == drawn_key
