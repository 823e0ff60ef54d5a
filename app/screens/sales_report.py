"""Sales reports (售电报表): daily, monthly and yearly money in and out, and the balances."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import streamlit as st

from app import auth, i18n
from app.export import INTEGER, XLSX_MIME, Column, xlsx_bytes
from app.i18n import t
from app.nav import Screen
from app.screens.energy import today
from billing import reports, sales
from billing.errors import BillingError
from billing.money import CENT, format_money
from billing.operators import can
from billing.reports import SALES_PERIODS, SalesLine, SalesPeriod, SalesReport
from schema.db import unit_of_work
from schema.models import Operator
from voltpay.settings import get_settings

# A finished period changes only by late readings' charges: its report is kept a while.
PAST_CACHE_TTL_S = 300

STRINGS = {
    "en": {
        "sales_report.nav": "Sales reports",
        "sales_report.title": "Sales reports",
        "sales_report.period": "Report",
        "sales_report.period.day": "Daily",
        "sales_report.period.month": "Monthly",
        "sales_report.period.year": "Yearly",
        "sales_report.date": "Any day of the period",
        "sales_report.heading.day": "Daily report · {start}",
        "sales_report.heading.month": "Monthly report · {start} – {end}",
        "sales_report.heading.year": "Yearly report · {start} – {end}",
        "sales_report.times": "Days run midnight to midnight in {tz}.",
        "sales_report.empty": "Nothing was sold, refunded or charged in this period — choose "
        "another day, or post a sale on the Sale page.",
        "sales_report.metric.net": "Net sales ({currency})",
        "sales_report.metric.refunds": "Refunds ({currency})",
        "sales_report.metric.charges": "Electricity used ({currency})",
        "sales_report.metric.closing": "Closing balance ({currency})",
        "sales_report.balances": "Balances",
        "sales_report.identity": "Opening {opening} + sales {sales} − refunds {refunds} "
        "{reversals_sign} reversals {reversals} − charges {charges} {transfers_sign} transfers "
        "{transfers} = closing {closing}",
        "sales_report.item.opening": "Opening balance",
        "sales_report.item.sales": "+ Sales",
        "sales_report.item.refunds": "− Refunds",
        "sales_report.item.reversals": "± Reversals",
        "sales_report.item.charges": "− Charges (electricity used)",
        "sales_report.item.transfers": "± Transfers",
        "sales_report.item.closing": "= Closing balance",
        "sales_report.by_method": "By payment method",
        "sales_report.by_operator": "By operator",
        "sales_report.lines.month": "Day by day",
        "sales_report.lines.year": "Month by month",
        "sales_report.no_operator": "(system)",
        "sales_report.no_method": "(none)",
        "sales_report.col.item": "Item",
        "sales_report.col.count": "Entries",
        "sales_report.col.amount": "Amount ({currency})",
        "sales_report.col.method": "Payment method",
        "sales_report.col.operator": "Operator",
        "sales_report.col.day": "Day",
        "sales_report.col.month": "Month",
        "sales_report.col.sales_count": "Sales",
        "sales_report.col.sales": "Sales ({currency})",
        "sales_report.col.refunds_count": "Refunds",
        "sales_report.col.refunds": "Refunds ({currency})",
        "sales_report.col.reversals_count": "Reversals",
        "sales_report.col.reversals": "Reversals ({currency})",
        "sales_report.col.net": "Net ({currency})",
        "sales_report.col.opening": "Opening ({currency})",
        "sales_report.col.charges": "Charges ({currency})",
        "sales_report.col.transfers": "Transfers ({currency})",
        "sales_report.col.closing": "Closing ({currency})",
        "sales_report.export": "Export to Excel",
    },
    "zh": {
        "sales_report.nav": "售电报表",
        "sales_report.title": "售电报表",
        "sales_report.period": "报表",
        "sales_report.period.day": "日报",
        "sales_report.period.month": "月报",
        "sales_report.period.year": "年报",
        "sales_report.date": "周期内任意一天",
        "sales_report.heading.day": "日报 · {start}",
        "sales_report.heading.month": "月报 · {start} – {end}",
        "sales_report.heading.year": "年报 · {start} – {end}",
        "sales_report.times": "每天按 {tz} 时间从零点到零点计算。",
        "sales_report.empty": "该周期内没有售电、退电或扣费——请选择其他日期，或在售电页面售电。",
        "sales_report.metric.net": "净售电额（{currency}）",
        "sales_report.metric.refunds": "退电额（{currency}）",
        "sales_report.metric.charges": "用电扣费（{currency}）",
        "sales_report.metric.closing": "期末余额（{currency}）",
        "sales_report.balances": "余额",
        "sales_report.identity": "期初 {opening} + 售电 {sales} − 退电 {refunds} "
        "{reversals_sign} 冲正 {reversals} − 扣费 {charges} {transfers_sign} 转入 {transfers} "
        "= 期末 {closing}",
        "sales_report.item.opening": "期初余额",
        "sales_report.item.sales": "+ 售电",
        "sales_report.item.refunds": "− 退电",
        "sales_report.item.reversals": "± 冲正",
        "sales_report.item.charges": "− 扣费（用电）",
        "sales_report.item.transfers": "± 转入",
        "sales_report.item.closing": "= 期末余额",
        "sales_report.by_method": "按付款方式",
        "sales_report.by_operator": "按操作员",
        "sales_report.lines.month": "按日",
        "sales_report.lines.year": "按月",
        "sales_report.no_operator": "（系统）",
        "sales_report.no_method": "（无）",
        "sales_report.col.item": "项目",
        "sales_report.col.count": "笔数",
        "sales_report.col.amount": "金额（{currency}）",
        "sales_report.col.method": "付款方式",
        "sales_report.col.operator": "操作员",
        "sales_report.col.day": "日期",
        "sales_report.col.month": "月份",
        "sales_report.col.sales_count": "售电笔数",
        "sales_report.col.sales": "售电（{currency}）",
        "sales_report.col.refunds_count": "退电笔数",
        "sales_report.col.refunds": "退电（{currency}）",
        "sales_report.col.reversals_count": "冲正笔数",
        "sales_report.col.reversals": "冲正（{currency}）",
        "sales_report.col.net": "净额（{currency}）",
        "sales_report.col.opening": "期初（{currency}）",
        "sales_report.col.charges": "扣费（{currency}）",
        "sales_report.col.transfers": "转入（{currency}）",
        "sales_report.col.closing": "期末（{currency}）",
        "sales_report.export": "导出 Excel",
    },
}
# Streamlit runs this file again as the page script; the module import registered them then.
if STRINGS["en"].keys() - i18n.STRINGS["en"].keys():
    i18n.register(STRINGS)

SCREEN = Screen(module="sales_report", url_path="sales-reports", title_key="sales_report.nav",
                permission="view", icon=":material/receipt_long:", section="section.reports",
                order=40)


def render() -> None:
    st.title(t("sales_report.title"))
    with unit_of_work(auth.database_url()) as session:
        operator = auth.current_operator(session)
        allowed = can(operator, "view")
    if not allowed or operator is None:
        st.error(t("denied.view"))
        return
    period_col, date_col = st.columns([2, 1])
    period: SalesPeriod = period_col.radio(
        t("sales_report.period"), SALES_PERIODS, horizontal=True, key="sales_report_period",
        format_func=lambda p: t(f"sales_report.period.{p}"),
    )
    on = date_col.date_input(t("sales_report.date"), value=today(), key="sales_report_date",
                             format="YYYY-MM-DD")
    try:
        report = _report(auth.database_url(), operator.id, period, on)
    except BillingError as exc:
        st.error(str(exc))
        return
    st.subheader(t(f"sales_report.heading.{period}", start=report.start_on, end=report.end_on))
    st.caption(t("sales_report.times", tz=get_settings().tz.key))
    totals = report.totals
    if not (totals.sales_count or totals.refunds_count or totals.reversals_count
            or totals.charges_count or totals.transfers):
        st.info(t("sales_report.empty"))
    _metrics(report)
    _balances(report)
    _lines_table(t("sales_report.by_method"), "methods", report.by_method, report,
                 t("sales_report.col.method"), _method_name)
    _lines_table(t("sales_report.by_operator"), "operators", report.by_operator, report,
                 t("sales_report.col.operator"), lambda key: key or t("sales_report.no_operator"))
    if report.period != "day":
        _periods_table(report)


def _report(database_url: str, operator_id: int, period: SalesPeriod, on: date) -> SalesReport:
    """Today's report is read afresh: a cashier checks it right after posting a sale."""
    start_on, end_on = reports.period_days(period, on)
    if start_on <= today() <= end_on:
        return _read_report(database_url, operator_id, period, on)
    return _past_report(database_url, operator_id, period, start_on)


