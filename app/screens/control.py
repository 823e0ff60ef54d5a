"""Batch operations (遥控 / 批量操作): every meter coloured by state; select meters, send trip,
close, power-protect, restore prepaid, price or settings dispatch, and watch the commands run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from app import auth
from app.export import MONEY, XLSX_MIME, Column, xlsx_bytes
from app.i18n import STRINGS, register, t
from app.nav import Screen
from billing.control import ALARM_LEVELS
from billing.dispatch import BATCH_KINDS, send_batch
from billing.errors import BillingError
from billing.monitoring import (
    STATES,
    CommandRow,
    GridRow,
    command_progress,
    meter_grid,
    recent_spend,
)
from billing.operators import can
from schema.db import unit_of_work
from voltpay.settings import get_settings

SCREEN = Screen(module="control", url_path="batch-control", title_key="control.nav",
                permission="view", icon=":material/settings_remote:",
                section="section.operate", order=20)

GRID_KEY = "control_grid"
# Ids of the commands this browser session sent, newest batch first, for the live table.
SENT = "control_sent"
GRID_TTL_S = 10  # selecting rows reruns the page: 10,000 meters are not re-read for each click
SPEND_TTL_S = 300  # the last 7 days' charges, for days left: a week's average moves slowly
COMMANDS_REFRESH_S = 2
TIME_FORMAT = "YYYY-MM-DD HH:mm:ss"
GRID_HEIGHT_PX = 560  # about 15 rows
PREVIEW = 10  # meters named in the send form; the rest are counted
# One colour per state, the same in the legend (badges) and in the grid (the State column).
STATE_COLOURS = {"lost": "violet", "arrears": "red", "alarm2": "orange", "alarm1": "yellow",
                 "opened": "green", "not_opened": "gray"}
COMMAND_COLOURS = {"queued": "gray", "sent": "blue", "confirmed": "green", "failed": "red",
                   "expired": "orange"}
COMMAND_STATES = tuple(COMMAND_COLOURS)

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "control.nav" not in STRINGS["en"]:
    register({
        "en": {
            "control.nav": "Batch control",
            "control.title": "Batch operations",
            "control.empty": "No meters yet — add meters in settings, or run `make run` to seed "
            "the demo site.",
            "control.state.lost": "Lost contact",
            "control.state.arrears": "Arrears",
            "control.state.alarm2": "Alarm 2",
            "control.state.alarm1": "Alarm 1",
            "control.state.opened": "Opened",
            "control.state.not_opened": "Not opened",
            "control.level.normal": "Normal",
            "control.level.alarm1": "Alarm 1",
            "control.level.alarm2": "Alarm 2",
            "control.level.arrears": "Arrears",
            "control.legend": "States: {badges}",
            "control.filter.building": "Building",
            "control.filter.floor": "Floor",
            "control.filter.state": "State",
            "control.filter.all": "All",
            "control.filter.search": "Search",
            "control.filter.search_placeholder": "Unit, meter, account or tenant",
            "control.shown": "{shown} of {total} meters shown · {selected} selected · "
            "updated {time}",
            "control.no_match": "No meter matches these filters — clear a filter to see more.",
            "control.refresh": "Refresh",
            "control.col.state": "State",
            "control.col.gateway": "Gateway",
            "control.col.days_left": "Days left",
            "control.col.runs_out": "Runs out on",
            "control.col.protect": "Power-protect",
            "control.col.alarm_level": "Alarm level",
            "control.col.lost_since": "Contact lost since ({tz})",
            "control.protected": "on",
            "control.export": "Export to Excel",
            "control.send_title": "Send a command",
            "control.select_hint": "Tick meters in the table, or apply to every meter shown.",
            "control.all_shown": "All {count} meters shown",
            "control.selected": "{count} meter(s): {meters}",
            "control.selected_more": "{count} meter(s): {meters} and {more} more",
            "control.kind": "Operation",
            "control.kind.trip": "Trip — cut the supply (拉闸)",
            "control.kind.close": "Close — restore the supply (合闸)",
            "control.kind.protect_on": "Power-protect on — keep supply in arrears (保电)",
            "control.kind.protect_off": "Restore prepaid mode — power-protect off (恢复预付费)",
            "control.kind.price": "Price dispatch (电价下发)",
            "control.kind.settings": "Settings dispatch — alarm and overload thresholds (设置下发)",
            "control.reason": "Reason (kept in the operation log)",
            "control.send": "Send",
            "control.view_only": "Sending commands needs the control permission — ask an "
            "administrator.",
            "control.choose_meters": "Select meters in the table first.",
            "control.queued": "{count} command(s) queued. Follow them below.",
            "control.none_queued": "No command was queued.",
            "control.skipped": "Skipped: {reasons}",
            "control.commands_title": "Commands sent",
            "control.commands_caption": "Refreshes every {seconds} s: queued → sent → confirmed, "
            "failed or expired.",
            "control.commands_clear": "Clear the list",
            "control.commands_export": "Export commands to Excel",
            "control.cmd.queued": "queued",
            "control.cmd.sent": "sent",
            "control.cmd.confirmed": "confirmed",
            "control.cmd.failed": "failed",
            "control.cmd.expired": "expired",
            "control.col.command": "Command",
            "control.col.kind": "Operation",
            "control.col.command_state": "State",
            "control.col.attempts": "Attempts",
            "control.col.created": "Queued at ({tz})",
            "control.col.completed": "Completed at ({tz})",
            "control.col.result": "Result",
            "control.op.trip": "Trip",
            "control.op.close": "Close",
            "control.op.protect_on": "Power-protect on",
            "control.op.protect_off": "Restore prepaid",
            "control.op.price": "Price dispatch",
            "control.op.settings": "Settings dispatch",
        },
        "zh": {
            "control.nav": "批量操作",
            "control.title": "批量操作",
            "control.empty": "还没有电表——请在系统设置中添加电表，或运行 `make run` 生成演示商场。",
            "control.state.lost": "失联",
            "control.state.arrears": "欠费",
            "control.state.alarm2": "二级预警",
            "control.state.alarm1": "一级预警",
            "control.state.opened": "已开户",
            "control.state.not_opened": "未开户",
            "control.level.normal": "正常",
            "control.level.alarm1": "一级预警",
            "control.level.alarm2": "二级预警",
            "control.level.arrears": "欠费",
            "control.legend": "状态：{badges}",
            "control.filter.building": "楼栋",
            "control.filter.floor": "楼层",
            "control.filter.state": "状态",
            "control.filter.all": "全部",
            "control.filter.search": "搜索",
            "control.filter.search_placeholder": "户号、电表、账户或租户",
            "control.shown": "显示 {shown}/{total} 块电表 · 已选 {selected} 块 · 更新于 {time}",
            "control.no_match": "没有符合筛选条件的电表——清除筛选条件以查看更多。",
            "control.refresh": "刷新",
            "control.col.state": "状态",
            "control.col.gateway": "通讯管理机",
            "control.col.days_left": "可用天数",
            "control.col.runs_out": "预计用完日期",
            "control.col.protect": "保电",
            "control.col.alarm_level": "预警级别",
            "control.col.lost_since": "失联时间 ({tz})",
            "control.protected": "保电中",
            "control.export": "导出 Excel",
            "control.send_title": "下发指令",
            "control.select_hint": "在表格中勾选电表，或应用于当前显示的全部电表。",
            "control.all_shown": "当前显示的全部 {count} 块电表",
            "control.selected": "{count} 块电表：{meters}",
            "control.selected_more": "{count} 块电表：{meters} 等另外 {more} 块",
            "control.kind": "操作",
            "control.kind.trip": "拉闸——切断供电",
            "control.kind.close": "合闸——恢复供电",
            "control.kind.protect_on": "保电——欠费时保持供电",
            "control.kind.protect_off": "恢复预付费——取消保电",
            "control.kind.price": "电价下发",
            "control.kind.settings": "设置下发——预警与过载阈值",
            "control.reason": "原因（记入操作日志）",
            "control.send": "下发",
            "control.view_only": "下发指令需要遥控权限——请联系管理员。",
            "control.choose_meters": "请先在表格中选择电表。",
            "control.queued": "已排队 {count} 条指令，进度见下方。",
            "control.none_queued": "没有排队任何指令。",
            "control.skipped": "已跳过：{reasons}",
            "control.commands_title": "已下发的指令",
            "control.commands_caption": "每 {seconds} 秒刷新：排队中 → 已发送 → "
            "已确认、失败或已过期。",
            "control.commands_clear": "清空列表",
            "control.commands_export": "导出指令 Excel",
            "control.cmd.queued": "排队中",
            "control.cmd.sent": "已发送",
            "control.cmd.confirmed": "已确认",
            "control.cmd.failed": "失败",
            "control.cmd.expired": "已过期",
            "control.col.command": "指令编号",
            "control.col.kind": "操作",
            "control.col.command_state": "状态",
            "control.col.attempts": "尝试次数",
            "control.col.created": "下发时间 ({tz})",
            "control.col.completed": "完成时间 ({tz})",
            "control.col.result": "结果",
            "control.op.trip": "拉闸",
            "control.op.close": "合闸",
            "control.op.protect_on": "保电",
            "control.op.protect_off": "恢复预付费",
            "control.op.price": "电价下发",
            "control.op.settings": "设置下发",
        },
    })


def render() -> None:
    st.title(t("control.title"))
    settings = get_settings()
    with unit_of_work(settings.database_url) as session:
        operator = auth.current_operator(session)
        allowed, may_control = can(operator, "view"), can(operator, "control")
    if not allowed:
        st.error(t("denied.view"))
        return
    grid, read_at = _grid(settings.database_url)
    if not grid:
        st.info(t("control.empty"))
        return
    _legend(grid)
    shown = _filter(grid)
    selected = _table(shown, total=len(grid), read_at=read_at)
    _send_form(shown, selected, may_control)
    if st.session_state.get(SENT):
        commands_panel()


@st.cache_data(ttl=SPEND_TTL_S, show_spinner=False, max_entries=4)
def _spend(database_url: str) -> dict[int, tuple[Decimal | None, datetime]]:
    with unit_of_work(database_url) as session:
        return recent_spend(session, auth.utcnow())


@st.cache_data(ttl=GRID_TTL_S, show_spinner=False, max_entries=4)
def _grid(database_url: str) -> tuple[list[GridRow], datetime]:
    settings = get_settings()
    now = auth.utcnow()
    spend = _spend(database_url)
    with unit_of_work(database_url) as session:
        return meter_grid(session, now, settings.tz, spend=spend), now


def _refresh() -> None:
    _grid.clear()


def state_label(state: str) -> str:
    return t(f"control.state.{state}")


@dataclass(frozen=True)
class Labels:
    """The grid's words in the operator's language, looked up once per run, not once per row
    (10,000 meters), and usable where there is no session (the export's thread)."""

    state: dict[str, str]
    relay: dict[str, str]
    level: dict[str, str]
    protected: str

    @classmethod
    def now(cls) -> Labels:
        return cls(
            state={state: state_label(state) for state in STATES},
            relay={relay: t(f"relay.{relay}") for relay in ("closed", "open", "unknown")},
            level={level: t(f"control.level.{level}") for level in ALARM_LEVELS},
            protected=t("control.protected"),
        )

    def relay_of(self, relay: str) -> str:
        return self.relay.get(relay, self.relay["unknown"])


def _local(at: datetime | None, tz: ZoneInfo) -> datetime | None:
    """A naive site-local time: what the table and Excel show."""
    return at.astimezone(tz).replace(tzinfo=None) if at else None


def _legend(grid: Sequence[GridRow]) -> None:
    counts = Counter(row.state for row in grid)
    badges = " ".join(
        f":{STATE_COLOURS[state]}-badge[{state_label(state)} · {counts.get(state, 0)}]"
        for state in STATES
    )
    st.markdown(t("control.legend", badges=badges))


def _clear_selection() -> None:
    # Row positions change with the filters: a selection made before would point elsewhere.
    st.session_state[GRID_KEY] = {"selection": {"rows": [], "columns": [], "cells": []}}


def _filter(grid: Sequence[GridRow]) -> list[GridRow]:
    buildings = {
        row.building_id: row.building or "" for row in grid if row.building_id is not None
    }
    floors = {
        row.floor_id: f"{row.building} · {row.floor}" for row in grid if row.floor_id is not None
    }
    building_col, floor_col, state_col, search_col = st.columns([2, 2, 2, 3])
    chosen_buildings = building_col.multiselect(
        t("control.filter.building"), list(buildings), format_func=buildings.__getitem__,
        placeholder=t("control.filter.all"), key="control_building", on_change=_clear_selection,
    )
    chosen_floors = floor_col.multiselect(
        t("control.filter.floor"), list(floors), format_func=floors.__getitem__,
        placeholder=t("control.filter.all"), key="control_floor", on_change=_clear_selection,
    )
    chosen_states = state_col.multiselect(
        t("control.filter.state"), list(STATES), format_func=state_label,
        placeholder=t("control.filter.all"), key="control_state", on_change=_clear_selection,
    )
    search = search_col.text_input(
        t("control.filter.search"), placeholder=t("control.filter.search_placeholder"),
        key="control_search", on_change=_clear_selection,
    ).strip().casefold()
    return [
        row
        for row in grid
        if (not chosen_buildings or row.building_id in chosen_buildings)
        and (not chosen_floors or row.floor_id in chosen_floors)
        and (not chosen_states or row.state in chosen_states)
        and (not search or any(
            search in (value or "").casefold()
            for value in (row.unit, row.meter, row.account, row.tenant)
        ))
    ]


def _headers(tz: ZoneInfo, currency: str) -> dict[str, str]:
    return {
        "state": t("control.col.state"),
        "unit": t("col.unit"),
        "building": t("col.building"),
        "floor": t("col.floor"),
        "meter": t("col.meter"),
        "gateway": t("control.col.gateway"),
        "account": t("col.account"),
        "tenant": t("col.tenant"),
        "balance": f"{t('col.balance')} ({currency})",
        "days_left": t("control.col.days_left"),
        "runs_out_on": t("control.col.runs_out"),
        "relay": t("col.relay"),
        "protect": t("control.col.protect"),
        "alarm_level": t("control.col.alarm_level"),
        "last_reading": t("col.last_reading", tz=tz.key),
        "lost_since": t("control.col.lost_since", tz=tz.key),
    }


def _records(rows: Sequence[GridRow], tz: ZoneInfo, labels: Labels) -> list[dict[str, Any]]:
    """The grid as export rows: labels in the operator's language, times site-local."""
    return [
        {
            "state": labels.state[row.state],
            "unit": row.unit,
            "building": row.building,
            "floor": row.floor,
            "meter": row.meter,
            "gateway": row.gateway,
            "account": row.account,
            "tenant": row.tenant,
            "balance": row.balance,
            "days_left": row.days_left,
            "runs_out_on": row.runs_out_on,
            "relay": labels.relay_of(row.relay),
            "protect": labels.protected if row.power_protect else "",
            "alarm_level": labels.level.get(row.alarm_level) if row.alarm_level else None,
            "last_reading": _local(row.last_reading_at, tz),
            "lost_since": _local(row.lost_since, tz),
        }
        for row in rows
    ]


def _frame(rows: Sequence[GridRow], tz: ZoneInfo, labels: Labels) -> dict[str, list[Any]]:
    """The grid column by column, as st.dataframe takes it fastest."""
    return {
        # One coloured tag per row: a multiselect column colours a cell without a Styler,
        # which takes seconds for 10,000 rows.
        "state": [[row.state] for row in rows],
        "unit": [row.unit for row in rows],
        "building": [row.building for row in rows],
        "floor": [row.floor for row in rows],
        "meter": [row.meter for row in rows],
        "gateway": [row.gateway for row in rows],
        "account": [row.account for row in rows],
        "tenant": [row.tenant for row in rows],
        "balance": [None if row.balance is None else float(row.balance) for row in rows],
        "days_left": [None if row.days_left is None else float(row.days_left) for row in rows],
        "runs_out_on": [row.runs_out_on for row in rows],
        "relay": [labels.relay_of(row.relay) for row in rows],
        "protect": [labels.protected if row.power_protect else "" for row in rows],
        "alarm_level": [
            labels.level.get(row.alarm_level) if row.alarm_level else None for row in rows
        ],
        "last_reading": [_local(row.last_reading_at, tz) for row in rows],
        "lost_since": [_local(row.lost_since, tz) for row in rows],
    }


def _table(shown: list[GridRow], *, total: int, read_at: datetime) -> list[GridRow]:
    """The grid, with the rows the operator selected (none when nothing is shown)."""
    settings = get_settings()
    tz, currency = settings.tz, settings.currency
    header = _headers(tz, currency)
    if not shown:
        st.info(t("control.no_match"))
        return []
    labels = Labels.now()
    column = st.column_config
    event = st.dataframe(
        _frame(shown, tz, labels),
        key=GRID_KEY,
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        placeholder="",
        height=GRID_HEIGHT_PX,
        column_config={
            "state": column.MultiselectColumn(
                header["state"], options=list(STATES), format_func=labels.state.__getitem__,
                color=[STATE_COLOURS[state] for state in STATES], pinned=True,
            ),
            "unit": column.TextColumn(header["unit"], pinned=True),
            "building": column.TextColumn(header["building"]),
            "floor": column.TextColumn(header["floor"]),
            "meter": column.TextColumn(header["meter"]),
            "gateway": column.TextColumn(header["gateway"]),
            "account": column.TextColumn(header["account"]),
            "tenant": column.TextColumn(header["tenant"]),
            "balance": column.NumberColumn(header["balance"], format="%,.2f"),
            "days_left": column.NumberColumn(header["days_left"], format="%.1f"),
            "runs_out_on": column.DateColumn(header["runs_out_on"], format="YYYY-MM-DD"),
            "relay": column.TextColumn(header["relay"]),
            "protect": column.TextColumn(header["protect"]),
            "alarm_level": column.TextColumn(header["alarm_level"]),
            "last_reading": column.DatetimeColumn(header["last_reading"], format=TIME_FORMAT),
            "lost_since": column.DatetimeColumn(header["lost_since"], format=TIME_FORMAT),
        },
    )
    selected = [shown[i] for i in event.selection.rows if i < len(shown)]
    info, refresh, export = st.columns([6, 1, 2], vertical_alignment="center")
    info.caption(t("control.shown", shown=len(shown), total=total, selected=len(selected),
                   time=read_at.astimezone(tz).strftime("%H:%M:%S")))
    refresh.button(t("control.refresh"), key="control_refresh", on_click=_refresh,
                   icon=":material/refresh:")
    columns = [
        Column(key, title, MONEY if key == "balance" else "0.0" if key == "days_left" else None)
        for key, title in header.items()
    ]
    sheet = t("control.title")
    # Built only when clicked (on another thread, where nothing may touch the session).
    export.download_button(
        t("control.export"),
        data=lambda: xlsx_bytes(_records(shown, tz, labels), columns, sheet=sheet),
        file_name=f"meters-{read_at.astimezone(tz):%Y%m%d-%H%M}.xlsx", mime=XLSX_MIME,
        key="control_export", icon=":material/download:", on_click="ignore",
    )
    return selected


def _kind_label(kind: str) -> str:
    return t(f"control.kind.{kind}")


def _send_form(shown: list[GridRow], selected: list[GridRow], may_control: bool) -> None:
    st.subheader(t("control.send_title"))
    if not may_control:
        st.info(t("control.view_only"))
    # Cleared after each send, so "all shown" or a trip is never sent again by mistake.
    with st.form("control_send_form", clear_on_submit=True):
        all_shown = st.checkbox(t("control.all_shown", count=len(shown)), key="control_all_shown")
        if selected:
            names = [row.meter for row in selected[:PREVIEW]]
            more = len(selected) - len(names)
            st.caption(
                t("control.selected_more", count=len(selected), meters=", ".join(names),
                  more=more) if more
                else t("control.selected", count=len(selected), meters=", ".join(names))
            )
        else:
            st.caption(t("control.select_hint"))
        kind = st.selectbox(t("control.kind"), BATCH_KINDS, format_func=_kind_label,
                            key="control_kind")
        reason = st.text_input(t("control.reason"), max_chars=200, key="control_reason")
        submitted = st.form_submit_button(t("control.send"), type="primary", key="control_send")
    if not submitted:
        return
    targets = shown if all_shown else selected
    if not targets:
        st.error(t("control.choose_meters"))
        return
    settings = get_settings()
    try:
        with unit_of_work(settings.database_url) as session:
            result = send_batch(
                session, [row.meter_id for row in targets], kind,
                operator=auth.current_operator(session), policy=auth.policy(session),
                now=auth.utcnow(), reason=reason,
            )
            sent = [command.id for command in result.commands]
    except BillingError as exc:
        st.error(str(exc))
        return
    _grid.clear()  # power-protect changed at once; relays follow as the collector confirms
    if sent:
        st.session_state[SENT] = sent + list(st.session_state.get(SENT, []))
        st.success(t("control.queued", count=len(sent)))
    else:
        st.warning(t("control.none_queued"))
    if result.skipped:
        st.warning(t("control.skipped", reasons="; ".join(result.skipped)))


def _forget_sent() -> None:
    st.session_state.pop(SENT, None)


@st.fragment(run_every=COMMANDS_REFRESH_S)
def commands_panel() -> None:
    """The commands this session sent, read afresh every few seconds."""
    ids = st.session_state.get(SENT, [])
    if not ids:
        return
    settings = get_settings()
    tz = settings.tz
    with unit_of_work(settings.database_url) as session:
        rows = command_progress(session, ids)
    st.subheader(t("control.commands_title"))
    counts = Counter(row.state for row in rows)
    badges = " ".join(
        f":{COMMAND_COLOURS[state]}-badge[{t(f'control.cmd.{state}')} · {counts[state]}]"
        for state in COMMAND_STATES if counts[state]
    )
    st.markdown(badges)
    st.caption(t("control.commands_caption", seconds=COMMANDS_REFRESH_S))
    header = {
        "command": t("control.col.command"),
        "meter": t("col.meter"),
        "unit": t("col.unit"),
        "kind": t("control.col.kind"),
        "state": t("control.col.command_state"),
        "attempts": t("control.col.attempts"),
        "created": t("control.col.created", tz=tz.key),
        "completed": t("control.col.completed", tz=tz.key),
        "result": t("control.col.result"),
    }
    records = _command_records(rows, tz)
    labels = {state: t(f"control.cmd.{state}") for state in COMMAND_STATES}
    column = st.column_config
    st.dataframe(
        [{**record, "state": [row.state]} for record, row in zip(records, rows, strict=True)],
        key="control_commands",
        hide_index=True,
        placeholder="",
        column_config={
            "command": column.NumberColumn(header["command"], format="%d"),
            "meter": column.TextColumn(header["meter"]),
            "unit": column.TextColumn(header["unit"]),
            "kind": column.TextColumn(header["kind"]),
            "state": column.MultiselectColumn(
                header["state"], options=list(COMMAND_STATES), format_func=labels.__getitem__,
                color=[COMMAND_COLOURS[state] for state in COMMAND_STATES],
            ),
            "attempts": column.NumberColumn(header["attempts"], format="%d"),
            "created": column.DatetimeColumn(header["created"], format=TIME_FORMAT),
            "completed": column.DatetimeColumn(header["completed"], format=TIME_FORMAT),
            "result": column.TextColumn(header["result"], width="large"),
        },
    )
    columns = [Column(key, title) for key, title in header.items()]
    sheet = t("control.commands_title")
    clear, export = st.columns([1, 1])
    clear.button(t("control.commands_clear"), key="control_commands_clear",
                 on_click=_forget_sent)
    export.download_button(
        t("control.commands_export"), data=lambda: xlsx_bytes(records, columns, sheet=sheet),
        file_name="commands.xlsx", mime=XLSX_MIME, key="control_commands_export",
        icon=":material/download:", on_click="ignore",
    )


def _command_records(rows: Sequence[CommandRow], tz: ZoneInfo) -> list[dict[str, Any]]:
    return [
        {
            "command": row.command_id,
            "meter": row.meter,
            "unit": row.unit,
            "kind": t(f"control.op.{row.kind}"),
            "state": t(f"control.cmd.{row.state}"),
            "attempts": row.attempts,
            "created": _local(row.created_at, tz),
            "completed": _local(row.completed_at, tz),
            "result": row.result,
        }
        for row in rows
    ]


if __name__ == "__main__":
    render()
