"""Gateways (通讯管理机): where each RS-485 bus is reached, how, and how often it is read."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy.orm import Session

from app import auth
from app.export import DATETIME, Column
from app.i18n import STRINGS, register, t
from app.nav import Screen
from app.screens.site import NEW, Editor, Values, allowed, table, text_of
from billing import site
from schema.db import unit_of_work
from schema.models import Gateway, Operator
from voltpay.settings import get_settings

SCREEN = Screen(module="gateways", url_path="gateway-settings", title_key="gateways.nav",
                permission="configure", icon=":material/router:",
                section="section.settings", order=20)

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "gateways.nav" not in STRINGS["en"]:
    register({
        "en": {
            "gateways.nav": "Gateways",
            "gateways.title": "Gateways",
            "gateways.caption": "Each gateway (serial server) puts one RS-485 bus of at most "
            "{max} meters on the network.",
            "gateways.pick": "Gateway to edit",
            "gateways.name": "Name",
            "gateways.host": "Host (IP address, host name, or serial device)",
            "gateways.port": "Port",
            "gateways.transport": "Transport",
            "gateways.timeout_s": "Timeout (s)",
            "gateways.retries": "Retries",
            "gateways.gap_ms": "Gap between requests (ms)",
            "gateways.baudrate": "Baud rate (serial)",
            "gateways.interval_s": "Collection interval (s)",
            "gateways.interval_help": "Leave blank to read this bus at the site's collection "
            "interval.",
            "gateways.enabled": "Enabled (the collector reads it)",
            "gateways.empty": "No gateways yet — add the first one here, or import a sheet under "
            "Bulk import.",
            "gateways.transport.tcp": "Modbus TCP",
            "gateways.transport.rtu-over-tcp": "RTU over TCP (transparent serial server)",
            "gateways.transport.serial": "Local serial port",
            "gateways.col_name": "Gateway",
            "gateways.col_host": "Host",
            "gateways.col_port": "Port",
            "gateways.col_transport": "Transport",
            "gateways.col_timeout": "Timeout (s)",
            "gateways.col_retries": "Retries",
            "gateways.col_gap": "Gap (ms)",
            "gateways.col_baudrate": "Baud rate",
            "gateways.col_interval": "Interval (s)",
            "gateways.col_enabled": "Enabled",
            "gateways.col_meters": "Meters",
            "gateways.col_last_contact": "Last contact ({tz})",
            "gateways.col_lost_since": "Lost since ({tz})",
        },
        "zh": {
            "gateways.nav": "通讯管理机",
            "gateways.title": "通讯管理机",
            "gateways.caption": "每台通讯管理机（串口服务器）把一条最多 {max} 块电表的 RS-485 "
            "总线接入网络。",
            "gateways.pick": "要编辑的通讯管理机",
            "gateways.name": "名称",
            "gateways.host": "地址（IP、主机名或串口设备）",
            "gateways.port": "端口",
            "gateways.transport": "传输方式",
            "gateways.timeout_s": "超时（秒）",
            "gateways.retries": "重试次数",
            "gateways.gap_ms": "请求间隔（毫秒）",
            "gateways.baudrate": "波特率（串口）",
            "gateways.interval_s": "采集间隔（秒）",
            "gateways.interval_help": "留空则按系统默认采集间隔读取此总线。",
            "gateways.enabled": "启用（采集服务读取）",
            "gateways.empty": "还没有通讯管理机——在这里添加第一台，或在“批量导入”中导入表格。",
            "gateways.transport.tcp": "Modbus TCP",
            "gateways.transport.rtu-over-tcp": "RTU over TCP（透传串口服务器）",
            "gateways.transport.serial": "本地串口",
            "gateways.col_name": "通讯管理机",
            "gateways.col_host": "地址",
            "gateways.col_port": "端口",
            "gateways.col_transport": "传输方式",
            "gateways.col_timeout": "超时（秒）",
            "gateways.col_retries": "重试次数",
            "gateways.col_gap": "请求间隔（毫秒）",
            "gateways.col_baudrate": "波特率",
            "gateways.col_interval": "采集间隔（秒）",
            "gateways.col_enabled": "启用",
            "gateways.col_meters": "电表数",
            "gateways.col_last_contact": "最后通讯（{tz}）",
            "gateways.col_lost_since": "失联时间（{tz}）",
        },
    })

FIELDS = ("name", "host", "port", "transport", "timeout_s", "retries", "gap_ms", "baudrate",
          "interval_s", "enabled")


def _blank() -> Values:
    return {"name": "", "host": "", "port": "502", "transport": "tcp", "timeout_s": "1",
            "retries": "1", "gap_ms": "0", "baudrate": 9600, "interval_s": "", "enabled": True}


def _load(session: Session, record_id: int) -> Values | None:
    gateway = session.get(Gateway, record_id)
    if gateway is None:
        return None
    values: Values = {field: text_of(getattr(gateway, field)) for field in FIELDS}
    values.update(transport=gateway.transport, baudrate=gateway.baudrate,
                  enabled=gateway.enabled, timeout_s=f"{gateway.timeout_s.normalize():f}")
    return values


def _save(
    session: Session, record_id: int, values: Values, operator: Operator | None, now: datetime
) -> tuple[int, str]:
    if record_id == NEW:
        gateway = site.create_gateway(session, values, operator=operator, now=now)
    else:
        gateway = site.update_gateway(session, record_id, values, operator=operator, now=now)
    return gateway.id, gateway.name


def _delete(session: Session, record_id: int, operator: Operator | None, now: datetime) -> str:
    name = session.get_one(Gateway, record_id).name
    site.delete_gateway(session, record_id, operator=operator, now=now)
    return name


EDITOR = Editor(prefix="gateways", fields=FIELDS, blank=_blank, load=_load, save=_save,
                delete=_delete)


def render() -> None:
    st.title(t("gateways.title"))
    st.caption(t("gateways.caption", max=site.MAX_METERS_PER_GATEWAY))
    if not allowed():
        return
    with unit_of_work(auth.database_url()) as session:
        rows = site.gateways(session)
    by_id = {row.id: row for row in rows}
    EDITOR.messages()
    EDITOR.picker(t("gateways.pick"), list(by_id), lambda i: _label(by_id[i]))
    _form()
    EDITOR.delete_button()
    if not rows:
        st.info(t("gateways.empty"))
        return
    _table(rows, get_settings().tz)


def _label(row: site.GatewayRow) -> str:
    return f"{row.name} · {site.endpoint(row.host, row.port, row.transport)}"


def _form() -> None:
    key = EDITOR.key
    with st.form("gateways_form"):
        left, right = st.columns(2)
        left.text_input(t("gateways.name"), key=key("name"), placeholder="GW-01")
        right.selectbox(t("gateways.transport"), site.TRANSPORTS, key=key("transport"),
                        format_func=lambda kind: t(f"gateways.transport.{kind}"))
        left.text_input(t("gateways.host"), key=key("host"), placeholder="192.168.1.20")
        right.text_input(t("gateways.port"), key=key("port"))
        left.text_input(t("gateways.timeout_s"), key=key("timeout_s"))
        right.text_input(t("gateways.retries"), key=key("retries"))
        left.text_input(t("gateways.gap_ms"), key=key("gap_ms"))
        right.selectbox(t("gateways.baudrate"), site.BAUDRATES, key=key("baudrate"))
        left.text_input(t("gateways.interval_s"), key=key("interval_s"),
                        help=t("gateways.interval_help"))
        right.checkbox(t("gateways.enabled"), key=key("enabled"))
        EDITOR.buttons()


def _local(at: datetime | None, tz: ZoneInfo) -> datetime | None:
    return at.astimezone(tz).replace(tzinfo=None) if at else None


def _table(rows: list[site.GatewayRow], tz: ZoneInfo) -> None:
    data = [
        {
            "name": r.name, "host": r.host, "port": r.port,
            "transport": t(f"gateways.transport.{r.transport}"), "timeout_s": r.timeout_s,
            "retries": r.retries, "gap_ms": r.gap_ms, "baudrate": r.baudrate,
            "interval_s": r.interval_s, "enabled": r.enabled,
            "meters": f"{r.meters} / {site.MAX_METERS_PER_GATEWAY}",
            "last_contact": _local(r.last_contact_at, tz), "lost_since": _local(r.lost_since, tz),
        }
        for r in rows
    ]
    table(
        data,
        [
            Column("name", t("gateways.col_name")), Column("host", t("gateways.col_host")),
            Column("port", t("gateways.col_port")),
            Column("transport", t("gateways.col_transport")),
            Column("timeout_s", t("gateways.col_timeout"), "0.0##"),
            Column("retries", t("gateways.col_retries")), Column("gap_ms", t("gateways.col_gap")),
            Column("baudrate", t("gateways.col_baudrate")),
            Column("interval_s", t("gateways.col_interval")),
            Column("enabled", t("gateways.col_enabled")),
            Column("meters", t("gateways.col_meters")),
            Column("last_contact", t("gateways.col_last_contact", tz=tz.key), DATETIME),
            Column("lost_since", t("gateways.col_lost_since", tz=tz.key), DATETIME),
        ],
        key="gateways_table", sheet=t("gateways.title"), file_name="gateways.xlsx",
        column_config={
            "last_contact": st.column_config.DatetimeColumn(
                t("gateways.col_last_contact", tz=tz.key), format="YYYY-MM-DD HH:mm:ss"),
            "lost_since": st.column_config.DatetimeColumn(
                t("gateways.col_lost_since", tz=tz.key), format="YYYY-MM-DD HH:mm:ss"),
        },
    )


if __name__ == "__main__":
    render()
