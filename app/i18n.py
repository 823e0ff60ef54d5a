"""Dashboard strings in English and Simplified Chinese; the sidebar switch sets session "lang".

Logging in applies the operator's own language (`apply_language`): the switch is drawn before the
page that logs in, so the language waits under PENDING_LANG for the next run to take it over.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

LANG_KEY = "lang"
PENDING_LANG = "lang_pending"
DEFAULT_LANG = "en"
LANGUAGES = {"en": "English", "zh": "中文"}

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "language": "Language / 语言",
        "nav.login": "Log in",
        "nav.overview": "Overview",
        "nav.sale": "Sale",
        "nav.no_access": "No access",
        "no_access": "Your role has no pages. Ask an administrator for access.",
        "signed_in": "Signed in as **{name}** ({role})",
        "logout": "Log out",
        "role.administrator": "administrator",
        "role.cashier": "cashier",
        "role.engineer": "engineer",
        "role.viewer": "viewer",
        "login.title": "Log in",
        "login.username": "User name",
        "login.password": "Password",
        "login.submit": "Log in",
        "login.failed": "Wrong user name or password",
        "denied.view": "You are not allowed to view meters.",
        "denied.sell": "You are not allowed to sell electricity. "
        "Ask an administrator for the cashier role.",
        "overview.title": "Meters",
        "overview.empty": "No meters yet — run `make run` to seed the demo site, "
        "or add meters in settings.",
        "overview.updated": "Updated {time} · refreshes every {seconds} s",
        "metric.meters": "Meters",
        "metric.arrears": "Accounts in arrears",
        "metric.tripped": "Tripped meters",
        "metric.total_balance": "Total balance ({currency})",
        "col.unit": "Unit",
        "col.building": "Building",
        "col.floor": "Floor",
        "col.meter": "Meter",
        "col.account": "Account",
        "col.tenant": "Tenant",
        "col.balance": "Balance",
        "col.relay": "Relay",
        "col.power": "Power (kW)",
        "col.last_reading": "Last reading ({tz})",
        "relay.closed": "● closed",
        "relay.open": "○ open (tripped)",
        "relay.unknown": "? unknown",
        "sale.title": "Sell electricity",
        "sale.account": "Account",
        "sale.account_placeholder": "Type an account number, tenant or unit",
        "sale.account_label": "{number} · {tenant} · {units} · balance {balance}",
        "sale.amount": "Amount ({currency})",
        "sale.method": "Payment method",
        "sale.submit": "Post sale",
        "sale.choose_account": "Choose an account first.",
        "sale.no_accounts": "No open accounts — open an account for a unit first.",
        "sale.posted": "Sale posted: {amount} to account {number}. New balance: {balance}.",
        "sale.repeated": "This sale was already posted; nothing was charged twice. "
        "Account {number} balance: {balance}.",
        "sale.restore": "Supply will be restored: a close command is queued for {count} meter(s).",
        "sale.new": "New sale",
        "sale.receipt": "Receipt {receipt_no} (PDF)",
        "sale.days_left": "At the last 7 days' usage the balance lasts about {days} days, "
        "until {date}.",
        "method.cash": "Cash",
        "method.card": "Card",
        "method.transfer": "Bank transfer",
        "method.online": "Online",
    },
    "zh": {
        "language": "Language / 语言",
        "nav.login": "登录",
        "nav.overview": "总览",
        "nav.sale": "售电",
        "nav.no_access": "无权限",
        "no_access": "您的角色没有可用的页面，请联系管理员开通权限。",
        "signed_in": "当前用户：**{name}**（{role}）",
        "logout": "退出登录",
        "role.administrator": "管理员",
        "role.cashier": "收银员",
        "role.engineer": "工程师",
        "role.viewer": "查看者",
        "login.title": "登录",
        "login.username": "用户名",
        "login.password": "密码",
        "login.submit": "登录",
        "login.failed": "用户名或密码错误",
        "denied.view": "您没有查看电表的权限。",
        "denied.sell": "您没有售电权限，请联系管理员开通收银员角色。",
        "overview.title": "电表总览",
        "overview.empty": "还没有电表——运行 `make run` 生成演示商场，或在设置中添加电表。",
        "overview.updated": "更新于 {time} · 每 {seconds} 秒自动刷新",
        "metric.meters": "电表",
        "metric.arrears": "欠费账户",
        "metric.tripped": "已拉闸电表",
        "metric.total_balance": "余额合计（{currency}）",
        "col.unit": "户号",
        "col.building": "楼栋",
        "col.floor": "楼层",
        "col.meter": "电表",
        "col.account": "账户",
        "col.tenant": "租户",
        "col.balance": "余额",
        "col.relay": "继电器",
        "col.power": "功率 (kW)",
        "col.last_reading": "最后抄表时间 ({tz})",
        "relay.closed": "● 合闸",
        "relay.open": "○ 断开（已拉闸）",
        "relay.unknown": "? 未知",
        "sale.title": "售电",
        "sale.account": "账户",
        "sale.account_placeholder": "输入账户号、租户或户号",
        "sale.account_label": "{number} · {tenant} · {units} · 余额 {balance}",
        "sale.amount": "金额（{currency}）",
        "sale.method": "付款方式",
        "sale.submit": "确认售电",
        "sale.choose_account": "请先选择账户。",
        "sale.no_accounts": "没有已开户的账户——请先为商铺开户。",
        "sale.posted": "售电成功：账户 {number} 充值 {amount}，新余额 {balance}。",
        "sale.repeated": "该笔售电已经入账，没有重复收费。账户 {number} 余额 {balance}。",
        "sale.restore": "将恢复供电：已为 {count} 块电表排队合闸指令。",
        "sale.new": "新的售电",
        "sale.receipt": "收据 {receipt_no}（PDF）",
        "sale.days_left": "按最近 7 天的用电，余额约可用 {days} 天，至 {date}。",
        "method.cash": "现金",
        "method.card": "刷卡",
        "method.transfer": "银行转账",
        "method.online": "线上支付",
    },
}


def register(strings: dict[str, dict[str, str]]) -> None:
    """Add a screen's strings (both languages); a key defined twice is a mistake."""
    for language, table in strings.items():
        # A screen file runs again as a script on every page run: the same strings again are
        # fine; another text under a key already taken is a mistake.
        clash = [k for k, v in table.items() if STRINGS[language].get(k, v) != v]
        if clash:
            raise ValueError(f"i18n keys defined twice: {sorted(clash)}")
        STRINGS[language].update(table)