@st.cache_data(ttl=PAST_CACHE_TTL_S, max_entries=64, show_spinner=False)
def _past_report(
    database_url: str, operator_id: int, period: SalesPeriod, start_on: date
) -> SalesReport:
    """Cached per operator: the service checks the permission whenever it runs."""
    return _read_report(database_url, operator_id, period, start_on)


def _read_report(
    database_url: str, operator_id: int, period: SalesPeriod, on: date
) -> SalesReport:
    with unit_of_work(database_url) as session:
        return reports.sales_report(session, operator=session.get(Operator, operator_id),
                                    period=period, on=on, tz=get_settings().tz)


def _method_name(method: str) -> str:
    if method in sales.PAYMENT_METHODS:
        return t(f"method.{method}")
    return method or t("sales_report.no_method")


def _places(report: SalesReport) -> int:
    """Charges carry 4 decimal places: balances are shown with 4 when they have them, so the
    balance identity can be checked on the page to the last digit."""
    values = [report.opening, report.closing, report.totals.charges, report.totals.transfers]
    values += [line.opening for line in report.lines]
    return 2 if all(value == value.quantize(CENT) for value in values) else 4


def _money(amount: Decimal, places: int = 2) -> str:
    return format_money(amount, places)


def _metrics(report: SalesReport) -> None:
    currency = get_settings().currency
    totals = report.totals
    net, refunds, charges, closing = st.columns(4)
    net.metric(t("sales_report.metric.net", currency=currency), _money(totals.net_sales),
               border=True)
    refunds.metric(t("sales_report.metric.refunds", currency=currency), _money(totals.refunds),
                   border=True)
    charges.metric(t("sales_report.metric.charges", currency=currency),
                   _money(totals.charges, _places(report)), border=True)
    closing.metric(t("sales_report.metric.closing", currency=currency),
                   _money(report.closing, _places(report)), border=True)


