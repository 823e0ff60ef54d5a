"""Sale (售电): credit an open account; the service checks the permission and the amount."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TypedDict

import streamlit as st

from app import auth
from app.i18n import lang, t
from app.nav import Screen
from billing import sales
from billing.errors import BillingError
from billing.money import format_money
from billing.operators import can
from billing.receipts import receipt_for_entry, render_receipt
from billing.views import AccountChoice, balance_info, open_accounts
from schema.db import unit_of_work
from schema.models import Account
from voltpay.settings import get_settings

# Drawn with the form and kept until a sale posts, so a resubmitted form posts once.
IDEMPOTENCY_KEY = "sale_idempotency_key"
# The last posted sale; while it is shown the form is not, so a double click cannot post again.
RECEIPT = "sale_receipt"


class Receipt(TypedDict):
    """A plain dict in session state: Streamlit re-executes this file, redefining its classes."""

    entry_id: int
    receipt_no: str
    account: str
    amount: Decimal
    balance: Decimal
    restored_meters: int
    repeated: bool
    days_left: Decimal | None
    runs_out_on: str | None


SCREEN = Screen(module="sale", url_path="sell", title_key="nav.sale", permission="sell",
                icon=":material/point_of_sale:", section="section.accounts", order=10)


def render() -> None:
    st.title(t("sale.title"))
    with unit_of_work(auth.database_url()) as session:
        allowed = can(auth.current_operator(session), "sell")
        choices = open_accounts(session) if allowed else []
    if not allowed:
        st.error(t("denied.sell"))
        return
    receipt: Receipt | None = st.session_state.get(RECEIPT)
    if receipt is not None:
        _show_receipt(receipt)
        return
    if not choices:
        st.info(t("sale.no_accounts"))
        return
    _sale_form(choices)


def _money(amount: Decimal) -> str:
    return f"{format_money(amount)} {get_settings().currency}"


def _sale_form(choices: list[AccountChoice]) -> None:
    idempotency_key = st.session_state.setdefault(IDEMPOTENCY_KEY, str(uuid.uuid4()))
    by_id = {choice.id: choice for choice in choices}
    with st.form("sale"):
        account_id = st.selectbox(
            t("sale.account"),
            list(by_id),
            index=None,
            format_func=lambda key: t(
                "sale.account_label", number=by_id[key].number, tenant=by_id[key].tenant,
                units=by_id[key].units or "-", balance=_money(by_id[key].balance),
            ),
            placeholder=t("sale.account_placeholder"),
            key="sale_account",
        )
        amount = st.text_input(
            t("sale.amount", currency=get_settings().currency), key="sale_amount",
            placeholder="100.00",
        )
        method = st.radio(
            t("sale.method"), sales.PAYMENT_METHODS, format_func=lambda m: t(f"method.{m}"),
            horizontal=True, key="sale_method",
        )
        submitted = st.form_submit_button(t("sale.submit"), type="primary", key="sale_submit")
    if not submitted:
        return
    if account_id is None:
        st.error(t("sale.choose_account"))
        return
    try:
        receipt = _post(account_id, amount, method, idempotency_key)
    except BillingError as exc:
        st.error(str(exc))
        return
    st.session_state[RECEIPT] = receipt
    st.session_state[IDEMPOTENCY_KEY] = str(uuid.uuid4())
    st.rerun()


def _post(account_id: int, amount: str, method: str, idempotency_key: str) -> Receipt:
    settings = get_settings()
    with unit_of_work(settings.database_url) as session:
        result = sales.sell(
            session,
            account_id=account_id,
            amount=amount,
            payment_method=method,
            idempotency_key=idempotency_key,
            operator=auth.current_operator(session),
            now=auth.utcnow(),
            policy=auth.policy(session),
        )
        account = session.get_one(Account, result.entry.account_id)
        info = balance_info(session, account.id, now=auth.utcnow(), tz=settings.tz)
        return Receipt(
            entry_id=result.entry.id,
            receipt_no=result.entry.receipt_no or "",
            days_left=info.days_left,
            runs_out_on=info.runs_out_on.isoformat() if info.runs_out_on else None,
            account=account.number,
            amount=result.entry.amount,
            balance=result.balance,
            restored_meters=sum(1 for command in result.commands if command.kind == "close"),
            repeated=result.repeated,
        )


@st.cache_data(max_entries=200, show_spinner=False)
def _receipt_pdf(entry_id: int, language: str) -> bytes:
    """A posted entry never changes, so its receipt is drawn once per language."""
    settings = get_settings()
    with unit_of_work(settings.database_url) as session:
        data = receipt_for_entry(
            session, entry_id, site_name=settings.site_name, currency=settings.currency,
            tz=settings.tz, language="zh" if language == "zh" else "en",
        )
    return render_receipt(data)


def _new_sale() -> None:
    st.session_state.pop(RECEIPT, None)


def _show_receipt(receipt: Receipt) -> None:
    if receipt["repeated"]:
        st.info(t("sale.repeated", number=receipt["account"], balance=_money(receipt["balance"])))
    else:
        st.success(
            t("sale.posted", amount=_money(receipt["amount"]), number=receipt["account"],
              balance=_money(receipt["balance"]))
        )
    if receipt["restored_meters"]:
        st.info(t("sale.restore", count=receipt["restored_meters"]))
    if receipt["days_left"] is not None and receipt["balance"] > 0:
        st.caption(t("sale.days_left", days=receipt["days_left"], date=receipt["runs_out_on"]))
    st.download_button(
        t("sale.receipt", receipt_no=receipt["receipt_no"]),
        data=_receipt_pdf(receipt["entry_id"], lang()),
        file_name=f"receipt-{receipt['receipt_no']}.pdf",
        mime="application/pdf",
        key="sale_receipt_pdf",
        icon=":material/receipt:",
    )
    st.button(t("sale.new"), type="primary", key="sale_new", on_click=_new_sale)


if __name__ == "__main__":
    render()
