"""Messages (短信通知): the notification outbox by day, state and kind, each message's tries, and
sending a failed message again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from app import auth
from app.export import XLSX_MIME, Column, xlsx_bytes
from app.i18n import LANGUAGES, STRINGS, register, t
from app.nav import Screen
from billing.errors import BillingError
from billing.messages import send_again
from billing.operators import can
from notify.config import configured_channels
from notify.outbox import KINDS
from notify.sender import attempts_of
from notify.views import STATES, MessageRow, failed_count, messages
from schema.db import unit_of_work
from voltpay.settings import Settings, get_settings

SCREEN = Screen(module="messages", url_path="messages", title_key="messages.nav",
                permission="view", icon=":material/sms:", section="section.reports", order=56)
DAYS = 7
TIME_FORMAT = "YYYY-MM-DD HH:mm:ss"
STATE_COLOURS = {"queued": "gray", "sending": "blue", "sent": "green", "failed": "red",
                 "cancelled": "orange"}
CHANNELS = ("modem", "http_sms", "email", "unknown")
FLASH = "messages_flash"  # what the last "send again" did, shown once

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "messages.nav" not in STRINGS["en"]:
    register({
        "en": {
            "messages.nav": "Messages",
            "messages.title": "Messages",
            "messages.channels": "Sending through: {channels}.",
            "messages.no_channel": "No channel is configured, so messages wait in the queue and "
            "nothing reaches a phone. Set NOTIFY_MODEM_PORT (a GSM modem), NOTIFY_HTTP_URL (an "
            "SMS service) or NOTIFY_SMTP_HOST (email) as the README's Settings describe, then "
            "restart `voltpay run` or `voltpay notify`.",
            "messages.bad_settings": "The notification settings are wrong: {error}. Correct the "
            "NOTIFY_* settings (README, Settings); until then nothing is sent.",
            "messages.channel.modem": "GSM modem",
            "messages.channel.http_sms": "HTTP SMS service",
            "messages.channel.email": "email (SMTP)",
            "messages.channel.unknown": "unknown (the sender stopped mid-send)",
            "messages.kind.alarm1": "Alarm 1 (low balance)",
            "messages.kind.alarm2": "Alarm 2 (very low balance)",
            "messages.kind.arrears": "Arrears",
            "messages.kind.trip": "Switched off for arrears",
            "messages.kind.recharge": "Recharge confirmation",
            "messages.kind.gateway_lost": "Gateway lost",
            "messages.kind.command_failed": "Command failed",
            "messages.state.queued": "queued",
            "messages.state.sending": "sending",
            "messages.state.sent": "sent",
            "messages.state.failed": "failed",
            "messages.state.cancelled": "cancelled",
            "messages.from": "From",
            "messages.to": "To",
            "messages.states": "States",
            "messages.kinds": "Message kinds",
            "messages.all": "All",
            "messages.failed": "{count} message(s) finally failed — check the number or the "
            "channel, then choose one below to send it again.",
            "messages.caption": "{count} message(s) queued in these days, newest first.",
            "messages.caption_limited": "The newest {shown} of {count} messages queued in these "
            "days; narrow the dates or filters to see the others.",
            "messages.empty": "No message was queued in these days. Tenants with a phone number "
            "are told when their balance crosses a level, when they are switched off and on "
            "every recharge; operators when a gateway is lost or a command fails "
            "(NOTIFY_ALARM_PHONE). Widen the dates or clear the filters.",
            "messages.col.id": "No.",
            "messages.col.created": "Queued at ({tz})",
            "messages.col.recipient": "Recipient",
            "messages.col.kind": "Message",
            "messages.col.language": "Language",
            "messages.col.state": "State",
            "messages.col.attempts": "Attempts",
            "messages.col.next": "Next try at ({tz})",
            "messages.col.sent": "Sent at ({tz})",
            "messages.col.last_error": "Last error",
            "messages.col.text": "Text",
            "messages.export": "Export messages to Excel",
            "messages.detail_title": "Tries of one message",
            "messages.choose": "Message",
            "messages.choose_label": "#{id} · {kind} · {recipient} · {state} · {created}",
            "messages.no_attempts": "Not tried yet.",
            "messages.col.at": "Tried at ({tz})",
            "messages.col.channel": "Channel",
            "messages.col.ok": "Delivered",
            "messages.col.reply": "Reply or error",
            "messages.export_attempts": "Export the tries to Excel",
            "messages.send_again": "Send again",
            "messages.send_again_help": "Queues the message again, due now, to the account's "
            "phone number as it is now.",
            "messages.send_again_view_only": "Sending a message again needs the control "
            "permission — ask an administrator.",
            "messages.sent_again": "Message #{id} is queued again for {recipient}; the sender "
            "tries it within seconds.",
        },
        "zh": {
            "messages.nav": "短信通知",
            "messages.title": "短信通知",
            "messages.channels": "发送通道：{channels}。",
            "messages.no_channel": "未配置发送通道，消息只在队列中等待，不会发到手机。请按 README "
            "“Settings”一节设置 NOTIFY_MODEM_PORT（GSM 短信猫）、NOTIFY_HTTP_URL（短信平台）或 "
            "NOTIFY_SMTP_HOST（邮件），然后重启 `voltpay run` 或 `voltpay notify`。",
            "messages.bad_settings": "通知设置有误：{error}。请修改 NOTIFY_* 设置（见 README "
            "“Settings”）；改正之前不会发送任何消息。",
            "messages.channel.modem": "GSM 短信猫",
            "messages.channel.http_sms": "HTTP 短信平台",
            "messages.channel.email": "邮件 (SMTP)",
            "messages.channel.unknown": "未知（发送进程中途停止）",
            "messages.kind.alarm1": "一级预警（余额不足）",
            "messages.kind.alarm2": "二级预警（余额严重不足）",
            "messages.kind.arrears": "欠费",
            "messages.kind.trip": "欠费停电",
            "messages.kind.recharge": "充值确认",
            "messages.kind.gateway_lost": "通讯管理机失联",
            "messages.kind.command_failed": "命令失败",
            "messages.state.queued": "排队中",
            "messages.state.sending": "发送中",
            "messages.state.sent": "已发送",
            "messages.state.failed": "失败",
            "messages.state.cancelled": "已取消",
            "messages.from": "开始日期",
            "messages.to": "结束日期",
            "messages.states": "状态",
            "messages.kinds": "消息类型",
            "messages.all": "全部",
            "messages.failed": "{count} 条消息最终发送失败——请检查号码或发送通道，然后在下方选择"
            "消息重新发送。",
            "messages.caption": "这段时间共 {count} 条消息，最新的在前。",
            "messages.caption_limited": "这段时间共 {count} 条消息，显示最新的 {shown} 条；"
            "缩小日期范围或筛选条件以查看其余消息。",
            "messages.empty": "这段时间没有消息。登记了手机号的租户在余额越过预警级别、欠费停电和"
            "每次充值时会收到短信；通讯管理机失联或命令失败时通知值班号码（NOTIFY_ALARM_PHONE）。"
            "请扩大日期范围或清除筛选条件。",
            "messages.col.id": "编号",
            "messages.col.created": "生成时间 ({tz})",
            "messages.col.recipient": "接收人",
            "messages.col.kind": "消息",
            "messages.col.language": "语言",
            "messages.col.state": "状态",
            "messages.col.attempts": "尝试次数",
            "messages.col.next": "下次尝试时间 ({tz})",
            "messages.col.sent": "发送时间 ({tz})",
            "messages.col.last_error": "最近错误",
            "messages.col.text": "内容",
            "messages.export": "导出消息 Excel",
            "messages.detail_title": "单条消息的发送记录",
            "messages.choose": "消息",
            "messages.choose_label": "#{id} · {kind} · {recipient} · {state} · {created}",
            "messages.no_attempts": "尚未尝试发送。",
            "messages.col.at": "尝试时间 ({tz})",
            "messages.col.channel": "通道",
            "messages.col.ok": "已送达",
            "messages.col.reply": "回复或错误",
            "messages.export_attempts": "导出发送记录 Excel",
            "messages.send_again": "重新发送",
            "messages.send_again_help": "将消息重新排队，立即发送到账户当前的手机号。",
            "messages.send_again_view_only": "重新发送需要遥控权限——请联系管理员。",
            "messages.sent_again": "消息 #{id} 已重新排队，发送到 {recipient}；发送进程将在几秒内"
            "尝试。",
        },
    })


def render() -> None:
    st.title(t("messages.title"))
    settings = get_settings()
    with unit_of_work(settings.database_url) as session:
        operator = auth.current_operator(session)
        allowed, may_control = can(operator, "view"), can(operator, "control")
    if not allowed:
        st.error(t("denied.view"))
        return
    _channels(settings)
    tz = settings.tz
    today = auth.utcnow().astimezone(tz).date()
    start_col, end_col, state_col, kind_col = st.columns([1, 1, 2, 2])
    start_on = start_col.date_input(t("messages.from"), today - timedelta(days=DAYS - 1),
                                    key="messages_from")
    end_on = end_col.date_input(t("messages.to"), today, key="messages_to")
    states = state_col.multiselect(t("messages.states"), list(STATES), format_func=state_label,
                                   placeholder=t("messages.all"), key="messages_states")
    kinds = kind_col.multiselect(t("messages.kinds"), list(KINDS), format_func=kind_label,
                                 placeholder=t("messages.all"), key="messages_kinds")
    if not isinstance(start_on, date) or not isinstance(end_on, date):
        return
    try:
        with unit_of_work(settings.database_url) as session:
            page = messages(session, start_on, end_on, tz, states=states, kinds=kinds)
            failed = failed_count(session, start_on, end_on, tz, kinds)
    except BillingError as exc:
        st.error(str(exc))
        return
    if failed:
        st.error(t("messages.failed", count=failed), icon=":material/sms_failed:")
    if not page.rows:
        st.info(t("messages.empty"))
        return
    if page.total > len(page.rows):
        st.caption(t("messages.caption_limited", shown=len(page.rows), count=page.total))
    else:
        st.caption(t("messages.caption", count=page.total))
    _table(page.rows, tz, file_name=f"messages-{start_on:%Y%m%d}-{end_on:%Y%m%d}.xlsx")
    _detail(page.rows, tz, may_control)


def _channels(settings: Settings) -> None:
    """Which channels the sender delivers through, or what to set when there is none."""
    try:
        channels = configured_channels(settings)
    except ValueError as exc:
        st.error(t("messages.bad_settings", error=exc))
        return
    for channel in channels:
        channel.close()
    if not channels:
        st.warning(t("messages.no_channel"), icon=":material/settings:")
        return
    st.caption(t("messages.channels",
                 channels=", ".join(channel_label(c.name) for c in channels)))


def kind_label(kind: str) -> str:
    return t(f"messages.kind.{kind}") if kind in KINDS else kind


def state_label(state: str) -> str:
    return t(f"messages.state.{state}") if state in STATES else state


def channel_label(channel: str) -> str:
    return t(f"messages.channel.{channel}") if channel in CHANNELS else channel


def _local(at: datetime | None, tz: ZoneInfo) -> datetime | None:
    return at.astimezone(tz).replace(tzinfo=None) if at else None


def _headers(tz: ZoneInfo) -> dict[str, str]:
    return {
        "id": t("messages.col.id"),
        "created": t("messages.col.created", tz=tz.key),
        "recipient": t("messages.col.recipient"),
        "account": t("col.account"),
        "tenant": t("col.tenant"),
        "kind": t("messages.col.kind"),
        "language": t("messages.col.language"),
        "state": t("messages.col.state"),
        "attempts": t("messages.col.attempts"),
        "next": t("messages.col.next", tz=tz.key),
        "sent": t("messages.col.sent", tz=tz.key),
        "last_error": t("messages.col.last_error"),
        "text": t("messages.col.text"),
    }


def _records(rows: Sequence[MessageRow], tz: ZoneInfo) -> list[dict[str, Any]]:
    return [
        {
            "id": row.message_id,
            "created": _local(row.created_at, tz),
            "recipient": row.recipient,
            "account": row.account,
            "tenant": row.tenant,
            "kind": kind_label(row.kind),
            "language": LANGUAGES.get(row.language, row.language),
            "state": state_label(row.state),
            "attempts": row.attempts,
            "next": _local(row.next_attempt_at, tz),
            "sent": _local(row.sent_at, tz),
            "last_error": row.last_error,
            "text": row.text,
        }
        for row in rows
    ]


def _table(rows: Sequence[MessageRow], tz: ZoneInfo, *, file_name: str) -> None:
    header = _headers(tz)
    records = _records(rows, tz)
    # A one-tag multiselect column colours the state (failed in red) without a Styler.
    shown = [{**record, "state": [row.state]} for record, row in zip(records, rows, strict=True)]
    column = st.column_config
    times = {"created", "next", "sent"}
    st.dataframe(
        shown, key="messages_table", hide_index=True, placeholder="",
        column_order=list(header),
        column_config={
            key: column.DatetimeColumn(title, format=TIME_FORMAT) if key in times
            else column.NumberColumn(title, format="%d") if key in {"id", "attempts"}
            else column.MultiselectColumn(
                title, options=list(STATES), format_func=state_label,
                color=[STATE_COLOURS[state] for state in STATES],
            ) if key == "state"
            else column.TextColumn(title, width="large" if key in {"text", "last_error"} else None)
            for key, title in header.items()
        },
    )
    columns = [Column(key, title, width=60 if key in {"text", "last_error"} else None)
               for key, title in header.items()]
    sheet = t("messages.title")
    # Built only when clicked (on another thread, where nothing may touch the session).
    st.download_button(
        t("messages.export"), data=lambda: xlsx_bytes(records, columns, sheet=sheet),
        file_name=file_name, mime=XLSX_MIME, key="messages_export", icon=":material/download:",
        on_click="ignore",
    )


def _send_again(message_id: int) -> None:
    """On click, before the page is drawn again, so the table shows the message queued."""
    settings = get_settings()
    try:
        with unit_of_work(settings.database_url) as session:
            message = send_again(session, message_id, operator=auth.current_operator(session),
                                 now=auth.utcnow())
            recipient = message.recipient
    except BillingError as exc:
        st.session_state[FLASH] = ("error", str(exc))
        return
    st.session_state[FLASH] = ("success", t("messages.sent_again", id=message_id,
                                            recipient=recipient))


def _detail(rows: Sequence[MessageRow], tz: ZoneInfo, may_control: bool) -> None:
    st.subheader(t("messages.detail_title"))
    flash = st.session_state.pop(FLASH, None)
    if flash is not None:
        kind, text = flash
        (st.success if kind == "success" else st.error)(text)
    by_id = {row.message_id: row for row in rows}
    # A message no longer shown (filters changed) is no longer offered: start from the newest
    # failed one, the one an operator most likely came for.
    if st.session_state.get("messages_chosen") not in by_id:
        failed = [row.message_id for row in rows if row.state == "failed"]
        st.session_state["messages_chosen"] = failed[0] if failed else rows[0].message_id
    chosen_id = st.selectbox(
        t("messages.choose"), list(by_id), key="messages_chosen",
        format_func=lambda i: t(
            "messages.choose_label", id=i, kind=kind_label(by_id[i].kind),
            recipient=by_id[i].recipient, state=state_label(by_id[i].state),
            created=by_id[i].created_at.astimezone(tz).strftime("%m-%d %H:%M"),
        ),
    )
    chosen = by_id[chosen_id]
    if chosen.state == "failed":
        if not may_control:
            st.info(t("messages.send_again_view_only"))
        st.button(t("messages.send_again"), key="messages_send_again", type="primary",
                  help=t("messages.send_again_help"), on_click=_send_again,
                  args=(chosen.message_id,), icon=":material/send:")
    settings = get_settings()
    with unit_of_work(settings.database_url) as session:
        attempts = [
            {"at": _local(a.at, tz), "channel": channel_label(a.channel), "ok": a.ok,
             "reply": a.reply}
            for a in attempts_of(session, chosen.message_id)
        ]
    if not attempts:
        st.caption(t("messages.no_attempts"))
        return
    header = {
        "at": t("messages.col.at", tz=tz.key),
        "channel": t("messages.col.channel"),
        "ok": t("messages.col.ok"),
        "reply": t("messages.col.reply"),
    }
    column = st.column_config
    st.dataframe(
        attempts, key="messages_attempts", hide_index=True, placeholder="",
        column_order=list(header),
        column_config={
            "at": column.DatetimeColumn(header["at"], format=TIME_FORMAT),
            "channel": column.TextColumn(header["channel"]),
            "ok": column.CheckboxColumn(header["ok"]),
            "reply": column.TextColumn(header["reply"], width="large"),
        },
    )
    columns = [Column(key, title, width=60 if key == "reply" else None)
               for key, title in header.items()]
    sheet = t("messages.title")
    st.download_button(
        t("messages.export_attempts"), data=lambda: xlsx_bytes(attempts, columns, sheet=sheet),
        file_name=f"message-{chosen.message_id}-tries.xlsx", mime=XLSX_MIME,
        key="messages_attempts_export", icon=":material/download:", on_click="ignore",
    )


if __name__ == "__main__":
    render()
