"""Sales records (售电查询): the day's sales, refunds, reversals, openings and closings with their
totals, narrowed by account, operator and payment method; each table exports to Excel."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from openpyxl import load_workbook
from pandas import DataFrame
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from app.screens.accounts import TableColumn, table_xlsx
from billing import accounts, sales
from schema.db import unit_of_work
from schema.models import Account, LedgerEntry, Operator, Role
from tests.app.support import TIMEOUT_S, Site
from voltpay.settings import get_settings


def sales_query_page() -> None:
    from app.screens.sales_query import render

    render()


def on_records_page(site: Site, username: str = "viewer") -> AppTest:
    return site.open_app(username).switch_page("screens/sales_query.py").run()


TABS = ("sale", "refund", "reversal", "opening", "closing")


def table(at: AppTest, tab: str) -> DataFrame:
    (found,) = at.tabs[TABS.index(tab)].dataframe
    return found.value


def day_of_business(site: Site) -> None:
    """The cashier refunds 10.00 to 10003, the administrator reverses 10004's opening sale and
    closes 10005 (paid out as a refund)."""
    now = datetime.now(UTC)
    with unit_of_work(site.url) as session:
        cashier = session.get_one(Operator, site.operator_ids["cashier"])
        admin = session.get_one(Operator, site.operator_ids["admin"])
        number = {a.number: a.id for a in session.scalars(select(Account))}
        sales.refund(session, account_id=number["10003"], amount="10.00", reason="overpaid",
                     idempotency_key="r", operator=cashier, now=now,
                     policy=get_settings().billing_policy(), payment_method="cash")
        opening = session.scalars(select(LedgerEntry.id).where(
            LedgerEntry.account_id == number["10004"], LedgerEntry.kind == "sale")).one()
        sales.reverse(session, entry_id=opening, reason="wrong account", idempotency_key="v",
                      operator=admin, now=now, policy=get_settings().billing_policy())
        accounts.close_account(session, account_id=number["10005"], operator=admin, now=now,
                               policy=get_settings().billing_policy(), idempotency_key="c")


def test_a_role_without_view_is_refused(site: Site) -> None:
    with unit_of_work(site.url) as session:
        session.add(Role(name="nobody", permissions=[]))
        session.flush()
        session.get_one(Operator, site.operator_ids["viewer"]).role = "nobody"
    at = AppTest.from_function(sales_query_page, default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = site.operator_ids["viewer"]
    at.session_state["operator_username"] = "viewer"

    at.run()

    assert [e.value for e in at.error] == [
        "You are not allowed to view sales records. Ask an administrator for access."
    ]
    assert not at.dataframe


def test_todays_records_with_totals_in_five_tables(site: Site) -> None:
    day_of_business(site)
    with unit_of_work(site.url) as session:
        sold = session.scalar(
            select(func.sum(LedgerEntry.amount)).where(LedgerEntry.kind == "sale")
        )
        reversed_sale = session.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == "reversal")
        ).one()
    assert sold is not None

    at = on_records_page(site)

    assert at.title[0].value == "Sales records"
    assert [tab.label for tab in at.tabs] == [
        "Sales (43)", "Refunds (2)", "Reversals (1)", "Openings (43)", "Closings (1)",
    ]
    metrics = {m.label: m.value for m in at.tabs[0].metric}
    assert metrics == {
        "Count": "43",
        "Sold (CNY)": f"{sold:,.2f}",
        "Since reversed (CNY)": f"{-reversed_sale.amount:,.2f}",
        "Net (CNY)": f"{sold + reversed_sale.amount:,.2f}",
    }
    sales_table = table(at, "sale")
    assert len(sales_table) == 43
    reversed_rows = sales_table[sales_table["reversed_by"] != ""]
    assert list(reversed_rows["account"]) == ["10004"]
    assert list(reversed_rows["reversed_by"]) == [reversed_sale.receipt_no]
    refunds = table(at, "refund")
    assert list(refunds.columns) == [
        "at", "receipt_no", "account", "tenant", "refunded", "method", "note", "operator",
        "reversed_by",
    ]
    assert list(refunds["note"]) == ["overpaid", "account closed"]
    assert Decimal(str(refunds["refunded"].iloc[0])) == Decimal("10.00")
    assert list(table(at, "reversal")["account"]) == ["10004"]
    assert len(table(at, "opening")) == 43
    closings = table(at, "closing")
    assert list(closings["account"]) == ["10005"]
    exports = [b for b in at.get("download_button") if b.proto.label == "Export to Excel"]
    assert len(exports) == 5


def test_records_narrowed_by_operator_method_and_account(site: Site) -> None:
    day_of_business(site)
    at = on_records_page(site, "admin")

    at.selectbox(key="sales_query_operator").set_value(site.operator_ids["cashier"]).run()
    assert [tab.label for tab in at.tabs] == [
        "Sales (0)", "Refunds (1)", "Reversals (0)", "Openings (0)", "Closings (0)",
    ]
    assert at.tabs[0].info[0].value == (
        "No sales in this period — widen the dates or clear the filters."
    )

    at.selectbox(key="sales_query_operator").set_value(None)
    at.selectbox(key="sales_query_method").set_value("card").run()
    with unit_of_work(site.url) as session:
        by_card = session.scalar(
            select(func.count()).select_from(LedgerEntry)
            .where(LedgerEntry.kind == "sale", LedgerEntry.payment_method == "card")
        )
    assert at.tabs[0].label == f"Sales ({by_card})"
    assert set(table(at, "sale")["method"]) == {"Card"}

    at.selectbox(key="sales_query_method").set_value(None)
    at.text_input(key="sales_query_account").input("10005").run()
    assert [tab.label for tab in at.tabs] == [
        "Sales (1)", "Refunds (1)", "Reversals (0)", "Openings (1)", "Closings (1)",
    ]


def test_other_days_and_a_reversed_period(site: Site) -> None:
    at = on_records_page(site)
    today = at.date_input(key="sales_query_from").value
    assert isinstance(today, type(datetime.now(UTC).date()))

    at.date_input(key="sales_query_from").set_value(today - timedelta(days=7))
    at.date_input(key="sales_query_to").set_value(today - timedelta(days=1)).run()
    assert [tab.label for tab in at.tabs] == [
        "Sales (0)", "Refunds (0)", "Reversals (0)", "Openings (0)", "Closings (0)",
    ]

    at.date_input(key="sales_query_from").set_value(today + timedelta(days=1)).run()
    assert [e.value for e in at.error] == [
        f"The start date {today + timedelta(days=1)} is after the end date "
        f"{today - timedelta(days=1)}: swap them."
    ]
    assert not at.tabs


def test_an_export_has_real_headers_money_formats_and_local_times(site: Site) -> None:
    assert get_settings().site_tz == "Asia/Shanghai"
    at_utc = datetime(2026, 11, 2, 16, 30, tzinfo=UTC)  # 00:30 on 3 November in Shanghai
    columns = [TableColumn("at", "Time (Asia/Shanghai)", "time"),
               TableColumn("amount", "Amount (CNY)", "money")]

    data = table_xlsx([{"at": at_utc, "amount": Decimal("1234.50")}], columns, sheet="Sales")

    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None and sheet.title == "Sales"
    assert [c.value for c in sheet[1]] == ["Time (Asia/Shanghai)", "Amount (CNY)"]
    assert sheet["A2"].value.isoformat() == "2026-11-03T00:30:00"  # local, as Excel shows it
    assert (sheet["B2"].value, sheet["B2"].number_format) == (1234.5, "#,##0.00")
