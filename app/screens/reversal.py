"""Reversal (冲正): undo a sale or refund posted in error, found by its receipt number or picked
from today's, with a reason; posted once. The service checks the permission and that the entry
was not reversed before."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TypedDict

import streamlit as st

from app import auth
from app.i18n import STRINGS, register, t
from app.nav import Screen
from app.screens.accounts import (
    command_notes,
    kind_label,
    local_time,
    method_label,
    money,
    receipt_button,
)
from billing import account_views as views
from billing import sales
from billing.account_views import EntryRow
from billing.errors import BillingError
from billing.operators import can
from schema.db import unit_of_work
from voltpay.settings import get_settings

IDEMPOTENCY_KEY = "reversal_idempotency_key"
RESULT = "reversal_result"
ENTRY = "reversal_entry"  # the id of the entry found or picked
FIELDS = ("reversal_receipt_no", "reversal_today", "reversal_reason")


class Reversed(TypedDict):
    """A plain dict in session state: Streamlit re-executes this file, redefining its classes."""

    entry_id: int
    receipt_no: str
    original: str
    account: str
    amount: Decimal
    balance: Decimal
    repeated: bool
    notes: list[str]


SCREEN = Screen(module="reversal", url_path="reversals", title_key="reversal.nav",
                permission="reverse", icon=":material/undo:", section="section.accounts",
                order=50)

TEXT = {
    "en": {
        "reversal.nav": "Reversal",
        "reversal.title": "Reversal",
        "reversal.denied": "You are not allowed to reverse sales or refunds. "
        "Ask an administrator.",
        "reversal.receipt_no": "Receipt number",
        "reversal.find": "Find",
        "reversal.not_found": "No sale or refund has receipt number {receipt_no}. "
        "Check the number printed on the receipt, e.g. 20261125-0007.",
        "reversal.type_number": "Type a receipt number first.",
        "reversal.today": "Or pick one of today's sales and refunds",
        "reversal.today_placeholder": "Today's sales and refunds not reversed yet",
        "reversal.today_label": "{receipt_no} · {kind} · {account} {tenant} · {amount} · {time}",
        "reversal.none_today": "No sale or refund of today is left to reverse — find an older "
        "one by its receipt number.",
        "reversal.entry": "Receipt {receipt_no}: {kind}",
        "reversal.field.at": "Time",
        "reversal.field.account": "Account",
        "reversal.field.amount": "Amount",
        "reversal.field.balance": "Balance after",
        "reversal.field.method": "Payment method",
        "reversal.field.operator": "Operator",
        "reversal.field.note": "Note",
        "reversal.already": "Receipt {receipt_no} was already reversed by {by}.",
        "reversal.not_reversible": "Only a sale or a refund can be reversed; this is a {kind}.",
        "reversal.reason": "Reason",
        "reversal.reason_placeholder": "e.g. typed 500 for 50",
        "reversal.submit": "Post reversal",
        "reversal.posted": "Reversal {receipt_no} posted: receipt {original} is undone "
        "({amount} on account {number}). New balance: {balance}.",
        "reversal.repeated": "This reversal was already posted; nothing was reversed twice. "
        "Account {number} balance: {balance}.",
        "reversal.new": "New reversal",
    },
    "zh": {
        "reversal.nav": "冲正",
        "reversal.title": "冲正",
        "reversal.denied": "您没有冲正权限，请联系管理员。",
        "reversal.receipt_no": "收据号",
        "reversal.find": "查找",
        "reversal.not_found": "没有收据号为 {receipt_no} 的售电或退电。请核对收据上打印的号码，"
        "例如 20261125-0007。",
        "reversal.type_number": "请先输入收据号。",
        "reversal.today": "或从今天的售电和退电中选择",
        "reversal.today_placeholder": "今天尚未冲正的售电和退电",
        "reversal.today_label": "{receipt_no} · {kind} · {account} {tenant} · {amount} · {time}",
        "reversal.none_today": "今天没有可冲正的售电或退电——可按收据号查找更早的记录。",
        "reversal.entry": "收据 {receipt_no}：{kind}",
        "reversal.field.at": "时间",
        "reversal.field.account": "账户",
        "reversal.field.amount": "金额",
        "reversal.field.balance": "变动后余额",
        "reversal.field.method": "付款方式",
        "reversal.field.operator": "操作员",
        "reversal.field.note": "备注",
        "reversal.already": "收据 {receipt_no} 已被 {by} 冲正。",
        "reversal.not_reversible": "只能冲正售电或退电；这是一笔{kind}。",
        "reversal.reason": "冲正原因",
        "reversal.reason_placeholder": "例如：把 50 误输为 500",
        "reversal.submit": "确认冲正",
        "reversal.posted": "冲正 {receipt_no} 已入账：收据 {original} 已撤销"
        "（账户 {number} 变动 {amount}）。新余额 {balance}。",
        "reversal.repeated": "该笔冲正已经入账，没有重复冲正。账户 {number} 余额 {balance}。",
        "reversal.new": "新的冲正",
    },
}
# Streamlit executes this file afresh on every run of the page: register the strings once.
if "reversal.nav" not in STRINGS["en"]:
    register(TEXT)


def render() -> None:
    st.title(t("reversal.title"))
    settings = get_settings()
    with unit_of_work(settings.database_url) as session:
        allowed = can(auth.current_operator(session), "reverse")
        today = auth.utcnow().astimezone(settings.tz).date()
        reversible = views.reversible_entries(session, on=today, tz=settings.tz) if allowed else []
    if not allowed:
        st.error(t("reversal.denied"))
        return
    result: Reversed | None = st.session_state.get(RESULT)
    if result is not None:
        _show(result)
        return
    _find()
    _today(reversible)
    entry_id = st.session_state.get(ENTRY)
    if entry_id is None:
        return
    with unit_of_work(settings.database_url) as session:
        entry = views.entry(session, entry_id)
    _entry(entry)
    if entry.kind not in ("sale", "refund"):
        st.warning(t("reversal.not_reversible", kind=kind_label(entry.kind)))
    elif entry.reversed_by:
        st.warning(t("reversal.already", receipt_no=entry.receipt_no, by=entry.reversed_by))
    else:
        _reversal_form(entry)


def _find() -> None:
    with st.form("reversal_find"):
        receipt_no = st.text_input(t("reversal.receipt_no"), key="reversal_receipt_no",
                                   placeholder="20261125-0007")
        submitted = st.form_submit_button(t("reversal.find"), key="reversal_find_submit")
    if not submitted:
        return
    if not receipt_no.strip():
        st.error(t("reversal.type_number"))
        return
    with unit_of_work(auth.database_url()) as session:
        found = views.find_receipt(session, receipt_no)
    if found is None:
        st.session_state.pop(ENTRY, None)
        st.error(t("reversal.not_found", receipt_no=receipt_no.strip()))
        return
    st.session_state[ENTRY] = found.id


def _picked() -> None:
    st.session_state[ENTRY] = st.session_state.get("reversal_today")


def _today(rows: list[EntryRow]) -> None:
    if not rows:
        st.caption(t("reversal.none_today"))
        return
    by_id = {row.id: row for row in rows}
    st.selectbox(
        t("reversal.today"), list(by_id), index=None,
        format_func=lambda key: t(
            "reversal.today_label", receipt_no=by_id[key].receipt_no,
            kind=kind_label(by_id[key].kind), account=by_id[key].account,
            tenant=by_id[key].tenant, amount=money(by_id[key].amount),
            time=local_time(by_id[key].at),
        ),
        placeholder=t("reversal.today_placeholder"), key="reversal_today", on_change=_picked,
    )


def _entry(entry: EntryRow) -> None:
    st.subheader(t("reversal.entry", receipt_no=entry.receipt_no or "-",
                   kind=kind_label(entry.kind)))
    fields = [
        (t("reversal.field.at"), local_time(entry.at)),
        (t("reversal.field.account"), f"{entry.account} · {entry.tenant}"),
        (t("reversal.field.amount"), money(entry.amount)),
        (t("reversal.field.balance"), money(entry.balance_after)),
        (t("reversal.field.method"), method_label(entry.payment_method) or "-"),
        (t("reversal.field.operator"), entry.operator),
        (t("reversal.field.note"), entry.note or "-"),
    ]
    st.markdown("\n".join(f"- {label}: **{value}**" for label, value in fields))


def _reversal_form(entry: EntryRow) -> None:
    idempotency_key = st.session_state.setdefault(IDEMPOTENCY_KEY, str(uuid.uuid4()))
    with st.form("reversal"):
        reason = st.text_input(t("reversal.reason"), key="reversal_reason",
                               placeholder=t("reversal.reason_placeholder"))
        submitted = st.form_submit_button(t("reversal.submit"), type="primary",
                                          key="reversal_submit")
    if not submitted:
        return
    settings = get_settings()
    try:
        with unit_of_work(settings.database_url) as session:
            posted = sales.reverse(
                session, entry_id=entry.id, reason=reason, idempotency_key=idempotency_key,
                operator=auth.current_operator(session), now=auth.utcnow(),
                policy=auth.policy(session),
            )
            result = Reversed(
                entry_id=posted.entry.id, receipt_no=posted.entry.receipt_no or "",
                original=entry.receipt_no or "", account=entry.account,
                amount=posted.entry.amount, balance=posted.balance, repeated=posted.repeated,
                notes=command_notes(posted.commands),
            )
    except BillingError as exc:
        st.error(str(exc))
        return
    st.session_state[RESULT] = result
    st.session_state[IDEMPOTENCY_KEY] = str(uuid.uuid4())
    st.rerun()


def _new_reversal() -> None:
    for key in (RESULT, ENTRY, *FIELDS):
        st.session_state.pop(key, None)


def _show(result: Reversed) -> None:
    if result["repeated"]:
        st.info(t("reversal.repeated", number=result["account"], balance=money(result["balance"])))
    else:
        st.success(t("reversal.posted", receipt_no=result["receipt_no"],
                     original=result["original"], amount=money(result["amount"]),
                     number=result["account"], balance=money(result["balance"])))
    for note in result["notes"]:
        st.info(note)
    receipt_button(result["entry_id"], result["receipt_no"], key="reversal_receipt_pdf")
    st.button(t("reversal.new"), type="primary", key="reversal_new", on_click=_new_reversal)


if __name__ == "__main__":
    render()