def _number_format(places: int) -> str:
    return "#,##0." + "0" * places


def _export(
    label_key: str, rows: list[dict[str, Any]], columns: list[Column], name: str, key: str
) -> None:
    st.download_button(
        t(label_key), data=lambda: xlsx_bytes(rows, columns, sheet=name[:31]),
        file_name=f"{name}.xlsx", mime=XLSX_MIME, key=key, icon=":material/download:",
        on_click="ignore",
    )


def _file_name(report: SalesReport, what: str) -> str:
    return f"sales-{what}-{report.period}-{report.start_on}"


def _balances(report: SalesReport) -> None:
    currency = get_settings().currency
    places = _places(report)
    totals = report.totals
    st.subheader(t("sales_report.balances"))
    items: list[tuple[str, int | None, Decimal]] = [
        ("opening", None, report.opening),
        ("sales", totals.sales_count, totals.sales),
        ("refunds", totals.refunds_count, -totals.refunds),
        ("reversals", totals.reversals_count, totals.reversals),
        ("charges", totals.charges_count, -totals.charges),
        ("transfers", None, totals.transfers),
        ("closing", None, report.closing),
    ]
    rows: list[dict[str, Any]] = [
        {"item": t(f"sales_report.item.{item}"), "count": count,
         "amount": amount.quantize(Decimal(1).scaleb(-places))}
        for item, count, amount in items
    ]
    headers = {
        "item": t("sales_report.col.item"),
        "count": t("sales_report.col.count"),
        "amount": t("sales_report.col.amount", currency=currency),
    }
    column = st.column_config
    st.dataframe(
        rows, key="sales_report_summary", hide_index=True,
        column_config={
            "item": column.TextColumn(headers["item"]),
            "count": column.NumberColumn(headers["count"], format="%d"),
            "amount": column.NumberColumn(headers["amount"], format=f"%,.{places}f"),
        },
    )
    st.caption(
        t("sales_report.identity", opening=_money(report.opening, places),
          sales=_money(totals.sales), refunds=_money(totals.refunds),
          reversals_sign="−" if totals.reversals < 0 else "+",
          reversals=_money(abs(totals.reversals)), charges=_money(totals.charges, places),
          transfers_sign="−" if totals.transfers < 0 else "+",
          transfers=_money(abs(totals.transfers), places), closing=_money(report.closing, places))
    )
    columns = [Column("item", headers["item"]), Column("count", headers["count"], INTEGER),
               Column("amount", headers["amount"], _number_format(places))]
    _export("sales_report.export", rows, columns, _file_name(report, "balances"),
            "sales_report_summary_export")


