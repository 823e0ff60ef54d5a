"""Sales records (售电查询): sales, refunds, reversals, openings and closings of a period of
local dates, narrowed by account, operator and payment method, with totals and Excel exports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import streamlit as st
from sqlalchemy.orm import Session

from app import auth
from app.i18n import STRINGS, register, t
from app.nav import Screen
from app.screens.accounts import (
    TableColumn,
    entry_record,
    headers,
    method_label,
    show_table,
)
from billing import account_views as views
from billing import sales
from billing.account_views import ClosingRow, EntryRow, OpeningRow, RecordFilter, RecordTotals
from billing.money import format_money
from billing.operators import can
from schema.db import unit_of_work
from voltpay.settings import get_settings

TABS = ("sale", "refund", "reversal", "opening", "closing")

SCREEN = Screen(module="sales_query", url_path="sales-records", title_key="sales_query.nav",
                permission="view", icon=":material/receipt_long:", section="section.accounts",
                order=60)

TEXT = {
    "en": {
        "sales_query.nav": "Sales records",
        "sales_query.title": "Sales records",
        "sales_query.denied": "You are not allowed to view sales records. "
        "Ask an administrator for access.",
        "sales_query.from": "From",
        "sales_query.to": "To",
        "sales_query.account": "Account or tenant",
        "sales_query.account_placeholder": "Part of an account number or tenant name",
        "sales_query.operator": "Operator",
        "sales_query.method": "Payment method",
        "sales_query.all_operators": "All operators",
        "sales_query.all_methods": "All methods",
        "sales_query.bad_dates": "The start date {start} is after the end date {end}: "
        "swap them.",
        "sales_query.period": "{start} to {end} ({tz})",
        "sales_query.tab.sale": "Sales ({count})",
        "sales_query.tab.refund": "Refunds ({count})",
        "sales_query.tab.reversal": "Reversals ({count})",
        "sales_query.tab.opening": "Openings ({count})",
        "sales_query.tab.closing": "Closings ({count})",
        "sales_query.empty.sale": "No sales in this period — widen the dates or clear the "
        "filters.",
        "sales_query.empty.refund": "No refunds in this period — widen the dates or clear the "
        "filters.",
        "sales_query.empty.reversal": "No reversals in this period — widen the dates or clear "
        "the filters.",
        "sales_query.empty.opening": "No accounts opened in this period — widen the dates or "
        "clear the filters.",
        "sales_query.empty.closing": "No accounts closed in this period — widen the dates or "
        "clear the filters.",
        "sales_query.truncated": "Showing the first {limit} rows; the totals cover the whole "
        "period. Narrow the dates to see the rest.",
        "sales_query.metric.count": "Count",
        "sales_query.metric.sold": "Sold ({currency})",
        "sales_query.metric.refunded": "Refunded ({currency})",
        "sales_query.metric.reversed": "Since reversed ({currency})",
        "sales_query.metric.net": "Net ({currency})",
        "sales_query.metric.effect": "Effect on balances ({currency})",
        "sales_query.metric.debt": "Debt left ({currency})",
        "sales_query.by_method": "{method}: {count} · {amount}",
        "sales_query.col.time": "Time ({tz})",
        "sales_query.col.receipt": "Receipt",
        "sales_query.col.account": "Account",
        "sales_query.col.tenant": "Tenant",
        "sales_query.col.amount": "Amount ({currency})",
        "sales_query.col.refunded": "Refunded ({currency})",
        "sales_query.col.balance_after": "Balance after ({currency})",
        "sales_query.col.method": "Payment method",
        "sales_query.col.refund_method": "Refund method",
        "sales_query.col.operator": "Operator",
        "sales_query.col.reason": "Reason",
        "sales_query.col.note": "Note",
        "sales_query.col.reverses": "Reverses",
        "sales_query.col.reversed_by": "Reversed by",
        "sales_query.col.opened": "Opened ({tz})",
        "sales_query.col.closed": "Closed ({tz})",
        "sales_query.col.phone": "Phone",
        "sales_query.col.units": "Units",
        "sales_query.col.meters": "Meters",
        "sales_query.col.status": "Status now",
        "sales_query.col.balance": "Balance now ({currency})",
        "sales_query.col.final_balance": "Final balance ({currency})",
        "sales_query.col.debt": "Debt ({currency})",
        "sales_query.sheet.sale": "Sales",
        "sales_query.sheet.refund": "Refunds",
        "sales_query.sheet.reversal": "Reversals",
        "sales_query.sheet.opening": "Openings",
        "sales_query.sheet.closing": "Closings",
    },
    "zh": {
        "sales_query.nav": "售电查询",
        "sales_query.title": "售电查询",
        "sales_query.denied": "您没有查看售电记录的权限，请联系管理员开通。",
        "sales_query.from": "开始日期",
        "sales_query.to": "结束日期",
        "sales_query.account": "账户或租户",
        "sales_query.account_placeholder": "账户号或租户名称的一部分",
        "sales_query.operator": "操作员",
        "sales_query.method": "付款方式",
        "sales_query.all_operators": "全部操作员",
        "sales_query.all_methods": "全部方式",
        "sales_query.bad_dates": "开始日期 {start} 晚于结束日期 {end}：请对调。",
        "sales_query.period": "{start} 至 {end}（{tz}）",
        "sales_query.tab.sale": "售电（{count}）",
        "sales_query.tab.refund": "退电（{count}）",
        "sales_query.tab.reversal": "冲正（{count}）",
        "sales_query.tab.opening": "开户（{count}）",
        "sales_query.tab.closing": "销户（{count}）",
        "sales_query.empty.sale": "该期间没有售电——请放宽日期或清除筛选条件。",
        "sales_query.empty.refund": "该期间没有退电——请放宽日期或清除筛选条件。",
        "sales_query.empty.reversal": "该期间没有冲正——请放宽日期或清除筛选条件。",
        "sales_query.empty.opening": "该期间没有开户——请放宽日期或清除筛选条件。",
        "sales_query.empty.closing": "该期间没有销户——请放宽日期或清除筛选条件。",
        "sales_query.truncated": "仅显示前 {limit} 行；合计包含整个期间。"
        "请缩小日期范围查看其余记录。",
        "sales_query.metric.count": "笔数",
        "sales_query.metric.sold": "售电金额（{currency}）",
        "sales_query.metric.refunded": "退款金额（{currency}）",
        "sales_query.metric.reversed": "其后被冲正（{currency}）",
        "sales_query.metric.net": "净额（{currency}）",
        "sales_query.metric.effect": "对余额的影响（{currency}）",
        "sales_query.metric.debt": "欠款合计（{currency}）",
        "sales_query.by_method": "{method}：{count} 笔 · {amount}",
        "sales_query.col.time": "时间（{tz}）",
        "sales_query.col.receipt": "收据号",
        "sales_query.col.account": "账户",
        "sales_query.col.tenant": "租户",
        "sales_query.col.amount": "金额（{currency}）",
        "sales_query.col.refunded": "退款金额（{currency}）",
        "sales_query.col.balance_after": "变动后余额（{currency}）",
        "sales_query.col.method": "付款方式",
        "sales_query.col.refund_method": "退款方式",
        "sales_query.col.operator": "操作员",
        "sales_query.col.reason": "原因",
        "sales_query.col.note": "备注",
        "sales_query.col.reverses": "冲正的收据",
        "sales_query.col.reversed_by": "被冲正收据",
        "sales_query.col.opened": "开户时间（{tz}）",
        "sales_query.col.closed": "销户时间（{tz}）",
        "sales_query.col.phone": "电话",
        "sales_query.col.units": "户号",
        "sales_query.col.meters": "电表",
        "sales_query.col.status": "当前状态",
        "sales_query.col.balance": "当前余额（{currency}）",
        "sales_query.col.final_balance": "最终余额（{currency}）",
        "sales_query.col.debt": "欠款（{currency}）",
        "sales_query.sheet.sale": "售电",
        "sales_query.sheet.refund": "退电",
        "sales_query.sheet.reversal": "冲正",
        "sales_query.sheet.opening": "开户",
        "sales_query.sheet.closing": "销户",
    },
}
# Streamlit executes this file afresh on every run of the page: register the strings once.
if "sales_query.nav" not in STRINGS["en"]:
    register(TEXT)


@dataclass(frozen=True)
class Records:
    sale: list[EntryRow]
    refund: list[EntryRow]
    reversal: list[EntryRow]
    opening: list[OpeningRow]
    closing: list[ClosingRow]
    totals: dict[str, RecordTotals]  # by kind: sale, refund, reversal


def render() -> None:
    st.title(t("sales_query.title"))
    settings = get_settings()
    with unit_of_work(settings.database_url) as session:
        allowed = can(auth.current_operator(session), "view")
        operators = dict(views.operator_choices(session)) if allowed else {}
    if not allowed:
        st.error(t("sales_query.denied"))
        return
    where = _filters(operators)
    if where is None:
        return
    with unit_of_work(settings.database_url) as session:
        records = _load(session, where)
    st.caption(t("sales_query.period", start=where.start_on, end=where.end_on, tz=settings.tz))
    tabs = st.tabs([
        t(f"sales_query.tab.{kind}", count=_count(records, kind)) for kind in TABS
    ])
    for kind, tab in zip(TABS, tabs, strict=True):
        with tab:
            _tab(kind, records)


def _filters(operators: dict[int, str]) -> RecordFilter | None:
    settings = get_settings()
    today = auth.utcnow().astimezone(settings.tz).date()
    start_column, end_column, account_column = st.columns([1, 1, 2])
    start_on = start_column.date_input(t("sales_query.from"), value=today,
                                       key="sales_query_from")
    end_on = end_column.date_input(t("sales_query.to"), value=today, key="sales_query_to")
    account = account_column.text_input(t("sales_query.account"), key="sales_query_account",
                                        placeholder=t("sales_query.account_placeholder"))
    operator_column, method_column = st.columns(2)
    operator_id = operator_column.selectbox(
        t("sales_query.operator"), [None, *operators],
        format_func=lambda key: t("sales_query.all_operators") if key is None
        else operators[key],
        key="sales_query_operator",
    )
    method = method_column.selectbox(
        t("sales_query.method"), [None, *sales.PAYMENT_METHODS],
        format_func=lambda m: t("sales_query.all_methods") if m is None else method_label(m),
        key="sales_query_method",
    )
    if not isinstance(start_on, date) or not isinstance(end_on, date):
        return None
    if start_on > end_on:
        st.error(t("sales_query.bad_dates", start=start_on, end=end_on))
        return None
    return RecordFilter(start_on, end_on, settings.tz, account=account,
                        operator_id=operator_id, payment_method=method)


def _load(session: Session, where: RecordFilter) -> Records:
    # Reversals have no payment method of their own: that filter leaves them whole.
    unpaid = RecordFilter(where.start_on, where.end_on, where.tz, account=where.account,
                          operator_id=where.operator_id)
    narrowed = {"sale": where, "refund": where, "reversal": unpaid}
    return Records(
        sale=views.counter_records(session, "sale", where),
        refund=views.counter_records(session, "refund", where),
        reversal=views.counter_records(session, "reversal", unpaid),
        opening=views.openings(session, unpaid),
        closing=views.closings(session, unpaid),
        totals={
            kind: views.counter_totals(session, kind, narrowed[kind])
            for kind in ("sale", "refund", "reversal")
        },
    )


def _count(records: Records, kind: str) -> int:
    if kind in records.totals:
        return records.totals[kind].count
    return len(records.opening if kind == "opening" else records.closing)


def _tab(kind: str, records: Records) -> None:
    rows: list[EntryRow] | list[OpeningRow] | list[ClosingRow] = getattr(records, kind)
    if not rows:
        st.info(t(f"sales_query.empty.{kind}"))
        return
    if kind in records.totals:
        _totals(kind, records.totals[kind])
        if len(rows) >= views.QUERY_LIMIT:
            st.caption(t("sales_query.truncated", limit=views.QUERY_LIMIT))
    elif kind == "closing":
        _closing_totals(records.closing)
    columns, data = _table(kind, records)
    show_table(data, columns, key=f"sales_query_{kind}", file_name=f"{kind}s.xlsx",
               sheet=t(f"sales_query.sheet.{kind}"))


def _totals(kind: str, totals: RecordTotals) -> None:
    h = headers()
    sign = -1 if kind == "refund" else 1  # refunds are shown as money paid out
    count, amount, reversed_, net = st.columns(4)
    count.metric(t("sales_query.metric.count"), totals.count, border=True)
    if kind == "reversal":
        amount.metric(t("sales_query.metric.effect", **h), format_money(totals.amount),
                      border=True)
        return
    label = "sales_query.metric.sold" if kind == "sale" else "sales_query.metric.refunded"
    amount.metric(t(label, **h), format_money(sign * totals.amount), border=True)
    reversed_.metric(t("sales_query.metric.reversed", **h),
                     format_money(sign * totals.reversed_amount), border=True)
    net.metric(t("sales_query.metric.net", **h),
               format_money(sign * (totals.amount - totals.reversed_amount)), border=True)
    st.caption(" · ".join(
        t("sales_query.by_method", method=method_label(m.payment_method) or "-", count=m.count,
          amount=format_money(sign * m.amount))
        for m in totals.by_method
    ))


def _closing_totals(rows: list[ClosingRow]) -> None:
    h = headers()
    count, refunded, debt = st.columns(3)
    count.metric(t("sales_query.metric.count"), len(rows), border=True)
    refunded.metric(t("sales_query.metric.refunded", **h),
                    format_money(sum((r.refunded for r in rows), Decimal(0))), border=True)
    debt.metric(t("sales_query.metric.debt", **h),
                format_money(sum((r.debt for r in rows), Decimal(0))), border=True)


def _table(kind: str, records: Records) -> tuple[list[TableColumn], list[dict[str, object]]]:
    h = headers()

    def col(key: str, label: str, kind_: str = "text") -> TableColumn:
        return TableColumn(key, t(f"sales_query.col.{label}", **h), kind_)

    time, receipt = col("at", "time", "time"), col("receipt_no", "receipt")
    account, tenant = col("account", "account"), col("tenant", "tenant")
    operator = col("operator", "operator")
    if kind == "sale":
        columns = [time, receipt, account, tenant, col("amount", "amount", "money"),
                   col("method", "method"), operator, col("reversed_by", "reversed_by")]
        return columns, [entry_record(row) for row in records.sale]
    if kind == "refund":
        columns = [time, receipt, account, tenant, col("refunded", "refunded", "money"),
                   col("method", "refund_method"), col("note", "reason"), operator,
                   col("reversed_by", "reversed_by")]
        return columns, [
            {**entry_record(row), "refunded": -row.amount} for row in records.refund
        ]
    if kind == "reversal":
        columns = [time, receipt, col("reverses", "reverses"), account, tenant,
                   col("amount", "amount", "money"),
                   col("balance_after", "balance_after", "money"), operator,
                   col("note", "reason")]
        return columns, [entry_record(row) for row in records.reversal]
    if kind == "opening":
        columns = [col("at", "opened", "time"), col("account", "account"), tenant,
                   col("phone", "phone"), col("units", "units"), col("meters", "meters"),
                   operator, col("status", "status"), col("balance", "balance", "money")]
        return columns, [
            {"at": row.opened_at, "account": row.number, "tenant": row.tenant,
             "phone": row.phone, "units": row.units, "meters": row.meters,
             "operator": row.operator, "status": t(f"accounts.state.{row.status}"),
             "balance": row.balance}
            for row in records.opening
        ]
    columns = [col("at", "closed", "time"), account, tenant,
               col("final_balance", "final_balance", "money"),
               col("refunded", "refunded", "money"), col("debt", "debt", "money"),
               col("meters", "meters"), receipt, operator, col("note", "note")]
    return columns, [
        {"at": row.closed_at, "account": row.number, "tenant": row.tenant,
         "final_balance": row.final_balance, "refunded": row.refunded, "debt": row.debt,
         "meters": row.meters, "receipt_no": row.receipt_no or "", "operator": row.operator,
         "note": row.note}
        for row in records.closing
    ]


if __name__ == "__main__":
    render()
