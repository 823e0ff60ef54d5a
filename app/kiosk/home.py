"""The tenant's account: balance and days left, each meter with a way to restore power where
the operators allow it, today's and this month's use, 30 days of it, and recent recharges.

The balance and the meters refresh by themselves, so a recharge or a meter switching shows
within seconds without a touch.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TypedDict

import plotly.graph_objects as go
import streamlit as st

from app.i18n import STRINGS, register, t
from app.kiosk import session as kiosk
from app.screens.accounts import (
    TableColumn,
    headers,
    kind_label,
    level_label,
    local_time,
    method_label,
    money,
    show_table,
)
from billing import tenants
from billing.errors import BillingError
from billing.money import format_money
from billing.tenants import RestoreRefused, SignedOut, Tenant, TenantView
from payments import orders
from schema.db import unit_of_work
from voltpay.settings import get_settings

LIVE_EVERY = timedelta(seconds=3)
FLASH = "kiosk_home_flash"
ORDER = "kiosk_order"  # the online recharge under way
AMOUNT = "kiosk_pay_amount"
PAY_ERROR = "kiosk_pay_error"

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "kiosk.home.account" not in STRINGS["en"]:
    register({
        "en": {
            "kiosk.home.account": "Account {number} · {units}",
            "kiosk.home.no_units": "no unit",
            "kiosk.home.balance": "Balance ({currency})",
            "kiosk.home.days_left": "Days left",
            "kiosk.home.days_left_help": "At the last 7 days' use the balance lasts until {date}.",
            "kiosk.home.level": "Status",
            "kiosk.home.arrears": "Your balance is used up: supply is cut until you recharge.",
            "kiosk.home.low": "Your balance is low: please recharge soon.",
            "kiosk.home.meters": "Meters",
            "kiosk.home.meter": "Meter {serial} · unit {unit}",
            "kiosk.home.lost": "No contact with this meter since {since}.",
            "kiosk.home.restoring": "Power is being restored…",
            "kiosk.home.restore": "Restore power",
            "kiosk.home.restored": "Power will be restored to meter {serial} in a moment.",
            "kiosk.refusal.not_allowed": "Restoring power from here is not enabled for this "
            "account; the management office can do it.",
            "kiosk.refusal.no_credit": "Recharge first: power can be restored once the balance is "
            "above 0.",
            "kiosk.refusal.by_operator": "The management office switched this meter off; ask them "
            "to switch it on.",
            "kiosk.refusal.unknown": "This meter's state is not known yet.",
            "kiosk.refusal.pending": "Power is already being restored.",
            "kiosk.refusal.on": "",
            "kiosk.pay.title": "Recharge online",
            "kiosk.pay.amount": "Amount ({currency})",
            "kiosk.pay.submit": "Recharge online",
            "kiosk.pay.amount_needed": "Enter an amount, for example 100.",
            "kiosk.pay.open": "Pay {amount} now",
            "kiosk.pay.waiting": "Order {order_no}: waiting for your payment of {amount}. Your "
            "balance updates here within seconds of paying.",
            "kiosk.pay.paid": "Paid {amount}, thank you. New balance: {balance}.",
            "kiosk.pay.closed": "Order {order_no} was not paid in time and is closed; start "
            "a new one to recharge.",
            "kiosk.pay.failed": "Order {order_no} was paid but could not be credited; the "
            "management office will refund it.",
            "kiosk.pay.new": "New recharge",
            "kiosk.home.today_kwh": "Today (kWh)",
            "kiosk.home.today_cost": "Today ({currency})",
            "kiosk.home.month_kwh": "This month (kWh)",
            "kiosk.home.month_cost": "This month ({currency})",
            "kiosk.home.daily": "Last {days} days",
            "kiosk.home.chart_kwh": "kWh per day",
            "kiosk.home.col.date": "Date",
            "kiosk.home.col.energy": "Energy (kWh)",
            "kiosk.home.col.cost": "Cost ({currency})",
            "kiosk.home.recharges": "Recent recharges",
            "kiosk.home.no_recharges": "No recharges yet.",
            "kiosk.home.col.time": "Time ({tz})",
            "kiosk.home.col.kind": "Kind",
            "kiosk.home.col.amount": "Amount ({currency})",
            "kiosk.home.col.balance": "Balance after ({currency})",
            "kiosk.home.col.method": "Paid by",
            "kiosk.home.col.receipt": "Receipt",
        },
        "zh": {
            "kiosk.home.account": "账户 {number} · {units}",
            "kiosk.home.no_units": "无商铺",
            "kiosk.home.balance": "余额（{currency}）",
            "kiosk.home.days_left": "预计可用天数",
            "kiosk.home.days_left_help": "按最近 7 天的用电，余额可用至 {date}。",
            "kiosk.home.level": "状态",
            "kiosk.home.arrears": "余额已用完：充值前将停止供电。",
            "kiosk.home.low": "余额不足，请尽快充值。",
            "kiosk.home.meters": "电表",
            "kiosk.home.meter": "电表 {serial} · 户号 {unit}",
            "kiosk.home.lost": "该电表自 {since} 起失去联系。",
            "kiosk.home.restoring": "正在恢复供电……",
            "kiosk.home.restore": "恢复供电",
            "kiosk.home.restored": "电表 {serial} 即将恢复供电。",
            "kiosk.refusal.not_allowed": "该账户未开通自助恢复供电，请联系物业管理处。",
            "kiosk.refusal.no_credit": "请先充值：余额大于 0 后才能恢复供电。",
            "kiosk.refusal.by_operator": "该电表由物业管理处断电，请联系他们恢复。",
            "kiosk.refusal.unknown": "暂时无法获知该电表的状态。",
            "kiosk.refusal.pending": "正在恢复供电。",
            "kiosk.refusal.on": "",
            "kiosk.pay.title": "在线充值",
            "kiosk.pay.amount": "金额（{currency}）",
            "kiosk.pay.submit": "在线充值",
            "kiosk.pay.amount_needed": "请输入金额，例如 100。",
            "kiosk.pay.open": "立即支付 {amount}",
            "kiosk.pay.waiting": "订单 {order_no}：等待您支付 {amount}。"
            "支付后数秒内余额即在此更新。",
            "kiosk.pay.paid": "已支付 {amount}，谢谢。新余额：{balance}。",
            "kiosk.pay.closed": "订单 {order_no} 未在规定时间内支付，已关闭；请重新发起充值。",
            "kiosk.pay.failed": "订单 {order_no} 已支付但未能入账，物业管理处将为您退款。",
            "kiosk.pay.new": "重新充值",
            "kiosk.home.today_kwh": "今日用电（kWh）",
            "kiosk.home.today_cost": "今日电费（{currency}）",
            "kiosk.home.month_kwh": "本月用电（kWh）",
            "kiosk.home.month_cost": "本月电费（{currency}）",
            "kiosk.home.daily": "最近 {days} 天",
            "kiosk.home.chart_kwh": "每日用电（kWh）",
            "kiosk.home.col.date": "日期",
            "kiosk.home.col.energy": "用电量（kWh）",
            "kiosk.home.col.cost": "电费（{currency}）",
            "kiosk.home.recharges": "最近充值",
            "kiosk.home.no_recharges": "暂无充值记录。",
            "kiosk.home.col.time": "时间（{tz}）",
            "kiosk.home.col.kind": "类型",
            "kiosk.home.col.amount": "金额（{currency}）",
            "kiosk.home.col.balance": "充值后余额（{currency}）",
            "kiosk.home.col.method": "付款方式",
            "kiosk.home.col.receipt": "收据号",
        },
    })


def _load(tenant: Tenant) -> TenantView | None:
    """The tenant's view; None (and the session ended) when it no longer holds."""
    settings = get_settings()
    try:
        with unit_of_work(settings.database_url) as session:
            return tenants.account_view(session, tenant=tenant, account_id=tenant.account_id,
                                        now=kiosk.utcnow(), tz=settings.tz)
    except SignedOut:
        st.session_state[kiosk.SIGN_OUT_REASON] = "ended"
        kiosk.forget()
        return None