def _lines_table(
    title: str,
    name: str,
    lines: list[SalesLine],
    report: SalesReport,
    key_header: str,
    key_label: Any,
) -> None:
    currency = get_settings().currency
    st.subheader(title)
    rows: list[dict[str, Any]] = [
        {
            "key": key_label(line.key),
            "sales_count": line.sales_count,
            "sales": line.sales,
            "refunds_count": line.refunds_count,
            "refunds": line.refunds,
            "reversals_count": line.reversals_count,
            "reversals": line.reversals,
            "net": line.net,
        }
        for line in lines
    ]
    headers = {"key": key_header} | {
        key: t(f"sales_report.col.{key}", currency=currency)
        for key in ("sales_count", "sales", "refunds_count", "refunds", "reversals_count",
                    "reversals", "net")
    }
    column = st.column_config
    st.dataframe(
        rows, key=f"sales_report_{name}", hide_index=True,
        column_config={
            key: column.TextColumn(header) if key == "key"
            else column.NumberColumn(header, format="%d" if key.endswith("count") else "%,.2f")
            for key, header in headers.items()
        },
    )
    formats = {key: INTEGER if key.endswith("count") else _number_format(2)
               for key in headers if key != "key"}
    columns = [Column(key, header, formats.get(key)) for key, header in headers.items()]
    _export("sales_report.export", rows, columns, _file_name(report, name),
            f"sales_report_{name}_export")


def _periods_table(report: SalesReport) -> None:
    currency = get_settings().currency
    places = _places(report)
    quantum = Decimal(1).scaleb(-places)
    st.subheader(t(f"sales_report.lines.{report.period}"))
    monthly = report.period == "year"
    rows: list[dict[str, Any]] = [
        {
            "period": line.start_on.strftime("%Y-%m") if monthly else line.start_on,
            "opening": line.opening.quantize(quantum),
            "sales": line.movements.sales,
            "refunds": line.movements.refunds,
            "reversals": line.movements.reversals,
            "charges": line.movements.charges.quantize(quantum),
            "transfers": line.movements.transfers.quantize(quantum),
            "closing": line.closing.quantize(quantum),
            "net": line.movements.net_sales,
        }
        for line in report.lines
    ]
    headers = {"period": t("sales_report.col.month" if monthly else "sales_report.col.day")} | {
        key: t(f"sales_report.col.{key}", currency=currency)
        for key in ("opening", "sales", "refunds", "reversals", "charges", "transfers",
                    "closing", "net")
    }
    wide = ("opening", "charges", "transfers", "closing")
    column = st.column_config
    config: dict[str, Any] = {
        key: column.NumberColumn(header, format=f"%,.{places if key in wide else 2}f")
        for key, header in headers.items()
    }
    config["period"] = (column.TextColumn(headers["period"]) if monthly
                        else column.DateColumn(headers["period"], format="YYYY-MM-DD"))
    st.dataframe(rows, key="sales_report_lines", hide_index=True, column_config=config)
    columns = [
        Column(key, header, None if key == "period"
               else _number_format(places if key in wide else 2))
        for key, header in headers.items()
    ]
    _export("sales_report.export", rows, columns, _file_name(report, "lines"),
            "sales_report_lines_export")


if __name__ == "__main__":
    render()
