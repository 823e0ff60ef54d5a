"""Lost contact (失联): meters and gateways the collector cannot reach, since when, for how long."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from app import auth
from app.export import XLSX_MIME, Column, xlsx_bytes
from app.i18n import STRINGS, register, t
from app.nav import Screen
from billing.monitoring import LostGateway, LostMeter, lost_gateways, lost_meters
from billing.operators import can
from schema.db import unit_of_work
from voltpay.settings import get_settings

SCREEN = Screen(module="lost_contact", url_path="lost-contact", title_key="lost_contact.nav",
                permission="view", icon=":material/link_off:", section="section.reports",
                order=60)
REFRESH_S = 30
TIME_FORMAT = "YYYY-MM-DD HH:mm:ss"
HOURS = "0.0"

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "lost_contact.nav" not in STRINGS["en"]:
    register({
        "en": {
            "lost_contact.nav": "Lost contact",
            "lost_contact.title": "Lost contact",
            "lost_contact.caption": "Meters and gateways the collector cannot reach, longest "
            "lost first. Refreshes every {seconds} s; updated {time}.",
            "lost_contact.all_answer": "Every meter and gateway answers — nothing has lost "
            "contact. A meter is listed here when the collector misses it several times in a "
            "row.",
            "lost_contact.gateways": "Gateways ({count})",
            "lost_contact.no_gateways": "Every gateway answers: the meters below are lost on "
            "their own — check their wiring, address and power.",
            "lost_contact.meters": "Meters ({count})",
            "lost_contact.no_meters": "No meter is lost.",
            "lost_contact.col.gateway": "Gateway",
            "lost_contact.col.address": "Address",
            "lost_contact.col.meters": "Meters on it",
            "lost_contact.col.last_contact": "Last contact ({tz})",
            "lost_contact.col.last_reading": "Last reading ({tz})",
            "lost_contact.col.lost_since": "Lost since ({tz})",
            "lost_contact.col.lost_for": "Lost for",
            "lost_contact.col.lost_hours": "Lost for (hours)",
            "lost_contact.export_gateways": "Export gateways to Excel",
            "lost_contact.export_meters": "Export meters to Excel",
            "lost_contact.days": "{days} d {hours} h",
            "lost_contact.hours": "{hours} h {minutes} min",
            "lost_contact.minutes": "{minutes} min",
        },
        "zh": {
            "lost_contact.nav": "失联查询",
            "lost_contact.title": "失联电表与通讯管理机",
            "lost_contact.caption": "采集服务无法联系的电表和通讯管理机，失联最久的在前。"
            "每 {seconds} 秒刷新；更新于 {time}。",
            "lost_contact.all_answer": "所有电表和通讯管理机均通讯正常，没有失联。"
            "采集服务连续多次读不到电表时，会在此列出。",
            "lost_contact.gateways": "通讯管理机（{count}）",
            "lost_contact.no_gateways": "所有通讯管理机通讯正常：下列电表单独失联——请检查其接线、"
            "地址和电源。",
            "lost_contact.meters": "电表（{count}）",
            "lost_contact.no_meters": "没有失联的电表。",
            "lost_contact.col.gateway": "通讯管理机",
            "lost_contact.col.address": "地址",
            "lost_contact.col.meters": "所带电表数",
            "lost_contact.col.last_contact": "最后通讯时间 ({tz})",
            "lost_contact.col.last_reading": "最后抄表时间 ({tz})",
            "lost_contact.col.lost_since": "失联时间 ({tz})",
            "lost_contact.col.lost_for": "失联时长",
            "lost_contact.col.lost_hours": "失联时长（小时）",
            "lost_contact.export_gateways": "导出通讯管理机 Excel",
            "lost_contact.export_meters": "导出电表 Excel",
            "lost_contact.days": "{days}天{hours}小时",
            "lost_contact.hours": "{hours}小时{minutes}分",
            "lost_contact.minutes": "{minutes}分钟",
        },
    })


def render() -> None:
    st.title(t("lost_contact.title"))
    lost_panel()


def duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return t("lost_contact.days", days=days, hours=hours)
    if hours:
        return t("lost_contact.hours", hours=hours, minutes=minutes)
    return t("lost_contact.minutes", minutes=minutes)


def _hours(span: timedelta) -> float:
    return round(span.total_seconds() / 3600, 1)


def _local(at: datetime | None, tz: ZoneInfo) -> datetime | None:
    return at.astimezone(tz).replace(tzinfo=None) if at else None


@st.fragment(run_every=REFRESH_S)
def lost_panel() -> None:
    settings = get_settings()
    now = auth.utcnow()
    with unit_of_work(settings.database_url) as session:
        allowed = can(auth.current_operator(session), "view")
        meters = lost_meters(session, now) if allowed else []
        gateways = lost_gateways(session, now) if allowed else []
    if not allowed:
        st.error(t("denied.view"))
        return
    if not meters and not gateways:
        st.success(t("lost_contact.all_answer"), icon=":material/check_circle:")
        return
    tz = settings.tz
    st.caption(t("lost_contact.caption", seconds=REFRESH_S,
                 time=now.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")))
    _gateways(gateways, tz, now)
    _meters(meters, tz, now)


def _gateways(gateways: list[LostGateway], tz: ZoneInfo, now: datetime) -> None:
    st.subheader(t("lost_contact.gateways", count=len(gateways)))
    if not gateways:
        st.caption(t("lost_contact.no_gateways"))
        return
    header = {
        "gateway": t("lost_contact.col.gateway"),
        "address": t("lost_contact.col.address"),
        "meters": t("lost_contact.col.meters"),
        "last_contact": t("lost_contact.col.last_contact", tz=tz.key),
        "lost_since": t("lost_contact.col.lost_since", tz=tz.key),
        "lost_for": t("lost_contact.col.lost_for"),
        "lost_hours": t("lost_contact.col.lost_hours"),
    }
    rows: list[dict[str, Any]] = [
        {
            "gateway": g.gateway,
            "address": g.address,
            "meters": g.meters,
            "last_contact": _local(g.last_contact_at, tz),
            "lost_since": _local(g.lost_since, tz),
            "lost_for": duration(g.lost_for),
            "lost_hours": _hours(g.lost_for),
        }
        for g in gateways
    ]
    column = st.column_config
    st.dataframe(
        rows, key="lost_contact_gateways", hide_index=True, placeholder="",
        column_order=[key for key in header if key != "lost_hours"],
        column_config={
            "gateway": column.TextColumn(header["gateway"]),
            "address": column.TextColumn(header["address"]),
            "meters": column.NumberColumn(header["meters"], format="%d"),
            "last_contact": column.DatetimeColumn(header["last_contact"], format=TIME_FORMAT),
            "lost_since": column.DatetimeColumn(header["lost_since"], format=TIME_FORMAT),
            "lost_for": column.TextColumn(header["lost_for"]),
        },
    )
    columns = [Column(key, title, HOURS if key == "lost_hours" else None)
               for key, title in header.items() if key != "lost_for"]
    sheet = t("lost_contact.gateways", count=len(gateways))
    st.download_button(
        t("lost_contact.export_gateways"), data=lambda: xlsx_bytes(rows, columns, sheet=sheet),
        file_name=f"lost-gateways-{now.astimezone(tz):%Y%m%d-%H%M}.xlsx", mime=XLSX_MIME,
        key="lost_contact_export_gateways", icon=":material/download:", on_click="ignore",
    )


def _meters(meters: list[LostMeter], tz: ZoneInfo, now: datetime) -> None:
    st.subheader(t("lost_contact.meters", count=len(meters)))
    if not meters:
        st.caption(t("lost_contact.no_meters"))
        return
    header = {
        "meter": t("col.meter"),
        "unit": t("col.unit"),
        "building": t("col.building"),
        "floor": t("col.floor"),
        "gateway": t("lost_contact.col.gateway"),
        "account": t("col.account"),
        "tenant": t("col.tenant"),
        "last_reading": t("lost_contact.col.last_reading", tz=tz.key),
        "lost_since": t("lost_contact.col.lost_since", tz=tz.key),
        "lost_for": t("lost_contact.col.lost_for"),
        "lost_hours": t("lost_contact.col.lost_hours"),
    }
    rows: list[dict[str, Any]] = [
        {
            "meter": m.meter,
            "unit": m.unit,
            "building": m.building,
            "floor": m.floor,
            "gateway": m.gateway,
            "account": m.account,
            "tenant": m.tenant,
            "last_reading": _local(m.last_reading_at, tz),
            "lost_since": _local(m.lost_since, tz),
            "lost_for": duration(m.lost_for),
            "lost_hours": _hours(m.lost_for),
        }
        for m in meters
    ]
    column = st.column_config
    st.dataframe(
        rows, key="lost_contact_meters", hide_index=True, placeholder="",
        column_order=[key for key in header if key != "lost_hours"],
        column_config={
            **{key: column.TextColumn(header[key])
               for key in ("meter", "unit", "building", "floor", "gateway", "account", "tenant",
                           "lost_for")},
            "last_reading": column.DatetimeColumn(header["last_reading"], format=TIME_FORMAT),
            "lost_since": column.DatetimeColumn(header["lost_since"], format=TIME_FORMAT),
        },
    )
    columns = [Column(key, title, HOURS if key == "lost_hours" else None)
               for key, title in header.items() if key != "lost_for"]
    sheet = t("lost_contact.meters", count=len(meters))
    st.download_button(
        t("lost_contact.export_meters"), data=lambda: xlsx_bytes(rows, columns, sheet=sheet),
        file_name=f"lost-meters-{now.astimezone(tz):%Y%m%d-%H%M}.xlsx", mime=XLSX_MIME,
        key="lost_contact_export_meters", icon=":material/download:", on_click="ignore",
    )


if __name__ == "__main__":
    render()