def render() -> None:
    tenant = kiosk.signed_in()
    view = _load(tenant) if tenant is not None else None
    if tenant is None or view is None:
        st.rerun()
        return
    st.title(view.tenant)
    st.caption(t("kiosk.home.account", number=view.number,
                 units=", ".join(view.units) or t("kiosk.home.no_units")))
    _live(tenant)
    if get_settings().pay_provider != "none":
        _recharge_form(tenant)
    _usage(view)
    _recharges(view)


@st.fragment(run_every=LIVE_EVERY)
def _live(tenant: Tenant) -> None:
    """Balance and meters, read again every few seconds (not counted as activity)."""
    if kiosk.signed_in() is None:
        st.rerun(scope="app")
    view = _load(tenant)
    if view is None:
        st.rerun(scope="app")
        return
    _balance(view)
    _order_state(view)
    _meters(tenant, view)


def _balance(view: TenantView) -> None:
    h = headers()
    info = view.balance
    balance, days, level = st.columns(3)
    balance.metric(t("kiosk.home.balance", **h), format_money(info.balance), border=True)
    days.metric(
        t("kiosk.home.days_left"), "-" if info.days_left is None else str(info.days_left),
        help=t("kiosk.home.days_left_help", date=info.runs_out_on) if info.runs_out_on else None,
        border=True,
    )
    level.metric(t("kiosk.home.level"), level_label(info.alarm_level), border=True)
    if info.alarm_level == "arrears":
        st.error(t("kiosk.home.arrears"))
    elif info.alarm_level in ("alarm1", "alarm2"):
        st.warning(t("kiosk.home.low"))


