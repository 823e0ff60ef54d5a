"""Accounts (用户管理): find an account, see it, and add, remove or replace its meters,
power-protect one, or close it — each once, after a confirmation where it cannot be undone."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pandas import DataFrame
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from schema.db import unit_of_work
from schema.models import AccountClosing, AccountMeter, Command, LedgerEntry, Meter
from tests.app.support import TIMEOUT_S, Site


def accounts_page() -> None:
    from app.screens.accounts import render

    render()


def on_accounts_page(site: Site, username: str = "cashier") -> AppTest:
    return site.open_app(username).switch_page("screens/accounts.py").run()


def find(at: AppTest, text: str, status: str = "open") -> AppTest:
    at.text_input(key="accounts_query").input(text)
    at.radio(key="accounts_status").set_value(status)
    return at.run()


def table(at: AppTest, column: str) -> DataFrame:
    """The table with this column (the results: "number", meters: "serial", ledger: "kind")."""
    (found,) = [d.value for d in at.dataframe if column in d.value.columns]
    return found


def meter_id(site: Site, serial: str) -> int:
    with unit_of_work(site.url) as session:
        return session.scalars(select(Meter.id).where(Meter.serial == serial)).one()


def held_meters(site: Site, number: str) -> list[str]:
    account_id = site.account(number).id
    with unit_of_work(site.url) as session:
        return list(session.scalars(
            select(Meter.serial)
            .join(AccountMeter, AccountMeter.meter_id == Meter.id)
            .where(AccountMeter.account_id == account_id, AccountMeter.detached_at.is_(None))
            .order_by(Meter.serial)
        ))


def queued(site: Site, serial: str) -> list[str]:
    with unit_of_work(site.url) as session:
        return list(session.scalars(
            select(Command.kind)
            .join(Meter, Meter.id == Command.meter_id)
            .where(Meter.serial == serial, Command.state == "queued")
            .order_by(Command.id)
        ))


def test_a_viewer_has_no_accounts_page(site: Site) -> None:
    at = site.open_app("viewer")

    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("screens/accounts.py")


def test_the_accounts_page_itself_refuses_a_viewer(site: Site) -> None:
    at = AppTest.from_function(accounts_page, default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = site.operator_ids["viewer"]
    at.session_state["operator_username"] = "viewer"

    at.run()

    assert [e.value for e in at.error] == [
        "You are not allowed to manage accounts. Ask an administrator for the cashier role."
    ]
    assert not at.text_input


def test_search_by_unit_shows_the_account_with_its_balance_meters_and_ledger(site: Site) -> None:
    at = on_accounts_page(site)
    assert at.title[0].value == "Accounts"
    assert len(at.dataframe[0].value) == 43  # every open account of the demo mall

    find(at, "a101")

    results = table(at, "number")
    assert list(results["number"]) == ["10001"]
    account = site.account("10001")
    assert at.subheader[0].value == f"10001 · {account.tenant_name}"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Balance (CNY)"] == f"{account.balance:,.2f}"
    assert metrics["Alarm level"] in {"normal", "alarm 1", "alarm 2"}
    meters = table(at, "serial")
    assert list(meters["serial"]) == ["M00001"] and list(meters["unit"]) == ["A101"]
    ledger = table(at, "kind")
    assert list(ledger["kind"]) == ["sale"]  # the opening sale
    exports = {b.proto.label for b in at.get("download_button")}
    assert exports == {"Export to Excel"}
    assert len(at.get("download_button")) == 3  # results, meters and ledger
    # A cashier may not power-protect: that tab is the control permission's.
    assert [tab.label for tab in at.tabs] == [
        "Add meter", "Remove meter", "Old-meter transfer", "Tenant kiosk", "Close account",
    ]


def test_a_search_without_a_match_says_what_to_try(site: Site) -> None:
    at = on_accounts_page(site)

    find(at, "nobody-here")

    assert [i.value for i in at.info] == [
        "No account matches “nobody-here”. Try part of the number, tenant, unit or phone, "
        "or show closed accounts too."
    ]
    find(at, "", "closed")
    assert [i.value for i in at.info] == [
        "No accounts to show here — choose “All”, or open an account on the Open account page."
    ]


def test_add_then_remove_a_meter_after_confirming(site: Site) -> None:
    at = find(on_accounts_page(site), "10001")
    free = meter_id(site, "M00009")  # shop A201 has no account

    at.selectbox(key="accounts_add_meter").set_value(free)
    at.button(key="accounts_add_submit").click().run()

    assert [s.value for s in at.success] == ["Meter M00009 · A201 added to account 10001."]
    assert held_meters(site, "10001") == ["M00001", "M00009"]

    at.selectbox(key="accounts_remove_meter").set_value(free)
    at.button(key="accounts_remove_submit").click().run()
    assert [e.value for e in at.error] == [
        "Tick the confirmation box first; nothing was changed."
    ]
    assert held_meters(site, "10001") == ["M00001", "M00009"]

    at.selectbox(key="accounts_remove_meter").set_value(free)
    at.checkbox(key="accounts_remove_confirm").check()
    at.button(key="accounts_remove_submit").click().run()

    assert [s.value for s in at.success] == ["Meter M00009 · A201 removed from account 10001."]
    assert [i.value for i in at.info] == ["A trip command is queued for 1 meter(s)."]
    assert held_meters(site, "10001") == ["M00001"]
    assert queued(site, "M00009") == ["trip"]
    assert at.checkbox(key="accounts_remove_confirm").value is False  # ask again next time


def test_old_meter_transfer_with_a_final_reading(site: Site) -> None:
    balance = site.account("10001").balance
    at = find(on_accounts_page(site), "10001")
    at.selectbox(key="accounts_replace_old").set_value(meter_id(site, "M00001"))
    at.selectbox(key="accounts_replace_new").set_value(meter_id(site, "M00009"))
    at.text_input(key="accounts_replace_reading").input("12.3x")
    at.checkbox(key="accounts_replace_confirm").check()

    at.button(key="accounts_replace_submit").click().run()

    assert [e.value for e in at.error] == [
        "The reading of meter M00001 must be a number of kWh, for example 1234.56"
    ]
    assert held_meters(site, "10001") == ["M00001"]

    at.text_input(key="accounts_replace_reading").input("0")
    at.button(key="accounts_replace_submit").click().run()

    assert not at.error
    assert [s.value for s in at.success] == [
        f"Meter M00001 · A101 replaced by M00009 · A201; {balance:,.2f} CNY went with the account."
    ]
    assert held_meters(site, "10001") == ["M00009"]
    replacements = table(at, "old_meter")
    assert list(replacements["old_meter"]) == ["M00001"]


def test_an_administrator_turns_power_protect_on(site: Site) -> None:
    at = find(on_accounts_page(site, "admin"), "10001")
    assert "Power-protect" in [tab.label for tab in at.tabs]

    at.selectbox(key="accounts_protect_meter").set_value(meter_id(site, "M00001"))
    at.radio(key="accounts_protect_on").set_value(True)
    at.button(key="accounts_protect_submit").click().run()

    assert [s.value for s in at.success] == ["Power-protect is on for M00001 · A101."]
    meters = table(at, "serial")
    assert list(meters["protect"]) == ["on"]


def test_closing_an_account_once_refunds_the_rest_and_offers_the_receipt(site: Site) -> None:
    balance = site.account("10002").balance
    at = find(on_accounts_page(site), "10002")
    at.button(key="accounts_close_submit").click().run()
    assert [e.value for e in at.error] == [
        "Tick the confirmation box first; nothing was changed."
    ]
    assert site.account("10002").status == "open"
    drawn_key = at.session_state["accounts_close_key"]

    at.radio(key="accounts_close_method").set_value("transfer")
    at.text_input(key="accounts_close_note").input("moved to B2")
    at.checkbox(key="accounts_close_confirm").check()
    at.button(key="accounts_close_submit").click().run()

    assert [s.value for s in at.success] == ["Account 10002 is closed."]
    assert [i.value for i in at.info] == ["A trip command is queued for 1 meter(s)."]
    closed = site.account("10002")
    assert (closed.status, closed.balance) == ("closed", Decimal("0"))
    assert at.radio(key="accounts_status").value == "all"
    assert at.warning[0].value.startswith("This account was closed on ")
    record = "\n".join(m.value for m in at.markdown)
    assert f"Refunded (CNY): **{balance:,.2f}**" in record
    assert "Note: **moved to B2**" in record
    (receipt,) = [b for b in at.get("download_button") if b.proto.label.startswith("Receipt")]
    assert receipt.proto.label.endswith("(PDF)")
    assert not at.tabs  # a closed account has nothing left to do
    with unit_of_work(site.url) as session:
        refunds = session.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == "refund")
        ).all()
        assert [(r.amount, r.payment_method) for r in refunds] == [(-balance, "transfer")]
        assert session.scalar(select(func.count()).select_from(AccountClosing)) == 1
    assert at.session_state["accounts_close_key"] != drawn_key


def test_a_closed_account_is_found_among_closed_ones_with_its_record(site: Site) -> None:
    at = find(on_accounts_page(site), "10002")
    at.checkbox(key="accounts_close_confirm").check()
    at.button(key="accounts_close_submit").click().run()
    count = site.ledger_count()

    at = find(on_accounts_page(site), "", "closed")

    results = table(at, "number")
    assert list(results["number"]) == ["10002"] and list(results["status"]) == ["closed"]
    assert list(results["units"]) == ["A102"]
    assert "Closing record" in [m.value.strip("*") for m in at.markdown]
    assert site.ledger_count() == count


def test_picking_among_several_then_searching_again(site: Site) -> None:
    at = find(on_accounts_page(site), "1000")  # 10001 … 10009, less the shop not opened
    at.selectbox(key="accounts_pick").set_value(site.account("10003").id).run()
    assert at.subheader[0].value.startswith("10003 · ")

    find(at, "1004")  # 10040 … 10048: 10003 is no longer among them

    assert not at.exception
    assert at.selectbox(key="accounts_pick").value is None
    assert not at.subheader


def test_the_accounts_page_in_chinese(site: Site) -> None:
    at = site.open_app("cashier")
    at.radio(key="lang").set_value("zh").run()

    at.switch_page("screens/accounts.py").run()

    assert at.title[0].value == "账户管理"
    assert at.radio(key="accounts_status").options == ["在用账户", "已销户账户", "全部"]
    assert at.selectbox(key="accounts_pick").placeholder == "选择账户查看详情"
