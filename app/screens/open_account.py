"""Open an account (开户): the tenant, the meters it takes and an optional first sale, posted once
per drawn form. The services check the permissions (accounts; sell for the first sale)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TypedDict

import streamlit as st

from app import auth
from app.i18n import STRINGS, register, t
from app.nav import Screen
from app.screens.accounts import meter_label, method_label, money, receipt_button
from billing import account_views as views
from billing import accounts, sales, tenants
from billing.accounts import TENANT_LANGUAGES
from billing.errors import BillingError
from billing.operators import can
from schema.db import unit_of_work
from voltpay.settings import get_settings

IDEMPOTENCY_KEY = "open_account_idempotency_key"
RESULT = "open_account_result"
FIELDS = ("open_account_number", "open_account_tenant", "open_account_phone",
          "open_account_id_number", "open_account_notes", "open_account_meters",
          "open_account_amount", "open_account_method", "open_account_pin",
          "open_account_pin_confirm", "open_account_language")
LANGUAGE_NAMES = {"zh": "中文", "en": "English"}


class Opened(TypedDict):
    """A plain dict in session state: Streamlit re-executes this file, redefining its classes."""

    number: str
    tenant: str
    meters: int
    repeated: bool
    sale_entry_id: int | None
    sale_receipt_no: str | None
    sale_amount: Decimal | None
    balance: Decimal


SCREEN = Screen(module="open_account", url_path="new-account", title_key="open_account.nav",
                permission="accounts", icon=":material/person_add:", section="section.accounts",
                order=20)

TEXT = {
    "en": {
        "open_account.nav": "Open account",
        "open_account.title": "Open an account",
        "open_account.denied": "You are not allowed to open accounts. "
        "Ask an administrator for the cashier role.",
        "open_account.number": "Account number",
        "open_account.tenant": "Tenant name",
        "open_account.phone": "Phone",
        "open_account.id_number": "ID card or company number",
        "open_account.notes": "Notes",
        "open_account.meters": "Meters",
        "open_account.meters_placeholder": "Choose the tenant's meters",
        "open_account.no_free_meters": "Every meter belongs to an account: open the account "
        "without one and add it later, or add meters in settings.",
        "open_account.pin": "Kiosk PIN (6 digits, optional)",
        "open_account.language": "Tenant's language",
        "open_account.language_help": "Text messages and the kiosk speak to the tenant in it.",
        "open_account.pin_confirm": "Kiosk PIN again",
        "open_account.pin_help": "The tenant signs in to the kiosk and phone pages with the "
        "account number and this PIN. Leave blank to set it later.",
        "open_account.pin_rules": "A kiosk PIN is 6 digits.",
        "open_account.pin_mismatch": "The two kiosk PINs differ.",
        "open_account.first_sale": "First sale (optional)",
        "open_account.amount": "Amount ({currency}); leave blank for none",
        "open_account.method": "Payment method",
        "open_account.submit": "Open account",
        "open_account.opened": "Account {number} opened for {tenant} with {meters} meter(s).",
        "open_account.repeated": "This form was already posted: account {number} was opened "
        "once, and nothing was charged twice.",
        "open_account.sold": "First sale: {amount}. Balance: {balance}.",
        "open_account.no_credit": "The account has no credit yet: sell electricity to it "
        "before its meters are used.",
        "open_account.new": "Open another account",
    },
    "zh": {
        "open_account.nav": "开户",
        "open_account.title": "开户",
        "open_account.denied": "您没有开户权限，请联系管理员开通收银员角色。",
        "open_account.number": "账户号",
        "open_account.tenant": "租户名称",
        "open_account.phone": "电话",
        "open_account.id_number": "身份证号或统一社会信用代码",
        "open_account.notes": "备注",
        "open_account.meters": "电表",
        "open_account.meters_placeholder": "选择租户的电表",
        "open_account.no_free_meters": "所有电表都已归属账户：可先开户、以后再添加电表，"
        "或在系统设置中添加电表。",
        "open_account.pin": "自助终端密码（6 位数字，可选）",
        "open_account.language": "租户语言",
        "open_account.language_help": "短信通知和自助终端使用该语言。",
        "open_account.pin_confirm": "再次输入自助终端密码",
        "open_account.pin_help": "租户用账户号和此密码登录自助终端和手机页面。可留空，以后再设置。",
        "open_account.pin_rules": "自助终端密码为 6 位数字。",
        "open_account.pin_mismatch": "两次输入的自助终端密码不一致。",
        "open_account.first_sale": "首次售电（可选）",
        "open_account.amount": "金额（{currency}）；不售电请留空",
        "open_account.method": "付款方式",
        "open_account.submit": "确认开户",
        "open_account.opened": "已为 {tenant} 开立账户 {number}，含 {meters} 块电表。",
        "open_account.repeated": "该表单已经提交过：账户 {number} 只开立了一次，没有重复收费。",
        "open_account.sold": "首次售电：{amount}。余额：{balance}。",
        "open_account.no_credit": "该账户尚无余额：请先售电，再使用电表。",
        "open_account.new": "继续开户",
    },
}
# Streamlit executes this file afresh on every run of the page: register the strings once.
if "open_account.nav" not in STRINGS["en"]:
    register(TEXT)


def render() -> None:
    st.title(t("open_account.title"))
    with unit_of_work(auth.database_url()) as session:
        operator = auth.current_operator(session)
        allowed, may_sell = can(operator, "accounts"), can(operator, "sell")
        free = views.free_meters(session) if allowed else []
        suggested = views.suggest_account_number(session) if allowed else ""
    if not allowed:
        st.error(t("open_account.denied"))
        return
    opened: Opened | None = st.session_state.get(RESULT)
    if opened is not None:
        _show(opened)
        return
    _form(free, suggested, may_sell=may_sell)


def _form(free: list[views.MeterChoice], suggested: str, *, may_sell: bool) -> None:
    idempotency_key = st.session_state.setdefault(IDEMPOTENCY_KEY, str(uuid.uuid4()))
    choices = {m.id: meter_label(m.serial, m.unit) for m in free}
    with st.form("open_account"):
        left, right = st.columns(2)
        number = left.text_input(t("open_account.number"), value=suggested,
                                 key="open_account_number")
        tenant = right.text_input(t("open_account.tenant"), key="open_account_tenant")
        phone = left.text_input(t("open_account.phone"), key="open_account_phone")
        id_number = right.text_input(t("open_account.id_number"), key="open_account_id_number")
        notes = st.text_area(t("open_account.notes"), key="open_account_notes", height=68)
        language = st.radio(
            t("open_account.language"), TENANT_LANGUAGES, horizontal=True,
            format_func=lambda code: LANGUAGE_NAMES[code], key="open_account_language",
            help=t("open_account.language_help"),
        )
        meter_ids = st.multiselect(
            t("open_account.meters"), list(choices), format_func=choices.__getitem__,
            placeholder=t("open_account.meters_placeholder"), key="open_account_meters",
        )
        if not choices:
            st.caption(t("open_account.no_free_meters"))
        pin_column, confirm_column = st.columns(2)
        pin = pin_column.text_input(t("open_account.pin"), type="password", max_chars=6,
                                   key="open_account_pin", help=t("open_account.pin_help"))
        pin_confirm = confirm_column.text_input(t("open_account.pin_confirm"), type="password",
                                                max_chars=6, key="open_account_pin_confirm")
        amount, method = "", sales.PAYMENT_METHODS[0]
        if may_sell:
            st.markdown(f"**{t('open_account.first_sale')}**")
            amount = st.text_input(
                t("open_account.amount", currency=get_settings().currency),
                key="open_account_amount", placeholder="100.00",
            )
            method = st.radio(t("open_account.method"), sales.PAYMENT_METHODS,
                              format_func=method_label, horizontal=True,
                              key="open_account_method")
        submitted = st.form_submit_button(t("open_account.submit"), type="primary",
                                          key="open_account_submit")
    if not submitted:
        return
    if pin and not tenants.valid_pin(pin):
        st.error(t("open_account.pin_rules"))
        return
    if pin != pin_confirm:
        st.error(t("open_account.pin_mismatch"))
        return
    settings = get_settings()
    try:
        with unit_of_work(settings.database_url) as session:
            result = accounts.open_account_once(
                session, form_key=idempotency_key, number=number, tenant_name=tenant,
                phone=phone, id_number=id_number, notes=notes, meter_ids=meter_ids,
                first_sale_amount=amount if amount.strip() else None, payment_method=method,
                pin=pin, language=language,
                operator=auth.current_operator(session), now=auth.utcnow(),
                policy=auth.policy(session),
            )
            sale = result.first_sale
            opened = Opened(
                number=result.account.number, tenant=result.account.tenant_name,
                meters=len(views.account_meters(session, result.account.id)),
                repeated=result.repeated,
                sale_entry_id=sale.id if sale else None,
                sale_receipt_no=sale.receipt_no if sale else None,
                sale_amount=sale.amount if sale else None,
                balance=result.account.balance,
            )
    except BillingError as exc:
        st.error(str(exc))
        return
    st.session_state[RESULT] = opened
    st.session_state[IDEMPOTENCY_KEY] = str(uuid.uuid4())
    st.rerun()


def _new_account() -> None:
    st.session_state.pop(RESULT, None)
    for key in FIELDS:  # a fresh form, with the next suggested number
        st.session_state.pop(key, None)


def _show(opened: Opened) -> None:
    if opened["repeated"]:
        st.info(t("open_account.repeated", number=opened["number"]))
    else:
        st.success(t("open_account.opened", number=opened["number"], tenant=opened["tenant"],
                     meters=opened["meters"]))
    if opened["sale_amount"] is not None:
        st.success(t("open_account.sold", amount=money(opened["sale_amount"]),
                     balance=money(opened["balance"])))
        if opened["sale_entry_id"] is not None and opened["sale_receipt_no"]:
            receipt_button(opened["sale_entry_id"], opened["sale_receipt_no"],
                           key="open_account_receipt")
    else:
        st.info(t("open_account.no_credit"))
    st.button(t("open_account.new"), type="primary", key="open_account_new",
              on_click=_new_account)


if __name__ == "__main__":
    render()