class Order(TypedDict):
    """A plain dict in session state: Streamlit re-executes this file, redefining its classes."""

    order_no: str
    amount: Decimal
    pay_url: str


def _start_order(tenant: Tenant) -> None:
    amount = st.session_state.get(AMOUNT, "").strip()
    if not amount:
        st.session_state[PAY_ERROR] = t("kiosk.pay.amount_needed")
        return
    try:
        with unit_of_work(get_settings().database_url) as session:
            tenants.own_account(session, tenant, tenant.account_id)
            order = orders.create_order(session, account_id=tenant.account_id, amount=amount,
                                        now=kiosk.utcnow())
            st.session_state[ORDER] = Order(order_no=order.order_no, amount=order.amount,
                                            pay_url=order.pay_url)
    except BillingError as exc:
        st.session_state[PAY_ERROR] = str(exc)
        return
    st.session_state[AMOUNT] = ""


def _recharge_form(tenant: Tenant) -> None:
    """Online recharge: an order toward the payment provider, paid at its page. The order then
    shows with the balance, which refreshes by itself, so the new balance shows as soon as the
    payment is credited."""
    if ORDER in st.session_state:
        return
    st.subheader(t("kiosk.pay.title"))
    with st.form("kiosk_pay_form", border=False):
        st.text_input(t("kiosk.pay.amount", **headers()), key=AMOUNT, placeholder="100.00")
        st.form_submit_button(t("kiosk.pay.submit"), type="primary", key="kiosk_pay_submit",
                              on_click=_start_order, args=(tenant,), use_container_width=True)
    error = st.session_state.pop(PAY_ERROR, None)
    if error is not None:
        st.error(error)


def _order_state(view: TenantView) -> None:
    """Where the tenant's online order stands, read again with the balance."""
    order: Order | None = st.session_state.get(ORDER)
    if order is None:
        return
    with unit_of_work(get_settings().database_url) as session:
        found = orders.find_order(session, order["order_no"])
        state = found.state if found is not None and found.account_id == view.account_id else ""
    values = {"order_no": order["order_no"], "amount": money(order["amount"])}
    if state == "paid":
        st.success(t("kiosk.pay.paid", balance=money(view.balance.balance), **values))
    elif state == "created":
        st.info(t("kiosk.pay.waiting", **values))
        st.link_button(t("kiosk.pay.open", amount=values["amount"]), order["pay_url"],
                       type="primary", icon=":material/qr_code:", use_container_width=True)
    elif state == "closed":
        st.warning(t("kiosk.pay.closed", **values))
    elif state == "failed":
        st.error(t("kiosk.pay.failed", **values))
    if st.button(t("kiosk.pay.new"), key="kiosk_pay_new", use_container_width=True):
        st.session_state.pop(ORDER, None)
        st.rerun(scope="app")  # the amount form is outside this refreshing part


def _restore(tenant: Tenant, meter_id: int, serial: str) -> None:
    settings = get_settings()
    try:
        with unit_of_work(settings.database_url) as session:
            tenants.restore_power(
                session, tenant=tenant, account_id=tenant.account_id, meter_id=meter_id,
                now=kiosk.utcnow(), policy=settings.billing_policy(),
            )
    except RestoreRefused as refused:
        st.session_state[FLASH] = ("error", t(f"kiosk.refusal.{refused.reason}"))
        return
    st.session_state[FLASH] = ("success", t("kiosk.home.restored", serial=serial))


