"""Reversal (冲正): an administrator undoes a sale found by its receipt number or picked from
today's, with a reason, once; a cashier cannot reverse."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from schema.db import unit_of_work
from schema.models import LedgerEntry
from tests.app.support import TIMEOUT_S, Site
from voltpay.settings import get_settings


def reversal_page() -> None:
    from app.screens.reversal import render

    render()


def on_reversal_page(site: Site) -> AppTest:
    return site.open_app("admin").switch_page("screens/reversal.py").run()


def opening_sale(site: Site, number: str) -> LedgerEntry:
    account_id = site.account(number).id
    with unit_of_work(site.url) as session:
        return session.scalars(
            select(LedgerEntry).where(LedgerEntry.account_id == account_id,
                                      LedgerEntry.kind == "sale")
        ).one()


def find(at: AppTest, receipt_no: str) -> AppTest:
    at.text_input(key="reversal_receipt_no").input(receipt_no)
    return at.button(key="reversal_find_submit").click().run()


def test_a_cashier_has_no_reversal_page(site: Site) -> None:
    at = site.open_app("cashier")

    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("screens/reversal.py")


def test_the_reversal_page_itself_refuses_a_cashier(site: Site) -> None:
    at = AppTest.from_function(reversal_page, default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = site.operator_ids["cashier"]
    at.session_state["operator_username"] = "cashier"

    at.run()

    assert [e.value for e in at.error] == [
        "You are not allowed to reverse sales or refunds. Ask an administrator."
    ]
    assert not at.text_input


def test_a_sale_found_by_receipt_number_is_reversed_once_with_a_reason(site: Site) -> None:
    sale = opening_sale(site, "10005")
    assert sale.receipt_no is not None
    balance = site.account("10005").balance
    at = on_reversal_page(site)
    assert at.title[0].value == "Reversal"

    find(at, f" {sale.receipt_no} ")

    assert at.subheader[0].value == f"Receipt {sale.receipt_no}: sale"
    assert f"Amount: **{sale.amount:,.2f} CNY**" in at.markdown[0].value
    at.button(key="reversal_submit").click().run()
    assert [e.value for e in at.error] == ["A reversal needs a reason"]
    assert site.account("10005").balance == balance

    at.text_input(key="reversal_reason").input("typed the wrong account")
    at.button(key="reversal_submit").click().run()

    assert not at.error
    after = site.account("10005").balance
    assert after == balance - sale.amount
    (message,) = [s.value for s in at.success]
    assert re.fullmatch(
        rf"Reversal \d{{8}}-\d{{4}} posted: receipt {sale.receipt_no} is undone "
        rf"\(-{sale.amount:,.2f} CNY on account 10005\)\. New balance: {after:,.2f} CNY\.",
        message,
    )
    (download,) = at.get("download_button")
    assert re.fullmatch(r"Receipt \d{8}-\d{4} \(PDF\)", download.proto.label)
    assert not at.text_input  # the form waits for "New reversal": a second click posts nothing
    count = site.ledger_count()

    at.button(key="reversal_new").click().run()
    find(at, sale.receipt_no)

    assert at.warning[0].value.startswith(f"Receipt {sale.receipt_no} was already reversed by ")
    assert "reversal_submit" not in [b.key for b in at.button]
    assert site.ledger_count() == count


def test_a_sale_picked_from_today_is_reversed(site: Site) -> None:
    sale = opening_sale(site, "10007")
    today = datetime.now(UTC).astimezone(get_settings().tz).strftime("%Y%m%d")
    assert sale.receipt_no is not None and sale.receipt_no.startswith(today)
    at = on_reversal_page(site)
    assert len(at.selectbox(key="reversal_today").options) == 43  # every opening sale

    at.selectbox(key="reversal_today").set_value(sale.id).run()
    at.text_input(key="reversal_reason").input("duplicate")
    at.button(key="reversal_submit").click().run()

    assert at.success
    assert site.account("10007").balance == 0  # its only credit was the sale undone
    with unit_of_work(site.url) as session:
        reversal = session.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == "reversal")
        ).one()
    assert (reversal.reference_id, reversal.amount) == (sale.id, -sale.amount)


def test_an_unknown_receipt_number_says_what_to_check(site: Site) -> None:
    at = find(on_reversal_page(site), "19990101-0001")

    assert [e.value for e in at.error] == [
        "No sale or refund has receipt number 19990101-0001. Check the number printed on the "
        "receipt, e.g. 20261125-0007."
    ]
    assert "reversal_submit" not in [b.key for b in at.button]
