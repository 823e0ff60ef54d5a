"""Default parameters (默认参数): thresholds, collection interval, alarm amounts, default tariff,
hoarding limit, sale maximum and the alarm SMS number.

A changed default that meters hold (thresholds, alarm amounts, the default tariff's prices) is not
written to them from here: the page points to the batch page, where the operator chooses when
to send the dispatch that may write every meter of the site."""

from __future__ import annotations

from decimal import Decimal

import streamlit as st

from app import auth
from app.i18n import STRINGS, register, t
from app.nav import Screen
from app.screens.control import SCREEN as CONTROL
from app.screens.site import allowed, text_of
from billing import dispatch, parameters, site
from billing.errors import BillingError
from billing.operators import can
from billing.parameters import SiteParameters
from billing.site import InvalidInput
from schema.db import unit_of_work
from voltpay.settings import get_settings

SCREEN = Screen(module="parameters", url_path="default-parameters", title_key="parameters.nav",
                permission="configure", icon=":material/tune:",
                section="section.settings", order=40)
PREFIX = "parameters"

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "parameters.nav" not in STRINGS["en"]:
    register({
        "en": {
            "parameters.nav": "Default parameters",
            "parameters.title": "Default parameters",
            "parameters.caption": "Site-wide defaults; a meter's or account's own value "
            "overrides them. A value not yet saved here is the server's setting.",
            "parameters.overload_kw": "Overload threshold (kW)",
            "parameters.collect_interval_s": "Collection interval (s)",
            "parameters.collect_help": "How often every meter is read; a gateway may set its own.",
            "parameters.alarm1_amount": "Alarm 1 amount ({currency})",
            "parameters.alarm2_amount": "Alarm 2 amount ({currency})",
            "parameters.alarm_help": "Alarm 1 warns when the balance falls to this amount; "
            "alarm 2 is lower, the last warning before arrears.",
            "parameters.default_tariff_id": "Default tariff",
            "parameters.no_tariff": "— none: flat price from the server settings —",
            "parameters.hoarding_limit": "Hoarding limit ({currency})",
            "parameters.hoarding_help": "囤积金额上限: the most money an account may hold after "
            "a sale.",
            "parameters.max_sale_amount": "Largest single sale ({currency})",
            "parameters.alarm_sms_number": "Alarm SMS number",
            "parameters.sms_help": "Who gets the site's alarm SMS; leave blank for nobody.",
            "parameters.save": "Save parameters",
            "parameters.saved": "Parameters saved.",
            "parameters.unchanged": "Nothing changed.",
            "parameters.dispatch.settings": "Meters keep the old alarm amounts and overload "
            "threshold until a settings dispatch writes the new ones. Send it under Batch "
            "control (operation: settings dispatch) when you are ready; meters and accounts "
            "with their own values keep them.",
            "parameters.dispatch.price": "Meters on the default tariff keep the old prices "
            "until a price dispatch writes the new ones. Send it under Batch control "
            "(operation: price dispatch) when you are ready.",
            "parameters.dispatch.link": "Open Batch control",
        },
        "zh": {
            "parameters.nav": "默认参数",
            "parameters.title": "默认参数",
            "parameters.caption": "全站默认值；电表或账户自己的设置优先。"
            "尚未在此保存的参数使用服务器配置。",
            "parameters.overload_kw": "过载阈值（kW）",
            "parameters.collect_interval_s": "采集间隔（秒）",
            "parameters.collect_help": "多久抄读一次所有电表；通讯管理机可单独设置。",
            "parameters.alarm1_amount": "一级报警金额（{currency}）",
            "parameters.alarm2_amount": "二级报警金额（{currency}）",
            "parameters.alarm_help": "余额降到一级报警金额时预警；"
            "二级报警金额更低，是欠费前的最后提醒。",
            "parameters.default_tariff_id": "默认电价方案",
            "parameters.no_tariff": "— 无：使用服务器配置的单一电价 —",
            "parameters.hoarding_limit": "囤积金额上限（{currency}）",
            "parameters.hoarding_help": "囤积金额上限：售电后账户最多可持有的金额。",
            "parameters.max_sale_amount": "单笔售电上限（{currency}）",
            "parameters.alarm_sms_number": "报警短信号码",
            "parameters.sms_help": "接收全站报警短信的号码；留空则不发送。",
            "parameters.save": "保存参数",
            "parameters.saved": "参数已保存。",
            "parameters.unchanged": "没有修改。",
            "parameters.dispatch.settings": "电表仍使用原来的报警金额和过载阈值，需通过设置下发"
            "写入新值。准备好后请在“批量操作”中发送（操作：设置下发）；"
            "有单独设置的电表和账户保持自己的值。",
            "parameters.dispatch.price": "使用默认电价方案的电表仍按原电价运行，需通过电价下发"
            "写入新电价。准备好后请在“批量操作”中发送（操作：电价下发）。",
            "parameters.dispatch.link": "打开批量操作",
        },
    })

