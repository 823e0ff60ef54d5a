"""Alarms (告警): the real-time alarm table with acknowledgement, and the alarm history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from app import auth
from app.export import XLSX_MIME, Column, xlsx_bytes
from app.i18n import STRINGS, register, t
from app.nav import Screen
from billing.errors import BillingError
from billing.monitoring import (
    AlarmRow,
    acknowledge_alarms,
    alarm_history,
    alarm_kinds,
    open_alarms,
)
from billing.operators import can
from schema.db import unit_of_work
from voltpay.settings import get_settings

SCREEN = Screen(module="alarms", url_path="alarm-center", title_key="alarms.nav",
                permission="view", icon=":material/notifications_active:",
                section="section.reports", order=55)
REFRESH_S = 10
HISTORY_DAYS = 30
TIME_FORMAT = "YYYY-MM-DD HH:mm:ss"
# The kinds of alarm known today; any other kind a newer collector raises shows as it is named.
KINDS = ("energy_backwards", "tariff_error", "alarm1", "alarm2", "arrears", "overload",
         "lost_contact", "command_failed")
FLASH = "alarms_flash"  # what the last acknowledgement did, shown once

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "alarms.nav" not in STRINGS["en"]:
    register({
        "en": {
            "alarms.nav": "Alarms",
            "alarms.title": "Alarms",
            "alarms.tab.open": "Real-time alarms",
            "alarms.tab.history": "Alarm history",
            "alarms.kind.energy_backwards": "Energy went backwards",
            "alarms.kind.tariff_error": "Tariff error",
            "alarms.kind.alarm1": "Alarm 1 (low balance)",
            "alarms.kind.alarm2": "Alarm 2 (very low balance)",
            "alarms.kind.arrears": "Arrears",
            "alarms.kind.overload": "Overload",
            "alarms.kind.lost_contact": "Lost contact",
            "alarms.kind.command_failed": "Command failed",
            "alarms.col.gateway": "Gateway",
            "alarms.open_caption": "{count} open alarm(s), newest first. Refreshes every "
            "{seconds} s; updated {time}.",
            "alarms.none_open": "No open alarms — nothing needs attention. Alarms appear here "
            "as soon as the collector raises them; past ones are under Alarm history.",
            "alarms.col.id": "No.",
            "alarms.col.kind": "Alarm",
            "alarms.col.raised": "Raised at ({tz})",
            "alarms.col.value": "Value",
            "alarms.col.detail": "Details",
            "alarms.col.acknowledged": "Acknowledged at ({tz})",
            "alarms.col.acknowledged_by": "Acknowledged by",
            "alarms.col.note": "Note",
            "alarms.col.cleared": "Cleared at ({tz})",
            "alarms.export_open": "Export real-time alarms to Excel",
            "alarms.export_history": "Export alarm history to Excel",
            "alarms.ack_title": "Acknowledge",
            "alarms.ack_all_done": "Every open alarm is acknowledged.",
            "alarms.ack_view_only": "Acknowledging alarms needs the control permission — ask an "
            "administrator.",
            "alarms.ack_choose": "Alarms to acknowledge",
            "alarms.ack_placeholder": "Choose alarms",
            "alarms.ack_label": "#{id} · {kind} · {meter} · {raised}",
            "alarms.ack_note": "Note (what was done)",
            "alarms.ack_submit": "Acknowledge",
            "alarms.ack_none": "Choose at least one alarm to acknowledge.",
            "alarms.ack_done": "Acknowledged {count} alarm(s).",
            "alarms.from": "From",
            "alarms.to": "To",
            "alarms.kinds": "Alarms",
            "alarms.all_kinds": "All",
            "alarms.history_caption": "{count} alarm(s) raised in these days, newest first.",
            "alarms.history_empty": "No alarm was raised in these days. Widen the dates or "
            "clear the alarm filter.",
        },
        "zh": {
            "alarms.nav": "告警",
            "alarms.title": "告警",
            "alarms.tab.open": "实时告警",
            "alarms.tab.history": "历史告警",
            "alarms.kind.energy_backwards": "电量倒走",
            "alarms.kind.tariff_error": "电价错误",
            "alarms.kind.alarm1": "一级预警（余额不足）",
            "alarms.kind.alarm2": "二级预警（余额严重不足）",
            "alarms.kind.arrears": "欠费",
            "alarms.kind.overload": "过载",
            "alarms.kind.lost_contact": "失联",
            "alarms.kind.command_failed": "命令失败",
            "alarms.col.gateway": "通讯管理机",
            "alarms.open_caption": "{count} 条未消除的告警，最新的在前。每 {seconds} 秒刷新；"
            "更新于 {time}。",
            "alarms.none_open": "没有未消除的告警，无需处理。采集服务产生告警后会立即显示在这里；"
            "已消除的告警见“历史告警”。",
            "alarms.col.id": "编号",
            "alarms.col.kind": "告警",
            "alarms.col.raised": "发生时间 ({tz})",
            "alarms.col.value": "数值",
            "alarms.col.detail": "详情",
            "alarms.col.acknowledged": "确认时间 ({tz})",
            "alarms.col.acknowledged_by": "确认人",
            "alarms.col.note": "备注",
            "alarms.col.cleared": "消除时间 ({tz})",
            "alarms.export_open": "导出实时告警 Excel",
            "alarms.export_history": "导出历史告警 Excel",
            "alarms.ack_title": "确认告警",
            "alarms.ack_all_done": "所有未消除的告警均已确认。",
            "alarms.ack_view_only": "确认告警需要遥控权限——请联系管理员。",
            "alarms.ack_choose": "要确认的告警",
            "alarms.ack_placeholder": "选择告警",
            "alarms.ack_label": "#{id} · {kind} · {meter} · {raised}",
            "alarms.ack_note": "备注（处理情况）",
            "alarms.ack_submit": "确认",
            "alarms.ack_none": "请至少选择一条告警。",
            "alarms.ack_done": "已确认 {count} 条告警。",
            "alarms.from": "开始日期",
            "alarms.to": "结束日期",
            "alarms.kinds": "告警类型",
            "alarms.all_kinds": "全部",
            "alarms.history_caption": "这段时间共发生 {count} 条告警，最新的在前。",
            "alarms.history_empty": "这段时间没有发生告警。请扩大日期范围或清除告警类型筛选。",
        },
    })


def render() -> None:
    st.title(t("alarms.title"))
    settings = get_settings()
    with unit_of_work(settings.database_url) as session:
        operator = auth.current_operator(session)
        allowed, may_control = can(operator, "view"), can(operator, "control")
        kinds = alarm_kinds(session) if allowed else []
    if not allowed:
        st.error(t("denied.view"))
        return
    open_tab, history_tab = st.tabs([t("alarms.tab.open"), t("alarms.tab.history")])
    with open_tab:
        open_panel()
        _acknowledge_form(may_control)
    with history_tab:
        _history(kinds)


def kind_label(kind: str) -> str:
    return t(f"alarms.kind.{kind}") if kind in KINDS else kind


def _local(at: datetime | None, tz: ZoneInfo) -> datetime | None:
    return at.astimezone(tz).replace(tzinfo=None) if at else None


def _headers(tz: ZoneInfo) -> dict[str, str]:
    return {
        "id": t("alarms.col.id"),
        "kind": t("alarms.col.kind"),
        "meter": t("col.meter"),
        "gateway": t("alarms.col.gateway"),
        "unit": t("col.unit"),
        "account": t("col.account"),
        "tenant": t("col.tenant"),
        "raised": t("alarms.col.raised", tz=tz.key),
        "value": t("alarms.col.value"),
        "detail": t("alarms.col.detail"),
        "acknowledged": t("alarms.col.acknowledged", tz=tz.key),
        "acknowledged_by": t("alarms.col.acknowledged_by"),
        "note": t("alarms.col.note"),
        "cleared": t("alarms.col.cleared", tz=tz.key),
    }


def _records(rows: Sequence[AlarmRow], tz: ZoneInfo) -> list[dict[str, Any]]:
    return [
        {
            "id": row.alarm_id,
            "kind": kind_label(row.kind),
            "meter": row.meter,
            "gateway": row.gateway,
            "unit": row.unit,
            "account": row.account,
            "tenant": row.tenant,
            "raised": _local(row.raised_at, tz),
            "value": row.value,
            "detail": row.detail,
            "acknowledged": _local(row.acknowledged_at, tz),
            "acknowledged_by": row.acknowledged_by,
            "note": row.ack_note,
            "cleared": _local(row.cleared_at, tz),
        }
        for row in rows
    ]


def _table(
    rows: Sequence[AlarmRow], tz: ZoneInfo, *, key: str, export_label: str, file_name: str,
    cleared: bool,
) -> None:
    header = _headers(tz)
    if not cleared:
        del header["cleared"]
    records = _records(rows, tz)
    column = st.column_config
    times = {"raised", "acknowledged", "cleared"}
    st.dataframe(
        records, key=key, hide_index=True, placeholder="", column_order=list(header),
        column_config={
            key_: column.DatetimeColumn(title, format=TIME_FORMAT) if key_ in times
            else column.NumberColumn(title, format="%d") if key_ == "id"
            else column.TextColumn(title, width="large" if key_ == "detail" else None)
            for key_, title in header.items()
        },
    )
    columns = [Column(key_, title, width=60 if key_ == "detail" else None)
               for key_, title in header.items()]
    sheet = t("alarms.title")
    # Built only when clicked (on another thread, where nothing may touch the session).
    st.download_button(
        export_label, data=lambda: xlsx_bytes(records, columns, sheet=sheet),
        file_name=file_name, mime=XLSX_MIME, key=f"{key}_export", icon=":material/download:",
        on_click="ignore",
    )


@st.fragment(run_every=REFRESH_S)
def open_panel() -> None:
    settings = get_settings()
    tz = settings.tz
    now = auth.utcnow()
    with unit_of_work(settings.database_url) as session:
        rows = open_alarms(session) if can(auth.current_operator(session), "view") else []
    if not rows:
        st.success(t("alarms.none_open"), icon=":material/check_circle:")
        return
    st.caption(t("alarms.open_caption", count=len(rows), seconds=REFRESH_S,
                 time=now.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")))
    _table(rows, tz, key="alarms_open", export_label=t("alarms.export_open"),
           file_name=f"alarms-{now.astimezone(tz):%Y%m%d-%H%M}.xlsx", cleared=False)


def _acknowledge() -> None:
    """On submit, before the page is drawn again, so the choice can be cleared after it."""
    settings = get_settings()
    chosen = list(st.session_state.get("alarms_ack_ids", []))
    if not chosen:
        st.session_state[FLASH] = ("error", t("alarms.ack_none"))
        return
    try:
        with unit_of_work(settings.database_url) as session:
            done = acknowledge_alarms(
                session, chosen, operator=auth.current_operator(session),
                note=st.session_state.get("alarms_ack_note", ""), now=auth.utcnow(),
            )
            count = len(done)
    except BillingError as exc:
        st.session_state[FLASH] = ("error", str(exc))
        return
    st.session_state[FLASH] = ("success", t("alarms.ack_done", count=count))
    st.session_state["alarms_ack_ids"] = []
    st.session_state["alarms_ack_note"] = ""


def _acknowledge_form(may_control: bool) -> None:
    st.subheader(t("alarms.ack_title"))
    flash = st.session_state.pop(FLASH, None)
    if flash is not None:
        kind, message = flash
        (st.success if kind == "success" else st.error)(message)
    settings = get_settings()
    with unit_of_work(settings.database_url) as session:
        waiting = [row for row in open_alarms(session) if row.acknowledged_at is None]
    if not waiting:
        st.caption(t("alarms.ack_all_done"))
        return
    if not may_control:
        st.info(t("alarms.ack_view_only"))
    tz = settings.tz
    labels = {
        row.alarm_id: t("alarms.ack_label", id=row.alarm_id, kind=kind_label(row.kind),
                        meter=row.meter or row.gateway or "-",
                        raised=row.raised_at.astimezone(tz).strftime("%m-%d %H:%M"))
        for row in waiting
    }
    # Alarms acknowledged elsewhere meanwhile are no longer offered: drop them from the choice.
    chosen = st.session_state.get("alarms_ack_ids", [])
    if any(i not in labels for i in chosen):
        st.session_state["alarms_ack_ids"] = [i for i in chosen if i in labels]
    with st.form("alarms_ack_form"):
        st.multiselect(t("alarms.ack_choose"), list(labels), format_func=labels.__getitem__,
                       placeholder=t("alarms.ack_placeholder"), key="alarms_ack_ids")
        st.text_input(t("alarms.ack_note"), max_chars=500, key="alarms_ack_note")
        st.form_submit_button(t("alarms.ack_submit"), type="primary", key="alarms_ack_submit",
                              on_click=_acknowledge)


def _history(kinds: list[str]) -> None:
    settings = get_settings()
    tz = settings.tz
    today = auth.utcnow().astimezone(tz).date()
    start_col, end_col, kind_col = st.columns([1, 1, 2])
    start_on = start_col.date_input(t("alarms.from"), today - timedelta(days=HISTORY_DAYS - 1),
                                    key="alarms_from")
    end_on = end_col.date_input(t("alarms.to"), today, key="alarms_to")
    offered = list(dict.fromkeys([*KINDS, *kinds]))
    chosen = kind_col.multiselect(t("alarms.kinds"), offered, format_func=kind_label,
                                  placeholder=t("alarms.all_kinds"), key="alarms_kinds")
    if not isinstance(start_on, date) or not isinstance(end_on, date):
        return
    try:
        with unit_of_work(settings.database_url) as session:
            rows = alarm_history(session, start_on, end_on, tz, chosen)
    except BillingError as exc:
        st.error(str(exc))
        return
    if not rows:
        st.info(t("alarms.history_empty"))
        return
    st.caption(t("alarms.history_caption", count=len(rows)))
    _table(rows, tz, key="alarms_history", export_label=t("alarms.export_history"),
           file_name=f"alarm-history-{start_on:%Y%m%d}-{end_on:%Y%m%d}.xlsx", cleared=True)


if __name__ == "__main__":
    render()
