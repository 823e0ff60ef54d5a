"""Meters: device profile, gateway and bus address, unit, CT ratio, price, alarm thresholds.

Saving a meter whose price or thresholds changed queues the matching dispatch to that meter
(billing.dispatch.update_meter); the page says so and links to the batch page that shows it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import streamlit as st
from sqlalchemy.orm import Session

from app import auth
from app.export import Column
from app.i18n import STRINGS, register, t
from app.nav import Screen
from app.screens.control import SCREEN as CONTROL
from app.screens.control import SENT
from app.screens.site import NEW, Editor, Values, allowed, table, text_of
from billing import dispatch, site
from billing.operators import can
from schema.db import unit_of_work
from schema.models import Meter, Operator
from voltpay.settings import get_settings

SCREEN = Screen(module="meters", url_path="meter-settings", title_key="meters.nav",
                permission="configure", icon=":material/electric_meter:",
                section="section.settings", order=30)

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "meters.nav" not in STRINGS["en"]:
    register({
        "en": {
            "meters.nav": "Meters",
            "meters.title": "Meters",
            "meters.caption": "Each meter sits on a gateway's bus at its own address (1-247, at "
            "most {max} meters per gateway). Blank thresholds and price use the site defaults.",
            "meters.pick": "Meter to edit",
            "meters.serial": "Meter serial",
            "meters.profile": "Profile (model)",
            "meters.gateway": "Gateway",
            "meters.bus_address": "Bus address (1-247)",
            "meters.unit": "Unit (户号)",
            "meters.ct_ratio": "CT ratio",
            "meters.tariff": "Tariff",
            "meters.price": "Own price per kWh ({currency})",
            "meters.price_help": "一表一价: a flat price for this meter only; leave blank to "
            "use its tariff or the site's default tariff.",
            "meters.alarm1": "Alarm 1 amount ({currency})",
            "meters.alarm2": "Alarm 2 amount ({currency})",
            "meters.overload": "Overload threshold (kW)",
            "meters.none": "— none —",
            "meters.choose_gateway": "Choose the gateway",
            "meters.default_tariff": "— site default —",
            "meters.need_gateway": "Add a gateway first: every meter is on a gateway's bus.",
            "meters.empty": "No meters yet — add the first one here, or import a sheet under Bulk "
            "import.",
            "meters.col_serial": "Meter",
            "meters.col_profile": "Profile",
            "meters.col_gateway": "Gateway",
            "meters.col_bus_address": "Bus address",
            "meters.col_unit": "Unit",
            "meters.col_ct_ratio": "CT ratio",
            "meters.col_tariff": "Tariff",
            "meters.col_price": "Price per kWh",
            "meters.col_alarm1": "Alarm 1",
            "meters.col_alarm2": "Alarm 2",
            "meters.col_overload": "Overload (kW)",
            "meters.col_account": "Open account",
            "meters.dispatch.price": "price dispatch",
            "meters.dispatch.settings": "settings dispatch (alarm amounts and overload threshold)",
            "meters.dispatch.queued": "A {kind} to meter {serial} is queued: the collector "
            "writes the new values to the meter.",
            "meters.dispatch.cannot": "Meter {serial} cannot receive a {kind}: its profile "
            "({profile}) has no such control. The values are saved for billing only.",
            "meters.dispatch.follow": "Follow the command under Batch control",
        },
        "zh": {
            "meters.nav": "电表",
            "meters.title": "电表",
            "meters.caption": "每块电表挂在一台通讯管理机的总线上，通讯地址唯一（1-247，每台最多 "
            "{max} 块）。报警金额和单价留空则使用系统默认值。",
            "meters.pick": "要编辑的电表",
            "meters.serial": "表号",
            "meters.profile": "型号",
            "meters.gateway": "通讯管理机",
            "meters.bus_address": "通讯地址（1-247）",
            "meters.unit": "户号",
            "meters.ct_ratio": "CT 变比",
            "meters.tariff": "电价方案",
            "meters.price": "本表单价（{currency}/kWh）",
            "meters.price_help": "一表一价：仅此表使用的单一电价；留空则用电价方案或系统默认方案。",
            "meters.alarm1": "一级报警金额（{currency}）",
            "meters.alarm2": "二级报警金额（{currency}）",
            "meters.overload": "过载阈值（kW）",
            "meters.none": "— 无 —",
            "meters.choose_gateway": "选择通讯管理机",
            "meters.default_tariff": "— 系统默认 —",
            "meters.need_gateway": "请先添加通讯管理机：每块电表都挂在通讯管理机的总线上。",
            "meters.empty": "还没有电表——在这里添加第一块，或在“批量导入”中导入表格。",
            "meters.col_serial": "表号",
            "meters.col_profile": "型号",
            "meters.col_gateway": "通讯管理机",
            "meters.col_bus_address": "通讯地址",
            "meters.col_unit": "户号",
            "meters.col_ct_ratio": "CT 变比",
            "meters.col_tariff": "电价方案",
            "meters.col_price": "单价",
            "meters.col_alarm1": "一级报警",
            "meters.col_alarm2": "二级报警",
            "meters.col_overload": "过载（kW）",
            "meters.col_account": "在用账户",
            "meters.dispatch.price": "电价下发",
            "meters.dispatch.settings": "设置下发（报警金额与过载阈值）",
            "meters.dispatch.queued": "已为电表 {serial} 排队{kind}：采集服务会把新值写入电表。",
            "meters.dispatch.cannot": "电表 {serial} 无法接收{kind}：其型号（{profile}）"
            "不支持该操作。新值已保存，仅用于平台计费。",
            "meters.dispatch.follow": "在“批量操作”中查看指令进度",
        },
    })

FIELDS = ("serial", "profile", "gateway_id", "bus_address", "unit_id", "ct_ratio", "tariff_id",
          "price_per_kwh", "alarm1_amount", "alarm2_amount", "overload_kw")
# What the last save dispatched to its meter, for the page to say once.
DISPATCHED = "meters_dispatched"
_TEXT = ("serial", "bus_address", "ct_ratio", "price_per_kwh", "alarm1_amount", "alarm2_amount",
         "overload_kw")


def _blank() -> Values:
    profiles = site.profiles()
    return {"serial": "", "profile": profiles[0] if profiles else None, "gateway_id": None,
            "bus_address": "", "unit_id": None, "ct_ratio": "1", "tariff_id": None,
            "price_per_kwh": "", "alarm1_amount": "", "alarm2_amount": "", "overload_kw": ""}


def _plain(value: object) -> str:
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return text_of(value)


def _load(session: Session, record_id: int) -> Values | None:
    meter = session.get(Meter, record_id)
    if meter is None:
        return None
    values: Values = {field: _plain(getattr(meter, field)) for field in _TEXT}
    values.update(profile=meter.profile, gateway_id=meter.gateway_id, unit_id=meter.unit_id,
                  tariff_id=meter.tariff_id)
    return values


def _save(
    session: Session, record_id: int, values: Values, operator: Operator | None, now: datetime
) -> tuple[int, str]:
    st.session_state.pop(DISPATCHED, None)
    if record_id == NEW:
        meter = site.create_meter(session, values, operator=operator, now=now)
        return meter.id, meter.serial
    update = dispatch.update_meter(session, record_id, values, operator=operator,
                                   policy=auth.policy(session), now=now)
    meter = update.meter
    st.session_state[DISPATCHED] = {
        "serial": meter.serial, "profile": meter.profile,
        "queued": [command.kind for command in update.queued],
        "cannot": update.cannot_receive,
    }
    if update.queued:
        # The batch page follows the commands this session sent: these among them.
        st.session_state[SENT] = [c.id for c in update.queued] + st.session_state.get(SENT, [])
    return meter.id, meter.serial


def _delete(session: Session, record_id: int, operator: Operator | None, now: datetime) -> str:
    serial = session.get_one(Meter, record_id).serial
    site.delete_meter(session, record_id, operator=operator, now=now)
    return serial


EDITOR = Editor(prefix="meters", fields=FIELDS, blank=_blank, load=_load, save=_save,
                delete=_delete)


def render() -> None:
    st.title(t("meters.title"))
    st.caption(t("meters.caption", max=site.MAX_METERS_PER_GATEWAY))
    if not allowed():
        return
    with unit_of_work(auth.database_url()) as session:
        rows = site.meters(session)
        gateways = {g.id: f"{g.name} ({g.meters}/{site.MAX_METERS_PER_GATEWAY})"
                    for g in site.gateways(session)}
        units = {u.id: f"{u.number} · {u.building} · {u.floor}" for u in site.units(session)}
        tariffs = dict(site.tariffs(session))
        sees_control = can(auth.current_operator(session), CONTROL.permission)
    if not gateways:
        st.info(t("meters.need_gateway"))
        return
    by_id = {row.id: row for row in rows}
    EDITOR.messages()
    _dispatched(sees_control)
    EDITOR.picker(t("meters.pick"), list(by_id),
                  lambda i: f"{by_id[i].serial} · {by_id[i].gateway} #{by_id[i].bus_address}"
                  f" · {by_id[i].unit or '-'}")
    _form(gateways, units, tariffs)
    EDITOR.delete_button()
    if not rows:
        st.info(t("meters.empty"))
        return
    _table(rows)


def _dispatched(sees_control: bool) -> None:
    done = st.session_state.pop(DISPATCHED, None)
    if not done:
        return
    for kind in done["queued"]:
        st.info(t("meters.dispatch.queued", kind=t(f"meters.dispatch.{kind}"),
                  serial=done["serial"]), icon=":material/send:")
    if done["queued"] and sees_control:
        st.page_link("screens/control.py", label=t("meters.dispatch.follow"),
                     icon=":material/arrow_forward:")
    for kind in done["cannot"]:
        st.warning(t("meters.dispatch.cannot", kind=t(f"meters.dispatch.{kind}"),
                     serial=done["serial"], profile=done["profile"]))


def _form(gateways: dict[int, str], units: dict[int, str], tariffs: dict[int, str]) -> None:
    key = EDITOR.key
    currency = get_settings().currency
    with st.form("meters_form"):
        left, right = st.columns(2)
        left.text_input(t("meters.serial"), key=key("serial"), placeholder="M00001")
        right.selectbox(t("meters.profile"), site.profiles(), key=key("profile"))
        left.selectbox(t("meters.gateway"), list(gateways), key=key("gateway_id"),
                       format_func=gateways.__getitem__, placeholder=t("meters.choose_gateway"))
        right.text_input(t("meters.bus_address"), key=key("bus_address"))
        # None is a choice too; the browser shows it as the placeholder.
        left.selectbox(t("meters.unit"), [None, *units], key=key("unit_id"),
                       format_func=lambda i: t("meters.none") if i is None else units[i],
                       placeholder=t("meters.none"))
        right.text_input(t("meters.ct_ratio"), key=key("ct_ratio"))
        left.selectbox(t("meters.tariff"), [None, *tariffs], key=key("tariff_id"),
                       format_func=lambda i: t("meters.default_tariff") if i is None
                       else tariffs[i], placeholder=t("meters.default_tariff"))
        right.text_input(t("meters.price", currency=currency), key=key("price_per_kwh"),
                         help=t("meters.price_help"))
        left.text_input(t("meters.alarm1", currency=currency), key=key("alarm1_amount"))
        right.text_input(t("meters.alarm2", currency=currency), key=key("alarm2_amount"))
        left.text_input(t("meters.overload"), key=key("overload_kw"))
        EDITOR.buttons()


def _table(rows: list[site.MeterRow]) -> None:
    money = "#,##0.00"
    data = [
        {
            "serial": r.serial, "profile": r.profile, "gateway": r.gateway,
            "bus_address": r.bus_address, "unit": r.unit, "ct_ratio": r.ct_ratio,
            "tariff": r.tariff, "price_per_kwh": r.price_per_kwh,
            "alarm1_amount": r.alarm1_amount, "alarm2_amount": r.alarm2_amount,
            "overload_kw": r.overload_kw, "account": r.account,
        }
        for r in rows
    ]
    table(
        data,
        [
            Column("serial", t("meters.col_serial")), Column("profile", t("meters.col_profile")),
            Column("gateway", t("meters.col_gateway")),
            Column("bus_address", t("meters.col_bus_address")),
            Column("unit", t("meters.col_unit")), Column("ct_ratio", t("meters.col_ct_ratio")),
            Column("tariff", t("meters.col_tariff")),
            Column("price_per_kwh", t("meters.col_price"), "0.0000"),
            Column("alarm1_amount", t("meters.col_alarm1"), money),
            Column("alarm2_amount", t("meters.col_alarm2"), money),
            Column("overload_kw", t("meters.col_overload"), "#,##0.000"),
            Column("account", t("meters.col_account")),
        ],
        key="meters_table", sheet=t("meters.title"), file_name="meters.xlsx",
    )


if __name__ == "__main__":
    render()