TEXT_FIELDS = ("overload_kw", "collect_interval_s", "alarm1_amount", "alarm2_amount",
               "hoarding_limit", "max_sale_amount", "alarm_sms_number")


def _key(field: str) -> str:
    return f"{PREFIX}_{field}"


def _base() -> SiteParameters:
    settings = get_settings()
    return parameters.defaults(settings.billing_policy(),
                               collect_interval_s=settings.collect_interval_s)


def _shown(value: object) -> str:
    return f"{value:f}" if isinstance(value, Decimal) else text_of(value)


def _fill(values: SiteParameters) -> None:
    for field in TEXT_FIELDS:
        st.session_state[_key(field)] = _shown(getattr(values, field))
    st.session_state[_key("default_tariff_id")] = values.default_tariff_id


def _on_save() -> None:
    values = {field: st.session_state.get(_key(field)) for field in parameters.KEYS}
    try:
        with unit_of_work(auth.database_url()) as session:
            before = parameters.current(session, _base())
            after = parameters.save(session, values, base=_base(),
                                    operator=auth.current_operator(session), now=auth.utcnow())
    except InvalidInput as exc:
        st.session_state[f"{PREFIX}_errors"] = [p.message for p in exc.problems]
        return
    except BillingError as exc:
        st.session_state[f"{PREFIX}_errors"] = [str(exc)]
        return
    st.session_state[f"{PREFIX}_flash"] = (
        t("parameters.unchanged") if after == before else t("parameters.saved")
    )
    st.session_state[f"{PREFIX}_dispatch"] = dispatch.parameter_dispatches(before, after)
    _fill(after)


def render() -> None:
    st.title(t("parameters.title"))
    st.caption(t("parameters.caption"))
    if not allowed():
        return
    with unit_of_work(auth.database_url()) as session:
        current = parameters.current(session, _base())
        tariffs = dict(site.tariffs(session))
        sees_control = can(auth.current_operator(session), CONTROL.permission)
    if _key("overload_kw") not in st.session_state:  # first run, or back from another page
        _fill(current)
    flash = st.session_state.pop(f"{PREFIX}_flash", None)
    if flash:
        st.success(flash)
    for message in st.session_state.pop(f"{PREFIX}_errors", []):
        st.error(message)
    _dispatch_hint(sees_control)
    currency = get_settings().currency
    with st.form("parameters_form"):
        left, right = st.columns(2)
        left.text_input(t("parameters.alarm1_amount", currency=currency),
                        key=_key("alarm1_amount"), help=t("parameters.alarm_help"))
        right.text_input(t("parameters.alarm2_amount", currency=currency),
                         key=_key("alarm2_amount"), help=t("parameters.alarm_help"))
        left.text_input(t("parameters.hoarding_limit", currency=currency),
                        key=_key("hoarding_limit"), help=t("parameters.hoarding_help"))
        right.text_input(t("parameters.max_sale_amount", currency=currency),
                         key=_key("max_sale_amount"))
        left.text_input(t("parameters.overload_kw"), key=_key("overload_kw"))
        right.text_input(t("parameters.collect_interval_s"), key=_key("collect_interval_s"),
                         help=t("parameters.collect_help"))
        left.selectbox(t("parameters.default_tariff_id"), [None, *tariffs],
                       key=_key("default_tariff_id"),
                       format_func=lambda i: t("parameters.no_tariff") if i is None
                       else tariffs[i], placeholder=t("parameters.no_tariff"))
        right.text_input(t("parameters.alarm_sms_number"), key=_key("alarm_sms_number"),
                         help=t("parameters.sms_help"), placeholder="+8613800000000")
        st.form_submit_button(t("parameters.save"), type="primary", key=_key("save"),
                              on_click=_on_save)


def _dispatch_hint(sees_control: bool) -> None:
    kinds = st.session_state.pop(f"{PREFIX}_dispatch", [])
    for kind in kinds:
        st.info(t(f"parameters.dispatch.{kind}"), icon=":material/send:")
    if kinds and sees_control:
        st.page_link("screens/control.py", label=t("parameters.dispatch.link"),
                     icon=":material/arrow_forward:")


if __name__ == "__main__":
    render()
