"""Roles and permissions (权限分配): edit what each role may do, add a role, remove an unused one.

The page only draws forms; billing.operators checks the "operators" permission and refuses any
change that would leave nobody able to manage operators.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import streamlit as st
from sqlalchemy.orm import Session

from app import auth
from app.export import XLSX_MIME, Column, xlsx_bytes
from app.i18n import STRINGS, register, role_name, t
from app.nav import Screen
from billing import operators
from billing.errors import BillingError, PermissionDenied
from billing.operators import PERMISSIONS, RoleRow
from schema.db import unit_of_work
from schema.models import Operator

SCREEN = Screen(module="roles", url_path="roles-and-permissions", title_key="roles.nav",
                permission=operators.MANAGE, icon=":material/admin_panel_settings:",
                section="section.settings", order=82)
FLASH = "roles_flash"
CLEAR = "roles_clear"
NEW_FORM_KEYS = ("roles_new_name", "roles_new_permissions")

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "roles.nav" not in STRINGS["en"]:
    register({
        "en": {
            "roles.nav": "Roles and permissions",
            "roles.title": "Roles and permissions",
            "roles.denied": "You are not allowed to manage roles. "
            "Ask an administrator for the operators permission.",
            "roles.perm.view": "View meters and reports",
            "roles.perm.sell": "Sell electricity",
            "roles.perm.refund": "Refund",
            "roles.perm.reverse": "Reverse a sale or refund",
            "roles.perm.accounts": "Open, change and close accounts",
            "roles.perm.control": "Remote control (trip, close, dispatch)",
            "roles.perm.configure": "System settings and tariffs",
            "roles.perm.operators": "Operators, roles and the operation log",
            "roles.col.role": "Role",
            "roles.col.permissions": "Permissions",
            "roles.col.builtin": "Built in",
            "roles.col.operators": "Operators",
            "roles.yes": "yes",
            "roles.no": "no",
            "roles.none": "(none)",
            "roles.export": "Export to Excel",
            "roles.edit": "Permissions of each role",
            "roles.save": "Save permissions",
            "roles.saved": "Permissions of {role} saved.",
            "roles.delete": "Delete role",
            "roles.deleted": "Role {role} deleted.",
            "roles.in_use": "{count} operator(s) have this role.",
            "roles.new": "New role",
            "roles.new.name": "Role name",
            "roles.new.permissions": "Permissions",
            "roles.new.submit": "Create role",
            "roles.created": "Role {role} created. Give it to operators on the Operators page.",
        },
        "zh": {
            "roles.nav": "角色与权限",
            "roles.title": "角色与权限",
            "roles.denied": "您没有管理角色的权限，请联系管理员开通操作员管理权限。",
            "roles.perm.view": "查看电表与报表",
            "roles.perm.sell": "售电",
            "roles.perm.refund": "退电",
            "roles.perm.reverse": "冲正",
            "roles.perm.accounts": "开户、修改与销户",
            "roles.perm.control": "遥控（拉闸、合闸、下发）",
            "roles.perm.configure": "系统设置与电价",
            "roles.perm.operators": "操作员、角色与操作日志",
            "roles.col.role": "角色",
            "roles.col.permissions": "权限",
            "roles.col.builtin": "内置",
            "roles.col.operators": "操作员数",
            "roles.yes": "是",
            "roles.no": "否",
            "roles.none": "（无）",
            "roles.export": "导出 Excel",
            "roles.edit": "各角色的权限",
            "roles.save": "保存权限",
            "roles.saved": "{role} 的权限已保存。",
            "roles.delete": "删除角色",
            "roles.deleted": "角色 {role} 已删除。",
            "roles.in_use": "有 {count} 个操作员使用此角色。",
            "roles.new": "新增角色",
            "roles.new.name": "角色名称",
            "roles.new.permissions": "权限",
            "roles.new.submit": "创建角色",
            "roles.created": "角色 {role} 已创建，可在「操作员管理」中分配给操作员。",
        },
    })


def render() -> None:
    st.title(t("roles.title"))
    # The services refuse anyone without the operators permission; the page says so.
    try:
        with unit_of_work(auth.database_url()) as session:
            roles = operators.list_roles(session, operator=auth.current_operator(session))
    except PermissionDenied:
        st.error(t("roles.denied"))
        return
    for key in st.session_state.pop(CLEAR, ()):
        st.session_state.pop(key, None)
    flash = st.session_state.pop(FLASH, None)
    if flash:
        st.success(flash)
    _table(roles)
    st.subheader(t("roles.edit"))
    for role in roles:
        _role_editor(role)
    _new_role_form()


def permission_label(permission: str) -> str:
    return t(f"roles.perm.{permission}")


def _permissions_text(permissions: Iterable[str]) -> str:
    return ", ".join(permission_label(p) for p in permissions) or t("roles.none")


def _table(roles: list[RoleRow]) -> None:
    data: list[dict[str, object]] = [
        {
            "role": role_name(role.name),
            "permissions": _permissions_text(role.permissions),
            "builtin": t("roles.yes") if role.builtin else t("roles.no"),
            "operators": role.operators,
        }
        for role in roles
    ]
    columns = [
        Column("role", t("roles.col.role")),
        Column("permissions", t("roles.col.permissions"), width=70),
        Column("builtin", t("roles.col.builtin")),
        Column("operators", t("roles.col.operators"), number_format="0"),
    ]
    st.dataframe(
        data, key="roles_table", hide_index=True,
        column_config={
            "role": st.column_config.TextColumn(t("roles.col.role")),
            "permissions": st.column_config.TextColumn(t("roles.col.permissions"), width="large"),
            "builtin": st.column_config.TextColumn(t("roles.col.builtin")),
            "operators": st.column_config.NumberColumn(t("roles.col.operators"), format="%d"),
        },
    )
    st.download_button(
        t("roles.export"), data=xlsx_bytes(data, columns, sheet=t("roles.title")),
        file_name="roles.xlsx", mime=XLSX_MIME, key="roles_export", icon=":material/download:",
    )


def _apply(change: Callable[[Session, Operator | None], str], clear: tuple[str, ...] = ()) -> None:
    """Run one change in its own transaction; show its refusal, or reload with its message."""
    try:
        with unit_of_work(auth.database_url()) as session:
            message = change(session, auth.current_operator(session))
    except BillingError as exc:
        st.error(str(exc))
        return
    st.session_state[FLASH] = message
    st.session_state[CLEAR] = list(clear)
    st.rerun()


def _role_editor(role: RoleRow) -> None:
    keys = {p: f"roles_{role.name}_{p}" for p in PERMISSIONS}
    label = f"{role_name(role.name)} — {_permissions_text(role.permissions)}"
    with st.expander(label):
        if role.operators:
            st.caption(t("roles.in_use", count=role.operators))
        with st.form(f"roles_form_{role.name}"):
            for permission, key in keys.items():
                st.checkbox(permission_label(permission), value=permission in role.permissions,
                            key=key)
            submitted = st.form_submit_button(t("roles.save"), key=f"roles_{role.name}_save")
        deleted = not role.builtin and not role.operators and st.button(
            t("roles.delete"), key=f"roles_{role.name}_delete", icon=":material/delete:"
        )
    if submitted:
        chosen = [p for p, key in keys.items() if st.session_state.get(key)]

        def save(session: Session, me: Operator | None) -> str:
            operators.set_role_permissions(session, operator=me, name=role.name,
                                           permissions=chosen, now=auth.utcnow())
            return t("roles.saved", role=role_name(role.name))

        _apply(save, clear=tuple(keys.values()))
    if deleted:

        def delete(session: Session, me: Operator | None) -> str:
            operators.delete_role(session, operator=me, name=role.name, now=auth.utcnow())
            return t("roles.deleted", role=role.name)

        _apply(delete)


def _new_role_form() -> None:
    st.subheader(t("roles.new"))
    with st.form("roles_new"):
        name = st.text_input(t("roles.new.name"), key="roles_new_name", max_chars=32)
        permissions = st.multiselect(t("roles.new.permissions"), PERMISSIONS,
                                     format_func=permission_label, key="roles_new_permissions")
        submitted = st.form_submit_button(t("roles.new.submit"), type="primary",
                                          key="roles_new_submit")
    if not submitted:
        return

    def create(session: Session, me: Operator | None) -> str:
        role = operators.create_role(session, operator=me, name=name, permissions=permissions,
                                     now=auth.utcnow())
        return t("roles.created", role=role.name)

    _apply(create, clear=NEW_FORM_KEYS)


if __name__ == "__main__":
    render()
