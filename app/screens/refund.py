"""Refund (退电): pay money back from an open account, up to its available balance, with a
reason; posted once per drawn form. The service checks the permission and the amount."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TypedDict

import streamlit as st

from app import auth
from app.i18n import STRINGS, register, t
from app.nav import Screen
from app.screens.accounts import command_notes, method_label, money, receipt_button
from billing import sales
from billing.errors import BillingError
from billing.operators import can
from billing.views import AccountChoice, open_accounts
from schema.db import unit_of_work
from schema.models import Account
from voltpay.settings import get_settings

# Drawn with the form and kept until a refund posts, so a resubmitted form posts once.
IDEMPOTENCY_KEY = "refund_idempotency_key"
# The last posted refund; while it is shown the form is not, so a double click cannot post again.
RECEIPT = "refund_receipt"


class Receipt(TypedDict):
    """A plain dict in session state: Streamlit re-executes this file, redefining its classes."""

    entry_id: int
    receipt_no: str
    account: str
    amount: Decimal
    balance: Decimal
    repeated: bool
    notes: list[str]


SCREEN = Screen(module="refund", url_path="refunds", title_key="refund.nav", permission="refund",
                icon=":material/currency_exchange:", section="section.accounts", order=40)

TEXT = {
    "en": {
        "refund.nav": "Refund",
        "refund.title": "Refund",
        "refund.denied": "You are not allowed to refund. Ask an administrator for the cashier "
        "role.",
        "refund.account": "Account",
        "refund.account_placeholder": "Type an account number, tenant or unit",
        "refund.account_label": "{number} · {tenant} · {units} · balance {balance}",
        "refund.amount": "Amount to pay back ({currency})",
        "refund.reason": "Reason",
        "refund.reason_placeholder": "e.g. tenant moving out, overpaid",
        "refund.method": "Refund method",
        "refund.submit": "Post refund",
        "refund.choose_account": "Choose an account first.",
        "refund.no_accounts": "No open accounts — open an account first; a closed account was "
        "refunded when it closed.",
        "refund.posted": "Refund posted: {amount} paid back from account {number}. "
        "New balance: {balance}.",
        "refund.repeated": "This refund was already posted; nothing was paid twice. "
        "Account {number} balance: {balance}.",
        "refund.new": "New refund",
    },
    "zh": {
        "refund.nav": "退电",
        "refund.title": "退电",
        "refund.denied": "您没有退电权限，请联系管理员开通收银员角色。",
        "refund.account": "账户",
        "refund.account_placeholder": "输入账户号、租户或户号",
        "refund.account_label": "{number} · {tenant} · {units} · 余额 {balance}",
        "refund.amount": "退款金额（{currency}）",
        "refund.reason": "退电原因",
        "refund.reason_placeholder": "例如：租户搬离、多缴",
        "refund.method": "退款方式",
        "refund.submit": "确认退电",
        "refund.choose_account": "请先选择账户。",
        "refund.no_accounts": "没有在用账户——请先开户；已销户的账户在销户时已退款。",
        "refund.posted": "退电成功：账户 {number} 退还 {amount}，新余额 {balance}。",
        "refund.repeated": "该笔退电已经入账，没有重复退款。账户 {number} 余额 {balance}。",
        "refund.new": "新的退电",
    },
}
# Streamlit executes this file afresh on every run of the page: register the strings once.
if "refund.nav" not in STRINGS["en"]:
    register(TEXT)


def render() -> None:
    st.title(t("refund.title"))
    with unit_of_work(auth.database_url()) as session:
        allowed = can(auth.current_operator(session), "refund")
        choices = open_accounts(session) if allowed else []
    if not allowed:
        st.error(t("refund.denied"))
        return
    receipt: Receipt | None = st.session_state.get(RECEIPT)
    if receipt is not None:
        _show_receipt(receipt)
        return
    if not choices:
        st.info(t("refund.no_accounts"))
        return
    _refund_form(choices)


def _refund_form(choices: list[AccountChoice]) -> None:
    idempotency_key = st.session_state.setdefault(IDEMPOTENCY_KEY, str(uuid.uuid4()))
    by_id = {choice.id: choice for choice in choices}
    with st.form("refund"):
        account_id = st.selectbox(
            t("refund.account"),
            list(by_id),
            index=None,
            format_func=lambda key: t(
                "refund.account_label", number=by_id[key].number, tenant=by_id[key].tenant,
                units=by_id[key].units or "-", balance=money(by_id[key].balance),
            ),
            placeholder=t("refund.account_placeholder"),
            key="refund_account",
        )
        amount = st.text_input(
            t("refund.amount", currency=get_settings().currency), key="refund_amount",
            placeholder="100.00",
        )
        reason = st.text_input(t("refund.reason"), key="refund_reason",
                               placeholder=t("refund.reason_placeholder"))
        method = st.radio(t("refund.method"), sales.REFUND_METHODS, format_func=method_label,
                          horizontal=True, key="refund_method")
        submitted = st.form_submit_button(t("refund.submit"), type="primary",
                                          key="refund_submit")
    if not submitted:
        return
    if account_id is None:
        st.error(t("refund.choose_account"))
        return
    try:
        receipt = _post(account_id, amount, reason, method, idempotency_key)
    except BillingError as exc:
        st.error(str(exc))
        return
    st.session_state[RECEIPT] = receipt
    st.session_state[IDEMPOTENCY_KEY] = str(uuid.uuid4())
    st.rerun()


def _post(account_id: int, amount: str, reason: str, method: str, idempotency_key: str
          ) -> Receipt:
    settings = get_settings()
    with unit_of_work(settings.database_url) as session:
        result = sales.refund(
            session,
            account_id=account_id,
            amount=amount,
            reason=reason,
            payment_method=method,
            idempotency_key=idempotency_key,
            operator=auth.current_operator(session),
            now=auth.utcnow(),
            policy=auth.policy(session),
        )
        account = session.get_one(Account, result.entry.account_id)
        return Receipt(
            entry_id=result.entry.id,
            receipt_no=result.entry.receipt_no or "",
            account=account.number,
            amount=-result.entry.amount,
            balance=result.balance,
            repeated=result.repeated,
            notes=command_notes(result.commands),
        )


def _new_refund() -> None:
    st.session_state.pop(RECEIPT, None)


def _show_receipt(receipt: Receipt) -> None:
    if receipt["repeated"]:
        st.info(t("refund.repeated", number=receipt["account"], balance=money(receipt["balance"])))
    else:
        st.success(
            t("refund.posted", amount=money(receipt["amount"]), number=receipt["account"],
              balance=money(receipt["balance"]))
        )
    for note in receipt["notes"]:
        st.info(note)
    receipt_button(receipt["entry_id"], receipt["receipt_no"], key="refund_receipt_pdf")
    st.button(t("refund.new"), type="primary", key="refund_new", on_click=_new_refund)


if __name__ == "__main__":
    render()
