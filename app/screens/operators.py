"""Operators (操作员管理): list, create, disable / enable, unlock, reset a password, change a role
or the language the dashboard opens in.

The page only draws forms; billing.operators checks the "operators" permission on every call.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy.orm import Session

from app import auth
from app.export import XLSX_MIME, Column, xlsx_bytes
from app.i18n import LANGUAGES, STRINGS, register, role_name, t
from app.nav import Screen
from billing import operators
from billing.errors import BillingError, PermissionDenied
from billing.operators import OperatorRow
from schema.db import unit_of_work
from schema.models import Operator
from voltpay.settings import get_settings

SCREEN = Screen(module="operators", url_path="operator-accounts", title_key="operators.nav",
                permission=operators.MANAGE, icon=":material/manage_accounts:",
                section="section.settings", order=80)
TIME_FORMAT = "%Y-%m-%d %H:%M"
FLASH = "operators_flash"  # the last change's message, shown once after the page reloads
CLEAR = "operators_clear"  # widget keys to empty on the next run, after a change succeeded
NEW_FORM_KEYS = ("operators_new_username", "operators_new_display_name",
                 "operators_new_password")

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "operators.nav" not in STRINGS["en"]:
    register({
        "en": {
            "operators.nav": "Operators",
            "operators.title": "Operators",
            "operators.denied": "You are not allowed to manage operators. "
            "Ask an administrator for the operators permission.",
            "operators.col.username": "User name",
            "operators.col.display_name": "Name",
            "operators.col.role": "Role",
            "operators.col.language": "Language",
            "operators.col.status": "Status",
            "operators.col.last_seen": "Last active ({tz})",
            "operators.col.password": "Password",
            "operators.col.created": "Created ({tz})",
            "operators.status.active": "active",
            "operators.status.disabled": "disabled",
            "operators.status.locked": "locked until {time}",
            "operators.password.temporary": "set by an administrator",
            "operators.password.changed": "changed {time}",
            "operators.export": "Export to Excel",
            "operators.new": "New operator",
            "operators.new.username": "User name",
            "operators.new.display_name": "Name shown (optional)",
            "operators.new.role": "Role",
            "operators.new.password": "Initial password (at least 8 characters)",
            "operators.new.submit": "Create operator",
            "operators.created": "Operator {username} created. Give them the initial password; "
            "they can change it under Change password.",
            "operators.manage": "Manage an operator",
            "operators.target": "Operator",
            "operators.target_placeholder": "Choose an operator",
            "operators.target_label": "{username} · {name} · {role}",
            "operators.role": "Role",
            "operators.role.submit": "Change role",
            "operators.role.changed": "{username} now has the role {role}.",
            "operators.language": "Language the dashboard opens in",
            "operators.language.submit": "Change language",
            "operators.language.changed": "{username} will see the dashboard in {language} "
            "from their next login.",
            "operators.reset": "Temporary password (at least 8 characters)",
            "operators.reset.submit": "Reset password",
            "operators.reset.done": "Password of {username} reset. Give them the temporary "
            "password and ask them to change it.",
            "operators.disable": "Disable",
            "operators.disabled": "{username} is disabled and cannot log in.",
            "operators.enable": "Enable",
            "operators.enabled": "{username} is enabled and can log in again.",
            "operators.unlock": "Unlock",
            "operators.unlocked": "{username} is unlocked.",
            "operators.locked_note": "Locked after {attempts} wrong passwords until {time}.",
        },
        "zh": {
            "operators.nav": "操作员管理",
            "operators.title": "操作员管理",
            "operators.denied": "您没有管理操作员的权限，请联系管理员开通。",
            "operators.col.username": "用户名",
            "operators.col.display_name": "姓名",
            "operators.col.role": "角色",
            "operators.col.language": "语言",
            "operators.col.status": "状态",
            "operators.col.last_seen": "最近活动 ({tz})",
            "operators.col.password": "密码",
            "operators.col.created": "创建时间 ({tz})",
            "operators.status.active": "正常",
            "operators.status.disabled": "已停用",
            "operators.status.locked": "锁定至 {time}",
            "operators.password.temporary": "管理员设置",
            "operators.password.changed": "修改于 {time}",
            "operators.export": "导出 Excel",
            "operators.new": "新增操作员",
            "operators.new.username": "用户名",
            "operators.new.display_name": "显示姓名（可选）",
            "operators.new.role": "角色",
            "operators.new.password": "初始密码（至少 8 位）",
            "operators.new.submit": "创建操作员",
            "operators.created": "操作员 {username} 已创建。请把初始密码交给本人，"
            "本人可在「修改密码」中修改。",
            "operators.manage": "管理操作员",
            "operators.target": "操作员",
            "operators.target_placeholder": "选择操作员",
            "operators.target_label": "{username} · {name} · {role}",
            "operators.role": "角色",
            "operators.role.submit": "修改角色",
            "operators.role.changed": "{username} 的角色已改为 {role}。",
            "operators.language": "登录后界面语言",
            "operators.language.submit": "修改语言",
            "operators.language.changed": "{username} 下次登录后界面语言为 {language}。",
            "operators.reset": "临时密码（至少 8 位）",
            "operators.reset.submit": "重置密码",
            "operators.reset.done": "{username} 的密码已重置。请把临时密码交给本人并提醒其修改。",
            "operators.disable": "停用",
            "operators.disabled": "{username} 已停用，无法登录。",
            "operators.enable": "启用",
            "operators.enabled": "{username} 已启用，可以重新登录。",
            "operators.unlock": "解锁",
            "operators.unlocked": "{username} 已解锁。",
            "operators.locked_note": "连续 {attempts} 次密码错误，锁定至 {time}。",
        },
    })


def render() -> None:
    st.title(t("operators.title"))
    settings = get_settings()
    # The services refuse anyone without the operators permission; the page says so.
    try:
        with unit_of_work(settings.database_url) as session:
            me = auth.current_operator(session)
            rows = operators.list_operators(session, operator=me, now=auth.utcnow())
            roles = [r.name for r in operators.list_roles(session, operator=me)]
    except PermissionDenied:
        st.error(t("operators.denied"))
        return
    for key in st.session_state.pop(CLEAR, ()):
        st.session_state.pop(key, None)
    flash = st.session_state.pop(FLASH, None)
    if flash:
        st.success(flash)
    _table(rows, settings.tz)
    left, right = st.columns(2, gap="large")
    with left:
        _new_operator_form(roles)
    with right:
        _manage(rows, roles, settings.tz)


def _local(at: datetime | None, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime(TIME_FORMAT) if at else ""


def _status(row: OperatorRow, tz: ZoneInfo) -> str:
    if not row.is_active:
        return t("operators.status.disabled")
    if row.locked_until is not None:
        return t("operators.status.locked", time=_local(row.locked_until, tz))
    return t("operators.status.active")


def _table(rows: list[OperatorRow], tz: ZoneInfo) -> None:
    data: list[dict[str, object]] = [
        {
            "username": row.username,
            "display_name": row.display_name,
            "role": role_name(row.role),
            "language": LANGUAGES.get(row.language, row.language),
            "status": _status(row, tz),
            "last_seen": _local(row.last_seen_at, tz),
            "password": t("operators.password.changed", time=_local(row.password_changed_at, tz))
            if row.password_changed_at else t("operators.password.temporary"),
            "created": _local(row.created_at, tz),
        }
        for row in rows
    ]
    columns = [
        Column("username", t("operators.col.username")),
        Column("display_name", t("operators.col.display_name")),
        Column("role", t("operators.col.role")),
        Column("language", t("operators.col.language")),
        Column("status", t("operators.col.status")),
        Column("last_seen", t("operators.col.last_seen", tz=tz.key)),
        Column("password", t("operators.col.password")),
        Column("created", t("operators.col.created", tz=tz.key)),
    ]
    st.dataframe(
        data, key="operators_table", hide_index=True,
        column_config={c.key: st.column_config.TextColumn(c.header) for c in columns},
    )
    st.download_button(
        t("operators.export"), data=xlsx_bytes(data, columns, sheet=t("operators.title")),
        file_name="operators.xlsx", mime=XLSX_MIME, key="operators_export",
        icon=":material/download:",
    )


def _apply(change: Callable[[Session, Operator | None], str], clear: tuple[str, ...] = ()) -> None:
    """Run one change in its own transaction; show its refusal, or reload with its message
    (and the widgets in `clear` emptied)."""
    try:
        with unit_of_work(auth.database_url()) as session:
            message = change(session, auth.current_operator(session))
    except BillingError as exc:
        st.error(str(exc))
        return
    st.session_state[FLASH] = message
    st.session_state[CLEAR] = list(clear)
    st.rerun()


def _new_operator_form(roles: list[str]) -> None:
    st.subheader(t("operators.new"))
    with st.form("operators_new"):
        username = st.text_input(t("operators.new.username"), key="operators_new_username",
                                 placeholder="li.na")
        display_name = st.text_input(t("operators.new.display_name"),
                                     key="operators_new_display_name")
        role = st.selectbox(t("operators.new.role"), roles, format_func=role_name,
                            index=roles.index("cashier") if "cashier" in roles else 0,
                            key="operators_new_role")
        password = st.text_input(t("operators.new.password"), type="password",
                                 key="operators_new_password")
        submitted = st.form_submit_button(t("operators.new.submit"), type="primary",
                                          key="operators_new_submit")
    if not submitted:
        return

    def create(session: Session, me: Operator | None) -> str:
        created = operators.add_operator(
            session, operator=me, username=username, display_name=display_name,
            role=role or "", password=password, now=auth.utcnow(),
        )
        return t("operators.created", username=created.username)

    _apply(create, clear=NEW_FORM_KEYS)


def _manage(rows: list[OperatorRow], roles: list[str], tz: ZoneInfo) -> None:
    st.subheader(t("operators.manage"))
    by_id = {row.id: row for row in rows}
    target_id = st.selectbox(
        t("operators.target"), list(by_id), index=None,
        format_func=lambda i: t("operators.target_label", username=by_id[i].username,
                                name=by_id[i].display_name, role=role_name(by_id[i].role)),
        placeholder=t("operators.target_placeholder"), key="operators_target",
    )
    if target_id is None or target_id not in by_id:
        return
    target = by_id[target_id]
    st.caption(_status(target, tz))
    if target.locked_until is not None:
        st.warning(t("operators.locked_note", attempts=target.failed_attempts,
                     time=_local(target.locked_until, tz)))
    _role_form(target, roles)
    _language_form(target)
    _reset_form(target)
    _buttons(target)


def _role_form(target: OperatorRow, roles: list[str]) -> None:
    # The key carries the operator, so choosing another one shows that one's role.
    with st.form(f"operators_role_form_{target.id}"):
        role = st.selectbox(t("operators.role"), roles, format_func=role_name,
                            index=roles.index(target.role) if target.role in roles else None,
                            key=f"operators_role_{target.id}")
        submitted = st.form_submit_button(t("operators.role.submit"),
                                          key="operators_role_submit")
    if not submitted:
        return

    def change(session: Session, me: Operator | None) -> str:
        operators.change_role(session, operator=me, operator_id=target.id, role=role or "",
                              now=auth.utcnow())
        return t("operators.role.changed", username=target.username, role=role_name(role or ""))

    _apply(change)


def _language_form(target: OperatorRow) -> None:
    choices = list(LANGUAGES)
    with st.form(f"operators_language_form_{target.id}"):
        language = st.selectbox(
            t("operators.language"), choices, format_func=LANGUAGES.__getitem__,
            index=choices.index(target.language) if target.language in choices else None,
            key=f"operators_language_{target.id}",
        )
        submitted = st.form_submit_button(t("operators.language.submit"),
                                          key="operators_language_submit")
    if not submitted:
        return

    def change(session: Session, me: Operator | None) -> str:
        operators.set_language(session, operator=me, operator_id=target.id,
                               language=language or "", now=auth.utcnow())
        return t("operators.language.changed", username=target.username,
                 language=LANGUAGES.get(language or "", ""))

    _apply(change)


def _reset_form(target: OperatorRow) -> None:
    with st.form(f"operators_reset_form_{target.id}", clear_on_submit=True):
        password = st.text_input(t("operators.reset"), type="password",
                                 key="operators_reset_password")
        submitted = st.form_submit_button(t("operators.reset.submit"),
                                          key="operators_reset_submit")
    if not submitted:
        return

    def reset(session: Session, me: Operator | None) -> str:
        operators.reset_password(session, operator=me, operator_id=target.id, password=password,
                                 now=auth.utcnow())
        return t("operators.reset.done", username=target.username)

    _apply(reset)


def _buttons(target: OperatorRow) -> None:
    toggle, unlock = st.columns(2)
    if target.is_active:
        clicked = toggle.button(t("operators.disable"), key="operators_disable",
                                icon=":material/block:")
    else:
        clicked = toggle.button(t("operators.enable"), key="operators_enable",
                                icon=":material/check_circle:")
    if clicked:
        def set_active(session: Session, me: Operator | None) -> str:
            operators.set_active(session, operator=me, operator_id=target.id,
                                 active=not target.is_active, now=auth.utcnow())
            done = "operators.enabled" if not target.is_active else "operators.disabled"
            return t(done, username=target.username)

        _apply(set_active)
    if target.locked_until is not None and unlock.button(
        t("operators.unlock"), key="operators_unlock", icon=":material/lock_open:"
    ):
        def do_unlock(session: Session, me: Operator | None) -> str:
            operators.unlock(session, operator=me, operator_id=target.id, now=auth.utcnow())
            return t("operators.unlocked", username=target.username)

        _apply(do_unlock)


if __name__ == "__main__":
    render()