register({
    "en": {
        "section.operate": "Operate",
        "section.accounts": "Accounts and sales",
        "section.reports": "Reports",
        "section.settings": "Settings",
    },
    "zh": {
        "section.operate": "运行",
        "section.accounts": "用户与售电",
        "section.reports": "报表中心",
        "section.settings": "系统设置",
    },
})


def lang() -> str:
    chosen = st.session_state.get(LANG_KEY, DEFAULT_LANG)
    return chosen if chosen in STRINGS else DEFAULT_LANG


def t(key: str, /, **values: object) -> str:
    """The string for `key` in the session's language, with `{name}` fields filled in."""
    text = STRINGS[lang()].get(key) or STRINGS[DEFAULT_LANG][key]
    return text.format(**values) if values else text


def role_name(role: str) -> str:
    key = f"role.{role}"
    return t(key) if key in STRINGS[DEFAULT_LANG] else role


def apply_language(language: str) -> None:
    """Show the dashboard in `language` from the next run on."""
    if language in STRINGS:
        st.session_state[PENDING_LANG] = language


def language_switch(
    on_change: Callable[[], None] | None = None, where: DeltaGenerator | None = None
) -> None:
    """The switch, in the sidebar unless `where` says otherwise; `on_change` runs when the
    user changes it."""
    pending = st.session_state.pop(PENDING_LANG, None)
    if pending is not None:
        st.session_state[LANG_KEY] = pending
    st.session_state.setdefault(LANG_KEY, DEFAULT_LANG)
    (where or st.sidebar).radio(
        t("language"), list(LANGUAGES), format_func=LANGUAGES.__getitem__, key=LANG_KEY,
        horizontal=True, on_change=on_change,
    )
