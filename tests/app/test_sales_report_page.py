"""Sales reports: the day's money by payment method and operator, and balances that add up."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
import streamlit as st
from openpyxl import load_workbook
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from billing import ledger, sales
from schema.db import unit_of_work
from schema.models import Account, LedgerEntry, Operator
from tests.app.support import Site
from voltpay.settings import get_settings


def yesterday() -> date:
    return datetime.now(UTC).astimezone(get_settings().tz).date() - timedelta(days=1)


def post_day(site: Site) -> None:
    """Yesterday (the demo site's accounts were opened today) the cashier sold 100 cash and 50
    by card to 10003, refunded 20 cash, a sale of 30 was reversed by the admin, and the meter
    used 1.2345 of electricity."""
    now = datetime.combine(yesterday(), time(12), tzinfo=get_settings().tz).astimezone(UTC)
    policy = get_settings().billing_policy()
    with unit_of_work(site.url) as session:
        cashier = session.get_one(Operator, site.operator_ids["cashier"])
        admin = session.get_one(Operator, site.operator_ids["admin"])
        account_id = session.scalars(select(Account.id).where(Account.number == "10003")).one()

        def sell(amount: str, method: str) -> sales.PostResult:
            return sales.sell(session, account_id=account_id, amount=amount, payment_method=method,
                              idempotency_key=str(uuid.uuid4()), operator=cashier, now=now,
                              policy=policy)

        sell("100.00", "cash")
        sell("50.00", "card")
        wrong = sell("30.00", "cash")
        sales.reverse(session, entry_id=wrong.entry.id, reason="wrong account",
                      idempotency_key=str(uuid.uuid4()), operator=admin, now=now, policy=policy)
        sales.refund(session, account_id=account_id, amount="20.00", reason="overpaid",
                     idempotency_key=str(uuid.uuid4()), operator=cashier, now=now, policy=policy)
        account = ledger.lock_account(session, account_id)
        ledger.post(session, account, kind="charge", amount=Decimal("-1.2345"),
                    idempotency_key="test-charge", effective_at=now, recorded_at=now)


def total_balance(site: Site) -> Decimal:
    with unit_of_work(site.url) as session:
        return session.scalar(select(func.sum(Account.balance))) or Decimal(0)


def ledger_before(site: Site, on: date) -> Decimal:
    """Every account's entries before the local day `on`, added up by hand."""
    midnight = datetime.combine(on, time(0), tzinfo=get_settings().tz)
    with unit_of_work(site.url) as session:
        return session.scalar(
            select(func.sum(LedgerEntry.amount)).where(LedgerEntry.effective_at < midnight)
        ) or Decimal(0)


def report_page(site: Site, username: str = "viewer") -> AppTest:
    return site.open_app(username).switch_page("screens/sales_report.py").run()


def yesterdays_report(site: Site) -> AppTest:
    at = report_page(site)
    return at.date_input(key="sales_report_date").set_value(yesterday()).run()


def amounts(table: object) -> dict[str, Decimal]:
    return {
        item: Decimal(str(amount))
        for item, amount in zip(table["item"], table["amount"], strict=True)  # type: ignore[index]
    }


def test_todays_report_by_method_and_operator_adds_up(site: Site) -> None:
    post_day(site)

    at = yesterdays_report(site)

    assert not at.exception
    assert at.title[0].value == "Sales reports"
    assert at.subheader[0].value.startswith("Daily report · ")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Net sales (CNY)"] == "130.00"  # 100 + 50 + 30 - 30 - 20
    assert metrics["Refunds (CNY)"] == "20.00"
    assert metrics["Electricity used (CNY)"] == "1.2345"
    opening = ledger_before(site, yesterday())
    closing = ledger_before(site, yesterday() + timedelta(days=1))
    assert metrics["Closing balance (CNY)"] == f"{closing:,.4f}"

    summary = at.dataframe[0].value
    assert amounts(summary) == {
        "Opening balance": opening,
        "+ Sales": Decimal("180.00"),
        "− Refunds": Decimal("-20.00"),
        "± Reversals": Decimal("-30.00"),
        "− Charges (electricity used)": Decimal("-1.2345"),
        "± Transfers": Decimal(0),
        "= Closing balance": closing,
    }
    assert opening + 180 - 20 - 30 - Decimal("1.2345") == closing
    assert f"= closing {closing:,.4f}" in at.caption[1].value

    methods = at.dataframe[1].value.set_index("key")
    assert methods.loc["Cash", "net"] == 80.0  # 100 + 30 - 30 (reversed) - 20 (refunded)
    assert methods.loc["Card", "net"] == 50.0
    operators = at.dataframe[2].value.set_index("key")
    assert operators.loc["cashier", "sales_count"] == 3
    assert operators.loc["admin", "reversals"] == -30.0
    assert len(at.get("download_button")) == 3


def test_monthly_and_yearly_reports_list_days_and_months(site: Site) -> None:
    post_day(site)
    at = yesterdays_report(site)

    at.radio(key="sales_report_period").set_value("month").run()

    assert at.subheader[0].value.startswith("Monthly report · ")
    days = at.dataframe[3].value
    assert len(days) >= 28
    assert days["sales"].iloc[yesterday().day - 1] == 180.0
    assert days["charges"].iloc[yesterday().day - 1] == Decimal("1.2345")
    assert len(at.get("download_button")) == 4

    at.radio(key="sales_report_period").set_value("year").run()

    months = at.dataframe[3].value
    assert list(months["period"]) == [f"{yesterday().year}-{m:02d}" for m in range(1, 13)]
    # Today's demo openings fall in this year unless yesterday was 31 December.
    if yesterday().year == (yesterday() + timedelta(days=1)).year:
        assert months["closing"].iloc[-1] == total_balance(site)


def test_a_day_without_sales_says_what_to_do(site: Site) -> None:
    at = report_page(site)

    at.date_input(key="sales_report_date").set_value(
        datetime.now(UTC).date() - timedelta(days=400)
    ).run()

    assert not at.exception
    assert [i.value for i in at.info] == [
        "Nothing was sold, refunded or charged in this period — choose another day, or post a "
        "sale on the Sale page."
    ]
    assert amounts(at.dataframe[0].value)["= Closing balance"] == 0


def test_the_report_in_chinese(make_site: Callable[..., Site]) -> None:
    at = report_page(make_site(seed=False), "admin")

    at.radio(key="lang").set_value("zh").run()

    assert at.title[0].value == "售电报表"
    assert at.info[0].value.startswith("该周期内没有售电")
    assert {b.proto.label for b in at.get("download_button")} == {"导出 Excel"}


def test_the_balances_export_opens_in_excel_with_exact_amounts(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported: dict[str, tuple[str, Callable[[], bytes]]] = {}
    offer = st.download_button

    def capture(label: str, data: Callable[[], bytes], file_name: str, **kwargs: Any) -> bool:
        exported[kwargs["key"]] = (file_name, data)
        return offer(label, data, file_name, **kwargs)

    monkeypatch.setattr(st, "download_button", capture)
    post_day(site)

    yesterdays_report(site)

    file_name, data = exported["sales_report_summary_export"]
    assert file_name == f"sales-balances-day-{yesterday()}.xlsx"
    sheet = load_workbook(io.BytesIO(data())).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("Item", "Entries", "Amount (CNY)")
    assert rows[5] == ("− Charges (electricity used)", 1, -1.2345)
    assert sheet["C6"].number_format == "#,##0.0000"
    closing = ledger_before(site, yesterday() + timedelta(days=1))
    assert rows[-1] == ("= Closing balance", None, float(closing))