def _meters(tenant: Tenant, view: TenantView) -> None:
    st.subheader(t("kiosk.home.meters"))
    flash = st.session_state.pop(FLASH, None)
    if flash is not None:
        level, text = flash
        (st.success if level == "success" else st.error)(text)
    for meter in view.meters:
        with st.container(border=True):
            label, state = st.columns([3, 2], vertical_alignment="center")
            name = t("kiosk.home.meter", serial=meter.serial, unit=meter.unit or "-")
            label.markdown(f"**{name}**")
            state.markdown(f"**{t(f'relay.{meter.relay}')}**")
            if meter.lost_since is not None:
                st.caption(t("kiosk.home.lost", since=local_time(meter.lost_since)))
            if meter.restoring:
                st.info(t("kiosk.home.restoring"))
            elif meter.refusal is None:
                st.button(t("kiosk.home.restore"), key=f"kiosk_restore_{meter.id}",
                          type="primary", icon=":material/power:", use_container_width=True,
                          on_click=_restore, args=(tenant, meter.id, meter.serial))
            elif meter.relay != "closed" and meter.refusal not in ("on", "pending"):
                st.caption(t(f"kiosk.refusal.{meter.refusal}"))


def _usage(view: TenantView) -> None:
    h = headers()
    today_kwh, today_cost = st.columns(2)
    today_kwh.metric(t("kiosk.home.today_kwh"), format_money(view.today.energy_kwh),
                     border=True)
    today_cost.metric(t("kiosk.home.today_cost", **h), format_money(view.today.cost),
                      border=True)
    month_kwh, month_cost = st.columns(2)
    month_kwh.metric(t("kiosk.home.month_kwh"), format_money(view.month.energy_kwh),
                     border=True)
    month_cost.metric(t("kiosk.home.month_cost", **h), format_money(view.month.cost),
                      border=True)
    st.subheader(t("kiosk.home.daily", days=len(view.days)))
    figure = go.Figure()
    figure.add_bar(
        x=[day.on_date for day in view.days], y=[float(day.energy_kwh) for day in view.days],
        name=t("kiosk.home.chart_kwh"), marker_color="#2E7D32",
        customdata=[format_money(day.cost) for day in view.days],
        hovertemplate="%{x|%Y-%m-%d}<br>%{y:.2f} kWh<br>%{customdata} " + h["currency"]
        + "<extra></extra>",
    )
    figure.update_layout(
        height=280, margin={"l": 10, "r": 10, "t": 10, "b": 10}, dragmode=False,
        yaxis_title=t("kiosk.home.chart_kwh"), xaxis={"type": "date", "tickformat": "%m-%d"},
    )
    st.plotly_chart(figure, key="kiosk_daily_chart", config={"displayModeBar": False})
    columns = [
        TableColumn("on_date", t("kiosk.home.col.date")),
        TableColumn("energy_kwh", t("kiosk.home.col.energy"), "energy"),
        TableColumn("cost", t("kiosk.home.col.cost", **h), "money"),
    ]
    records = [
        {"on_date": day.on_date, "energy_kwh": day.energy_kwh, "cost": day.cost}
        for day in reversed(view.days)
    ]
    show_table(records, columns, key="kiosk_daily", file_name="daily-use.xlsx",
               sheet=t("kiosk.home.daily", days=len(view.days)))


def _recharges(view: TenantView) -> None:
    st.subheader(t("kiosk.home.recharges"))
    if not view.recharges:
        st.info(t("kiosk.home.no_recharges"))
        return
    h = headers()
    columns = [
        TableColumn("at", t("kiosk.home.col.time", **h), "time"),
        TableColumn("kind", t("kiosk.home.col.kind")),
        TableColumn("amount", t("kiosk.home.col.amount", **h), "money"),
        TableColumn("balance_after", t("kiosk.home.col.balance", **h), "money"),
        TableColumn("method", t("kiosk.home.col.method")),
        TableColumn("receipt_no", t("kiosk.home.col.receipt")),
    ]
    records = [
        {"at": r.at, "kind": kind_label(r.kind), "amount": r.amount,
         "balance_after": r.balance_after, "method": method_label(r.payment_method),
         "receipt_no": r.receipt_no or ""}
        for r in view.recharges
    ]
    show_table(records, columns, key="kiosk_recharges", file_name="recharges.xlsx",
               sheet=t("kiosk.home.recharges"))


if __name__ == "__main__":
    render()
