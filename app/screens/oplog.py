"""Operation log (操作日志): who did what and when, filtered, exported to Excel."""

from __future__ import annotations

from datetime import date, timedelta

import streamlit as st

from app import auth
from app.export import XLSX_MIME, Column, xlsx_bytes
from app.i18n import STRINGS, register, t
from app.nav import Screen
from billing import operators, oplog
from billing.errors import BillingError, PermissionDenied
from billing.oplog import LogPage
from schema.db import unit_of_work
from voltpay.settings import get_settings

SCREEN = Screen(module="oplog", url_path="operation-log", title_key="oplog.nav",
                permission=operators.MANAGE, icon=":material/history:",
                section="section.settings", order=84)
DEFAULT_DAYS = 7

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "oplog.nav" not in STRINGS["en"]:
    register({
        "en": {
            "oplog.nav": "Operation log",
            "oplog.title": "Operation log",
            "oplog.denied": "You are not allowed to read the operation log. "
            "Ask an administrator for the operators permission.",
            "oplog.start": "From",
            "oplog.end": "To",
            "oplog.actor": "Operator",
            "oplog.everyone": "Everyone",
            "oplog.action": "Action starts with",
            "oplog.action_placeholder": "e.g. login, sale, operator.",
            "oplog.target": "Target contains",
            "oplog.target_placeholder": "user name, account, meter…",
            "oplog.submit": "Search",
            "oplog.col.at": "Time ({tz})",
            "oplog.col.actor": "Operator",
            "oplog.col.action": "Action",
            "oplog.col.target": "Target",
            "oplog.col.detail": "Details",
            "oplog.count": "{count} entries, newest first.",
            "oplog.more": "Only the newest {count} entries are shown and exported. "
            "Narrow the dates or filters to see older ones.",
            "oplog.empty": "No entries match. Widen the date range or clear the filters.",
            "oplog.export": "Export to Excel",
        },
        "zh": {
            "oplog.nav": "操作日志",
            "oplog.title": "操作日志",
            "oplog.denied": "您没有查看操作日志的权限，请联系管理员开通操作员管理权限。",
            "oplog.start": "开始日期",
            "oplog.end": "结束日期",
            "oplog.actor": "操作员",
            "oplog.everyone": "全部",
            "oplog.action": "操作类型开头",
            "oplog.action_placeholder": "例如 login、sale、operator.",
            "oplog.target": "对象包含",
            "oplog.target_placeholder": "用户名、账户、电表…",
            "oplog.submit": "查询",
            "oplog.col.at": "时间 ({tz})",
            "oplog.col.actor": "操作员",
            "oplog.col.action": "操作",
            "oplog.col.target": "对象",
            "oplog.col.detail": "详情",
            "oplog.count": "共 {count} 条，最新的在前。",
            "oplog.more": "仅显示并导出最新的 {count} 条，请缩小日期范围或筛选条件查看更早的记录。",
            "oplog.empty": "没有符合条件的记录。请扩大日期范围或清除筛选条件。",
            "oplog.export": "导出 Excel",
        },
    })


def render() -> None:
    st.title(t("oplog.title"))
    settings = get_settings()
    # The services refuse anyone without the operators permission; the page says so.
    try:
        with unit_of_work(settings.database_url) as session:
            actors = oplog.actors(session, operator=auth.current_operator(session))
    except PermissionDenied:
        st.error(t("oplog.denied"))
        return
    today = auth.utcnow().astimezone(settings.tz).date()
    with st.form("oplog_filters"):
        start, end, actor = st.columns(3)
        start_on = start.date_input(t("oplog.start"), today - timedelta(days=DEFAULT_DAYS - 1),
                                    key="oplog_start")
        end_on = end.date_input(t("oplog.end"), today, key="oplog_end")
        who = actor.selectbox(t("oplog.actor"), actors, index=None,
                              placeholder=t("oplog.everyone"), key="oplog_actor")
        action, target = st.columns(2)
        action_prefix = action.text_input(t("oplog.action"), key="oplog_action",
                                          placeholder=t("oplog.action_placeholder"))
        target_text = target.text_input(t("oplog.target"), key="oplog_target",
                                        placeholder=t("oplog.target_placeholder"))
        st.form_submit_button(t("oplog.submit"), type="primary", key="oplog_submit")
    try:
        with unit_of_work(settings.database_url) as session:
            page = oplog.search(
                session, operator=auth.current_operator(session), tz=settings.tz,
                start_on=_day(start_on), end_on=_day(end_on), actor=who,
                action_prefix=action_prefix, target_text=target_text,
            )
    except BillingError as exc:
        st.error(str(exc))
        return
    _table(page)


def _day(value: object) -> date | None:
    return value if isinstance(value, date) else None


def _table(page: LogPage) -> None:
    if not page.rows:
        st.info(t("oplog.empty"))
        return
    tz = get_settings().tz
    data: list[dict[str, object]] = [
        {
            "at": row.at.astimezone(tz).replace(tzinfo=None),
            "actor": row.actor,
            "action": row.action,
            "target": row.target,
            "detail": row.detail,
        }
        for row in page.rows
    ]
    if page.more:
        st.warning(t("oplog.more", count=len(page.rows)))
    else:
        st.caption(t("oplog.count", count=len(page.rows)))
    header = {
        "at": t("oplog.col.at", tz=tz.key),
        "actor": t("oplog.col.actor"),
        "action": t("oplog.col.action"),
        "target": t("oplog.col.target"),
        "detail": t("oplog.col.detail"),
    }
    st.dataframe(
        data, key="oplog_table", hide_index=True,
        column_config={
            "at": st.column_config.DatetimeColumn(header["at"], format="YYYY-MM-DD HH:mm:ss"),
            "actor": st.column_config.TextColumn(header["actor"]),
            "action": st.column_config.TextColumn(header["action"]),
            "target": st.column_config.TextColumn(header["target"]),
            "detail": st.column_config.TextColumn(header["detail"], width="large"),
        },
    )
    columns = [Column("at", header["at"]), Column("actor", header["actor"]),
               Column("action", header["action"]), Column("target", header["target"]),
               Column("detail", header["detail"], width=60)]
    sheet = t("oplog.title")
    # Drawn only when clicked (on another thread, where nothing may touch the session).
    st.download_button(
        t("oplog.export"), data=lambda: xlsx_bytes(data, columns, sheet=sheet),
        file_name="operation-log.xlsx", mime=XLSX_MIME, key="oplog_export",
        icon=":material/download:", on_click="ignore",
    )


if __name__ == "__main__":
    render()
