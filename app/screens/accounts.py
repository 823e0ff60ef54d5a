"""Accounts (用户管理): search, an account's detail, and what is done to it — add, remove or
replace a meter (老表金额转入), power-protect, close (销户). The services check the permissions.

The helpers at the top (money, local times, tables with their Excel export, receipt downloads)
serve every accounts and sales screen.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import streamlit as st

from app import auth
from app.export import ENERGY, MONEY, XLSX_MIME, Column, xlsx_bytes
from app.i18n import STRINGS, lang, register, t
from app.nav import Screen
from billing import account_views as views
from billing import accounts, control, sales, tenants
from billing.account_views import AccountRow, ClosingRow, EntryRow, MeterRow
from billing.errors import BillingError
from billing.money import format_money
from billing.operators import can
from billing.receipts import receipt_for_entry, render_receipt
from billing.views import BalanceInfo, balance_info
from schema.db import unit_of_work
from schema.models import Command
from voltpay.settings import get_settings

TIME_FORMAT = "%Y-%m-%d %H:%M"
STATUS_CHOICES = ("open", "closed", "all")
# Widget values to set before the widgets are drawn on the next run (a widget's value cannot
# change once it is drawn): a ticked confirmation is unticked after its action succeeded.
PENDING = "accounts_pending"
FLASH = "accounts_flash"  # what the last action did, shown once after the rerun
CLOSE_KEY = "accounts_close_key"  # idempotency key drawn with the close form

SCREEN = Screen(module="accounts", url_path="account-search", title_key="accounts.nav",
                permission="accounts", icon=":material/manage_accounts:",
                section="section.accounts", order=30)

TEXT = {
    "en": {
        "accounts.nav": "Accounts",
        "accounts.title": "Accounts",
        "accounts.denied": "You are not allowed to manage accounts. "
        "Ask an administrator for the cashier role.",
        "accounts.query": "Search",
        "accounts.query_placeholder": "Account number, tenant, unit, meter or phone",
        "accounts.status": "Show",
        "accounts.status.open": "Open accounts",
        "accounts.status.closed": "Closed accounts",
        "accounts.status.all": "All",
        "accounts.none_yet": "No accounts yet — open the first one on the Open account page.",
        "accounts.no_match": "No account matches “{query}”. Try part of the number, tenant, "
        "unit or phone, or show closed accounts too.",
        "accounts.none_here": "No accounts to show here — choose “All”, or open an account "
        "on the Open account page.",
        "accounts.found": "{count} account(s)",
        "accounts.truncated": "Showing the first {count}; type more of the number or name "
        "to narrow the search.",
        "accounts.pick": "Account",
        "accounts.pick_placeholder": "Choose an account to see its details",
        "accounts.pick_label": "{number} · {tenant} · {units}",
        "accounts.col.number": "Account",
        "accounts.col.tenant": "Tenant",
        "accounts.col.phone": "Phone",
        "accounts.col.units": "Units",
        "accounts.col.meters": "Meters",
        "accounts.col.status": "Status",
        "accounts.col.balance": "Balance ({currency})",
        "accounts.col.alarm": "Alarm level",
        "accounts.col.opened": "Opened ({tz})",
        "accounts.col.closed": "Closed ({tz})",
        "accounts.state.open": "open",
        "accounts.state.closed": "closed",
        "accounts.level.normal": "normal",
        "accounts.level.alarm1": "alarm 1",
        "accounts.level.alarm2": "alarm 2",
        "accounts.level.arrears": "arrears",
        "accounts.detail": "{number} · {tenant}",
        "accounts.info": "Phone: {phone} · ID / company number: {id_number} · "
        "opened {opened}",
        "accounts.notes": "Notes: {notes}",
        "accounts.closed_banner": "This account was closed on {closed}.",
        "accounts.metric.days_left": "Days left",
        "accounts.days_left_help": "At the last 7 days' usage the balance lasts until {date}.",
        "accounts.meters": "Meters",
        "accounts.no_meters": "This account holds no meter — add one under “Add meter”.",
        "accounts.mcol.serial": "Meter",
        "accounts.mcol.unit": "Unit",
        "accounts.mcol.relay": "Relay",
        "accounts.mcol.protect": "Power-protect",
        "accounts.mcol.last_reading": "Last reading ({tz})",
        "accounts.mcol.energy": "Reading (kWh)",
        "accounts.mcol.contact": "Contact",
        "accounts.contact.ok": "ok",
        "accounts.contact.lost": "lost since {since}",
        "accounts.protect.on": "on",
        "accounts.protect.off": "off",
        "accounts.tab.add": "Add meter",
        "accounts.tab.remove": "Remove meter",
        "accounts.tab.replace": "Old-meter transfer",
        "accounts.tab.protect": "Power-protect",
        "accounts.tab.close": "Close account",
        "accounts.tab.kiosk": "Tenant kiosk",
        "accounts.kiosk.help": "The tenant signs in to the kiosk and phone pages with the "
        "account number and a 6-digit PIN. Setting a PIN here replaces a forgotten one, lifts "
        "a lock and signs out sessions that used the old one.",
        "accounts.kiosk.no_pin": "No PIN yet: the tenant cannot sign in.",
        "accounts.kiosk.has_pin": "A PIN is set.",
        "accounts.kiosk.locked": "Locked after wrong PINs until {until}.",
        "accounts.kiosk.pin": "New PIN (6 digits)",
        "accounts.kiosk.pin_confirm": "New PIN again",
        "accounts.kiosk.set_pin": "Set PIN",
        "accounts.kiosk.pin_rules": "A kiosk PIN is 6 digits.",
        "accounts.kiosk.pin_mismatch": "The two PINs differ.",
        "accounts.kiosk.pin_set": "Account {number}: the kiosk PIN is set. Give it to the tenant.",
        "accounts.kiosk.control": "The tenant may restore a tripped meter from the kiosk "
        "(once the balance is above 0)",
        "accounts.kiosk.save_control": "Save",
        "accounts.kiosk.control_on": "Account {number}: the tenant may restore power.",
        "accounts.kiosk.control_off": "Account {number}: the tenant may not restore power.",
        "accounts.meter_label": "{serial} · {unit}",
        "accounts.choose_meter": "Choose a meter first.",
        "accounts.confirm_first": "Tick the confirmation box first; nothing was changed.",
        "accounts.trips": "A trip command is queued for {count} meter(s).",
        "accounts.closes": "A close command is queued for {count} meter(s).",
        "accounts.add.meter": "Meter to add",
        "accounts.add.placeholder": "Choose a meter no account holds",
        "accounts.add.submit": "Add meter",
        "accounts.add.none": "Every meter belongs to an account: remove one from its account "
        "first, or add meters in settings.",
        "accounts.add.done": "Meter {meter} added to account {number}.",
        "accounts.remove.meter": "Meter to remove",
        "accounts.remove.trip": "Trip it (nobody pays for its electricity from now on)",
        "accounts.remove.confirm": "Yes, remove this meter from account {number}",
        "accounts.remove.submit": "Remove meter",
        "accounts.remove.done": "Meter {meter} removed from account {number}.",
        "accounts.replace.help": "Moves the account and its balance of {balance} from the old "
        "meter to a new one. Type the old meter's final reading to bill it first.",
        "accounts.replace.old": "Old meter",
        "accounts.replace.new": "New meter",
        "accounts.replace.reading": "Final reading of the old meter (kWh, optional)",
        "accounts.replace.confirm": "Yes, replace the meter",
        "accounts.replace.submit": "Transfer to the new meter",
        "accounts.replace.done": "Meter {old} replaced by {new}; {value} went with the account.",
        "accounts.protect.help": "Power-protect keeps a meter's supply on even in arrears; "
        "turning it off restores prepaid mode.",
        "accounts.protect.meter": "Meter",
        "accounts.protect.mode": "Power-protect",
        "accounts.protect.submit": "Apply",
        "accounts.protect.done_on": "Power-protect is on for {meter}.",
        "accounts.protect.done_off": "Prepaid mode is restored for {meter}.",
        "accounts.close.help": "Closing bills the final readings typed here, refunds the "
        "remaining balance (or records the debt), trips and releases every meter and writes "
        "the closing record.",
        "accounts.close.reading": "Final reading of {meter} (kWh, optional)",
        "accounts.close.method": "Refund method",
        "accounts.close.note": "Note",
        "accounts.close.confirm": "Yes, close account {number}",
        "accounts.close.submit": "Close account",
        "accounts.close.done": "Account {number} is closed.",
        "accounts.closing": "Closing record",
        "accounts.closing.at": "Closed ({tz})",
        "accounts.closing.operator": "Operator",
        "accounts.closing.final": "Final balance ({currency})",
        "accounts.closing.refunded": "Refunded ({currency})",
        "accounts.closing.debt": "Debt ({currency})",
        "accounts.closing.meters": "Meters",
        "accounts.closing.receipt": "Refund receipt",
        "accounts.closing.note": "Note",
        "accounts.closing.debt_warning": "The account closed owing {debt}: collect it from "
        "the tenant.",
        "accounts.receipt": "Receipt {receipt_no} (PDF)",
        "accounts.replacements": "Meter replacements",
        "accounts.rcol.at": "Time ({tz})",
        "accounts.rcol.old": "Old meter",
        "accounts.rcol.new": "New meter",
        "accounts.rcol.reading": "Final reading (kWh)",
        "accounts.rcol.value": "Value transferred ({currency})",
        "accounts.rcol.operator": "Operator",
        "accounts.ledger": "Recent ledger entries",
        "accounts.money_only": "Sales, refunds and reversals only",
        "accounts.ledger_empty": "No entries yet — sell electricity to this account on the "
        "Sale page.",
        "accounts.ecol.at": "Time ({tz})",
        "accounts.ecol.receipt": "Receipt",
        "accounts.ecol.kind": "Kind",
        "accounts.ecol.account": "Account",
        "accounts.ecol.tenant": "Tenant",
        "accounts.ecol.amount": "Amount ({currency})",
        "accounts.ecol.balance_after": "Balance after ({currency})",
        "accounts.ecol.method": "Payment method",
        "accounts.ecol.operator": "Operator",
        "accounts.ecol.note": "Note",
        "accounts.ecol.meter": "Meter",
        "accounts.ecol.energy": "Energy (kWh)",
        "accounts.ecol.reverses": "Reverses",
        "accounts.ecol.reversed_by": "Reversed by",
        "accounts.kind.charge": "charge",
        "accounts.kind.sale": "sale",
        "accounts.kind.refund": "refund",
        "accounts.kind.reversal": "reversal",
        "accounts.kind.transfer": "transfer",
        "accounts.export": "Export to Excel",
    },
    "zh": {
        "accounts.nav": "账户管理",
        "accounts.title": "账户管理",
        "accounts.denied": "您没有账户管理权限，请联系管理员开通收银员角色。",
        "accounts.query": "查找",
        "accounts.query_placeholder": "账户号、租户、户号、电表或电话",
        "accounts.status": "显示",
        "accounts.status.open": "在用账户",
        "accounts.status.closed": "已销户账户",
        "accounts.status.all": "全部",
        "accounts.none_yet": "还没有账户——请在“开户”页面开立第一个账户。",
        "accounts.no_match": "没有与“{query}”匹配的账户。请输入账户号、租户、户号或电话的一部分，"
        "或同时显示已销户账户。",
        "accounts.none_here": "这里没有可显示的账户——请选择“全部”，或在“开户”页面开立账户。",
        "accounts.found": "{count} 个账户",
        "accounts.truncated": "仅显示前 {count} 个；请输入更多账户号或名称以缩小范围。",
        "accounts.pick": "账户",
        "accounts.pick_placeholder": "选择账户查看详情",
        "accounts.pick_label": "{number} · {tenant} · {units}",
        "accounts.col.number": "账户",
        "accounts.col.tenant": "租户",
        "accounts.col.phone": "电话",
        "accounts.col.units": "户号",
        "accounts.col.meters": "电表",
        "accounts.col.status": "状态",
        "accounts.col.balance": "余额（{currency}）",
        "accounts.col.alarm": "预警级别",
        "accounts.col.opened": "开户时间（{tz}）",
        "accounts.col.closed": "销户时间（{tz}）",
        "accounts.state.open": "在用",
        "accounts.state.closed": "已销户",
        "accounts.level.normal": "正常",
        "accounts.level.alarm1": "一级预警",
        "accounts.level.alarm2": "二级预警",
        "accounts.level.arrears": "欠费",
        "accounts.detail": "{number} · {tenant}",
        "accounts.info": "电话：{phone} · 证件号/统一社会信用代码：{id_number} · 开户于 {opened}",
        "accounts.notes": "备注：{notes}",
        "accounts.closed_banner": "该账户已于 {closed} 销户。",
        "accounts.metric.days_left": "可用天数",
        "accounts.days_left_help": "按最近 7 天的用电，余额约可用至 {date}。",
        "accounts.meters": "电表",
        "accounts.no_meters": "该账户没有电表——请在“添加电表”中添加。",
        "accounts.mcol.serial": "电表",
        "accounts.mcol.unit": "户号",
        "accounts.mcol.relay": "继电器",
        "accounts.mcol.protect": "保电",
        "accounts.mcol.last_reading": "最后抄表（{tz}）",
        "accounts.mcol.energy": "读数 (kWh)",
        "accounts.mcol.contact": "通讯",
        "accounts.contact.ok": "正常",
        "accounts.contact.lost": "自 {since} 失联",
        "accounts.protect.on": "开",
        "accounts.protect.off": "关",
        "accounts.tab.add": "添加电表",
        "accounts.tab.remove": "移除电表",
        "accounts.tab.replace": "老表金额转入",
        "accounts.tab.protect": "保电",
        "accounts.tab.close": "销户",
        "accounts.tab.kiosk": "自助终端",
        "accounts.kiosk.help": "租户用账户号和 6 位数字密码登录自助终端和手机页面。"
        "在此设置密码将替换忘记的密码、解除锁定，并使用旧密码的登录失效。",
        "accounts.kiosk.no_pin": "尚未设置密码：租户无法登录。",
        "accounts.kiosk.has_pin": "已设置密码。",
        "accounts.kiosk.locked": "因密码错误已锁定至 {until}。",
        "accounts.kiosk.pin": "新密码（6 位数字）",
        "accounts.kiosk.pin_confirm": "再次输入新密码",
        "accounts.kiosk.set_pin": "设置密码",
        "accounts.kiosk.pin_rules": "自助终端密码为 6 位数字。",
        "accounts.kiosk.pin_mismatch": "两次输入的密码不一致。",
        "accounts.kiosk.pin_set": "账户 {number}：自助终端密码已设置，请告知租户。",
        "accounts.kiosk.control": "允许租户在自助终端恢复已拉闸的电表（余额大于 0 时）",
        "accounts.kiosk.save_control": "保存",
        "accounts.kiosk.control_on": "账户 {number}：租户可自助恢复供电。",
        "accounts.kiosk.control_off": "账户 {number}：租户不可自助恢复供电。",
        "accounts.meter_label": "{serial} · {unit}",
        "accounts.choose_meter": "请先选择电表。",
        "accounts.confirm_first": "请先勾选确认框；未做任何更改。",
        "accounts.trips": "已为 {count} 块电表排队拉闸指令。",
        "accounts.closes": "已为 {count} 块电表排队合闸指令。",
        "accounts.add.meter": "要添加的电表",
        "accounts.add.placeholder": "选择未被占用的电表",
        "accounts.add.submit": "添加电表",
        "accounts.add.none": "所有电表都已归属账户：请先从原账户移除，或在系统设置中添加电表。",
        "accounts.add.done": "电表 {meter} 已添加到账户 {number}。",
        "accounts.remove.meter": "要移除的电表",
        "accounts.remove.trip": "同时拉闸（此后其用电无人付费）",
        "accounts.remove.confirm": "确认从账户 {number} 移除该电表",
        "accounts.remove.submit": "移除电表",
        "accounts.remove.done": "电表 {meter} 已从账户 {number} 移除。",
        "accounts.replace.help": "将账户及其余额 {balance} 从旧表转到新表。填写旧表的最终读数，"
        "可先结算旧表电费。",
        "accounts.replace.old": "旧表",
        "accounts.replace.new": "新表",
        "accounts.replace.reading": "旧表最终读数（kWh，可不填）",
        "accounts.replace.confirm": "确认换表",
        "accounts.replace.submit": "转入新表",
        "accounts.replace.done": "电表 {old} 已换为 {new}；{value} 已随账户转入。",
        "accounts.protect.help": "保电：欠费时仍保持供电；关闭保电即恢复预付费模式。",
        "accounts.protect.meter": "电表",
        "accounts.protect.mode": "保电",
        "accounts.protect.submit": "应用",
        "accounts.protect.done_on": "电表 {meter} 已开启保电。",
        "accounts.protect.done_off": "电表 {meter} 已恢复预付费模式。",
        "accounts.close.help": "销户将按此处填写的最终读数结算，退还剩余余额（或记录欠款），"
        "拉闸并释放所有电表，并生成销户记录。",
        "accounts.close.reading": "{meter} 最终读数（kWh，可不填）",
        "accounts.close.method": "退款方式",
        "accounts.close.note": "备注",
        "accounts.close.confirm": "确认为账户 {number} 销户",
        "accounts.close.submit": "销户",
        "accounts.close.done": "账户 {number} 已销户。",
        "accounts.closing": "销户记录",
        "accounts.closing.at": "销户时间（{tz}）",
        "accounts.closing.operator": "操作员",
        "accounts.closing.final": "最终余额（{currency}）",
        "accounts.closing.refunded": "已退款（{currency}）",
        "accounts.closing.debt": "欠款（{currency}）",
        "accounts.closing.meters": "电表",
        "accounts.closing.receipt": "退款收据",
        "accounts.closing.note": "备注",
        "accounts.closing.debt_warning": "该账户销户时欠款 {debt}：请向租户收取。",
        "accounts.receipt": "收据 {receipt_no}（PDF）",
        "accounts.replacements": "换表记录",
        "accounts.rcol.at": "时间（{tz}）",
        "accounts.rcol.old": "旧表",
        "accounts.rcol.new": "新表",
        "accounts.rcol.reading": "最终读数 (kWh)",
        "accounts.rcol.value": "转入金额（{currency}）",
        "accounts.rcol.operator": "操作员",
        "accounts.ledger": "最近账目",
        "accounts.money_only": "只看售电、退电和冲正",
        "accounts.ledger_empty": "还没有账目——请在“售电”页面为该账户售电。",
        "accounts.ecol.at": "时间（{tz}）",
        "accounts.ecol.receipt": "收据号",
        "accounts.ecol.kind": "类型",
        "accounts.ecol.account": "账户",
        "accounts.ecol.tenant": "租户",
        "accounts.ecol.amount": "金额（{currency}）",
        "accounts.ecol.balance_after": "变动后余额（{currency}）",
        "accounts.ecol.method": "付款方式",
        "accounts.ecol.operator": "操作员",
        "accounts.ecol.note": "备注",
        "accounts.ecol.meter": "电表",
        "accounts.ecol.energy": "电量 (kWh)",
        "accounts.ecol.reverses": "冲正的收据",
        "accounts.ecol.reversed_by": "被冲正收据",
        "accounts.kind.charge": "扣费",
        "accounts.kind.sale": "售电",
        "accounts.kind.refund": "退电",
        "accounts.kind.reversal": "冲正",
        "accounts.kind.transfer": "转入",
        "accounts.export": "导出 Excel",
    },
}
# Streamlit executes this file afresh on every run of the page: register the strings once.
if "accounts.nav" not in STRINGS["en"]:
    register(TEXT)


# --- helpers for every accounts and sales screen ---------------------------------------------


def money(amount: Decimal) -> str:
    return f"{format_money(amount)} {get_settings().currency}"


def local_time(at: datetime | None) -> str:
    return at.astimezone(get_settings().tz).strftime(TIME_FORMAT) if at else ""


def kind_label(kind: str) -> str:
    return t(f"accounts.kind.{kind}")


def method_label(method: str | None) -> str:
    return t(f"method.{method}") if method else ""


def level_label(level: str) -> str:
    return t(f"accounts.level.{level}")


def meter_label(serial: str, unit: str | None) -> str:
    return t("accounts.meter_label", serial=serial, unit=unit or "-")


def headers() -> dict[str, str]:
    """Values the column headers are filled in with."""
    settings = get_settings()
    return {"currency": settings.currency, "tz": settings.site_tz}


@dataclass(frozen=True)
class TableColumn:
    key: str
    header: str
    kind: str = "text"  # text | money | energy | time | integer


def _shown(value: object, kind: str) -> object:
    if kind == "time":
        return local_time(value) if isinstance(value, datetime) else ""
    return value


def _exported(value: object, kind: str) -> object:
    if kind == "time" and isinstance(value, datetime):
        return value.astimezone(get_settings().tz)  # Excel has no zones: local wall time
    return value


def table_xlsx(
    rows: Sequence[Mapping[str, object]], columns: Sequence[TableColumn], *, sheet: str
) -> bytes:
    """The table as an .xlsx workbook, times in the site time zone."""
    formats = {"money": MONEY, "energy": ENERGY, "integer": "#,##0"}
    return xlsx_bytes(
        [{c.key: _exported(row.get(c.key), c.kind) for c in columns} for row in rows],
        [Column(c.key, c.header, formats.get(c.kind)) for c in columns],
        sheet=sheet,
    )


def show_table(
    rows: Sequence[Mapping[str, object]],
    columns: Sequence[TableColumn],
    *,
    key: str,
    file_name: str,
    sheet: str,
) -> None:
    """The table, then a button exporting it to Excel (drawn only when clicked)."""
    config: dict[str, Any] = {}
    for c in columns:
        if c.kind in ("money", "energy"):
            config[c.key] = st.column_config.NumberColumn(c.header, format="%,.2f")
        elif c.kind == "integer":
            config[c.key] = st.column_config.NumberColumn(c.header, format="%d")
        else:
            config[c.key] = st.column_config.TextColumn(c.header)
    st.dataframe(
        [{c.key: _shown(row.get(c.key), c.kind) for c in columns} for row in rows],
        key=key, hide_index=True, column_config=config, column_order=[c.key for c in columns],
    )
    data = [dict(row) for row in rows]
    st.download_button(
        t("accounts.export"), data=lambda: table_xlsx(data, columns, sheet=sheet),
        file_name=file_name, mime=XLSX_MIME, key=f"{key}_xlsx", icon=":material/download:",
        on_click="ignore",
    )


@st.cache_data(max_entries=200, show_spinner=False)
def receipt_pdf(entry_id: int, language: str) -> bytes:
    """A posted entry never changes, so its receipt is drawn once per language."""
    settings = get_settings()
    with unit_of_work(settings.database_url) as session:
        data = receipt_for_entry(
            session, entry_id, site_name=settings.site_name, currency=settings.currency,
            tz=settings.tz, language="zh" if language == "zh" else "en",
        )
    return render_receipt(data)


def receipt_button(entry_id: int, receipt_no: str, *, key: str) -> None:
    st.download_button(
        t("accounts.receipt", receipt_no=receipt_no),
        data=receipt_pdf(entry_id, lang()),
        file_name=f"receipt-{receipt_no}.pdf",
        mime="application/pdf",
        key=key,
        icon=":material/receipt:",
    )


def command_notes(commands: Sequence[Command]) -> list[str]:
    """What queued commands will do, for a message after an action."""
    notes = []
    trips = sum(1 for command in commands if command.kind == "trip")
    closes = sum(1 for command in commands if command.kind == "close")
    if trips:
        notes.append(t("accounts.trips", count=trips))
    if closes:
        notes.append(t("accounts.closes", count=closes))
    return notes


def entry_columns(*, with_account: bool) -> list[TableColumn]:
    h = headers()
    columns = [
        TableColumn("at", t("accounts.ecol.at", **h), "time"),
        TableColumn("receipt_no", t("accounts.ecol.receipt")),
        TableColumn("kind", t("accounts.ecol.kind")),
    ]
    if with_account:
        columns += [
            TableColumn("account", t("accounts.ecol.account")),
            TableColumn("tenant", t("accounts.ecol.tenant")),
        ]
    return [
        *columns,
        TableColumn("amount", t("accounts.ecol.amount", **h), "money"),
        TableColumn("balance_after", t("accounts.ecol.balance_after", **h), "money"),
        TableColumn("method", t("accounts.ecol.method")),
        TableColumn("operator", t("accounts.ecol.operator")),
        TableColumn("note", t("accounts.ecol.note")),
    ]


def entry_record(row: EntryRow) -> dict[str, object]:
    return {
        "at": row.at,
        "receipt_no": row.receipt_no or "",
        "kind": kind_label(row.kind),
        "account": row.account,
        "tenant": row.tenant,
        "amount": row.amount,
        "balance_after": row.balance_after,
        "method": method_label(row.payment_method),
        "operator": row.operator,
        "note": row.note,
        "meter": row.meter or "",
        "energy_kwh": row.energy_kwh,
        "reverses": row.reverses or "",
        "reversed_by": row.reversed_by or "",
    }


# --- the screen ----------------------------------------------------------------------------


def render() -> None:
    st.title(t("accounts.title"))
    with unit_of_work(auth.database_url()) as session:
        operator = auth.current_operator(session)
        allowed, may_control = can(operator, "accounts"), can(operator, "control")
    if not allowed:
        st.error(t("accounts.denied"))
        return
    for key, value in st.session_state.pop(PENDING, {}).items():
        st.session_state[key] = value
    query_column, status_column = st.columns([3, 2])
    query = query_column.text_input(
        t("accounts.query"), key="accounts_query", placeholder=t("accounts.query_placeholder")
    )
    status = status_column.radio(
        t("accounts.status"), STATUS_CHOICES, format_func=lambda s: t(f"accounts.status.{s}"),
        horizontal=True, key="accounts_status",
    )
    with unit_of_work(auth.database_url()) as session:
        rows = views.search_accounts(session, query, status=None if status == "all" else status)
        anything = bool(rows) or bool(views.search_accounts(session, "", status=None, limit=1))
    if not rows:
        if query.strip():
            st.info(t("accounts.no_match", query=query.strip()))
        else:
            st.info(t("accounts.none_here") if anything else t("accounts.none_yet"))
        return
    _results(rows)
    account_id: int | None = rows[0].id
    if len(rows) > 1:
        by_id = {row.id: row for row in rows}
        account_id = st.selectbox(
            t("accounts.pick"), list(by_id), index=None,
            format_func=lambda key: t(
                "accounts.pick_label", number=by_id[key].number, tenant=by_id[key].tenant,
                units=by_id[key].units or "-",
            ),
            placeholder=t("accounts.pick_placeholder"), key="accounts_pick",
        )
    if account_id is not None:
        _detail(account_id, may_control=may_control)


def _results(rows: list[AccountRow]) -> None:
    h = headers()
    columns = [
        TableColumn("number", t("accounts.col.number")),
        TableColumn("tenant", t("accounts.col.tenant")),
        TableColumn("units", t("accounts.col.units")),
        TableColumn("meters", t("accounts.col.meters")),
        TableColumn("phone", t("accounts.col.phone")),
        TableColumn("balance", t("accounts.col.balance", **h), "money"),
        TableColumn("alarm", t("accounts.col.alarm")),
        TableColumn("status", t("accounts.col.status")),
        TableColumn("opened_at", t("accounts.col.opened", **h), "time"),
        TableColumn("closed_at", t("accounts.col.closed", **h), "time"),
    ]
    records = [
        {
            "number": row.number, "tenant": row.tenant, "units": row.units,
            "meters": row.meters, "phone": row.phone, "balance": row.balance,
            "alarm": level_label(row.alarm_level) if row.status == "open" else "",
            "status": t(f"accounts.state.{row.status}"), "opened_at": row.opened_at,
            "closed_at": row.closed_at,
        }
        for row in rows
    ]
    caption = t("accounts.found", count=len(rows))
    if len(rows) >= views.SEARCH_LIMIT:
        caption += " · " + t("accounts.truncated", count=len(rows))
    st.caption(caption)
    show_table(records, columns, key="accounts_table", file_name="accounts.xlsx",
               sheet=t("accounts.title"))


@dataclass(frozen=True)
class Detail:
    account: AccountRow
    info: BalanceInfo
    meters: list[MeterRow]
    free: list[views.MeterChoice]
    closing: ClosingRow | None
    replacements: list[views.ReplacementRow]
    entries: list[EntryRow]


def _load(account_id: int, *, money_only: bool) -> Detail:
    settings = get_settings()
    with unit_of_work(settings.database_url) as session:
        account = views.get_account(session, account_id)
        is_open = account.status == "open"
        return Detail(
            account=account,
            info=balance_info(session, account_id, now=auth.utcnow(), tz=settings.tz),
            meters=views.account_meters(session, account_id),
            free=views.free_meters(session) if is_open else [],
            closing=None if is_open else views.closing_of(session, account_id),
            replacements=views.replacements(session, account_id),
            entries=views.recent_entries(session, account_id, money_only=money_only),
        )


def _detail(account_id: int, *, may_control: bool) -> None:
    money_only = bool(st.session_state.get("accounts_money_only", True))
    detail = _load(account_id, money_only=money_only)
    account = detail.account
    st.divider()
    st.subheader(t("accounts.detail", number=account.number, tenant=account.tenant))
    for level, text in st.session_state.pop(FLASH, []):
        (st.success if level == "success" else st.info)(text)
    st.caption(
        t("accounts.info", phone=account.phone or "-", id_number=account.id_number or "-",
          opened=local_time(account.opened_at))
    )
    if account.notes:
        st.caption(t("accounts.notes", notes=account.notes))
    if account.status == "closed":
        st.warning(t("accounts.closed_banner", closed=local_time(account.closed_at)))
        if detail.closing is not None:
            _closing_record(detail.closing)
    else:
        _balance(detail.info)
        _meters(detail.meters)
        _actions(detail, may_control=may_control)
    if detail.replacements:
        _replacements(detail.replacements)
    _ledger(detail.entries)


def _balance(info: BalanceInfo) -> None:
    h = headers()
    balance, level, days = st.columns(3)
    balance.metric(t("accounts.col.balance", **h), format_money(info.balance), border=True)
    level.metric(t("accounts.col.alarm"), level_label(info.alarm_level), border=True)
    days.metric(
        t("accounts.metric.days_left"),
        "-" if info.days_left is None else str(info.days_left),
        help=t("accounts.days_left_help", date=info.runs_out_on) if info.runs_out_on else None,
        border=True,
    )


def _meters(meters: list[MeterRow]) -> None:
    st.markdown(f"**{t('accounts.meters')}**")
    if not meters:
        st.info(t("accounts.no_meters"))
        return
    h = headers()
    columns = [
        TableColumn("serial", t("accounts.mcol.serial")),
        TableColumn("unit", t("accounts.mcol.unit")),
        TableColumn("relay", t("accounts.mcol.relay")),
        TableColumn("protect", t("accounts.mcol.protect")),
        TableColumn("last_reading_at", t("accounts.mcol.last_reading", **h), "time"),
        TableColumn("energy_kwh", t("accounts.mcol.energy"), "energy"),
        TableColumn("contact", t("accounts.mcol.contact")),
    ]
    records = [
        {
            "serial": m.serial, "unit": m.unit or "",
            "relay": t(f"relay.{m.relay}") if m.relay in ("open", "closed")
            else t("relay.unknown"),
            "protect": t("accounts.protect.on" if m.power_protect else "accounts.protect.off"),
            "last_reading_at": m.last_reading_at, "energy_kwh": m.last_energy_kwh,
            "contact": t("accounts.contact.lost", since=local_time(m.lost_since))
            if m.lost_since else t("accounts.contact.ok"),
        }
        for m in meters
    ]
    show_table(records, columns, key="accounts_meters", file_name="account-meters.xlsx",
               sheet=t("accounts.meters"))


def _actions(detail: Detail, *, may_control: bool) -> None:
    names = ["add", "remove", "replace"] + (["protect"] if may_control else []) + ["kiosk",
                                                                                     "close"]
    tabs = dict(zip(names, st.tabs([t(f"accounts.tab.{name}") for name in names]), strict=True))
    with tabs["add"]:
        _add_meter(detail)
    with tabs["remove"]:
        _remove_meter(detail)
    with tabs["replace"]:
        _replace_meter(detail)
    if may_control:
        with tabs["protect"]:
            _power_protect(detail)
    with tabs["kiosk"]:
        _kiosk(detail, may_control=may_control)
    with tabs["close"]:
        _close_account(detail)


def _done(messages: list[tuple[str, str]], reset: Mapping[str, object] | None = None) -> None:
    """After an action: its messages shown once, its confirmation unticked, a fresh page."""
    st.session_state[FLASH] = messages
    st.session_state[PENDING] = dict(reset or {})
    st.rerun()


def _act(action: Callable[[], list[tuple[str, str]]], reset: Mapping[str, object]) -> None:
    try:
        messages = action()
    except BillingError as exc:
        st.error(str(exc))
        return
    _done(messages, reset)


def _meter_choice(key: str, label: str, choices: Mapping[int, str], placeholder: str = ""
                  ) -> int | None:
    return st.selectbox(label, list(choices), index=None, format_func=choices.__getitem__,
                        placeholder=placeholder or label, key=key)


def _add_meter(detail: Detail) -> None:
    if not detail.free:
        st.info(t("accounts.add.none"))
        return
    free = {m.id: meter_label(m.serial, m.unit) for m in detail.free}
    with st.form("accounts_add"):
        meter_id = _meter_choice("accounts_add_meter", t("accounts.add.meter"), free,
                                 t("accounts.add.placeholder"))
        submitted = st.form_submit_button(t("accounts.add.submit"), key="accounts_add_submit")
    if not submitted:
        return
    if meter_id is None:
        st.error(t("accounts.choose_meter"))
        return
    number = detail.account.number

    def add() -> list[tuple[str, str]]:
        settings = get_settings()
        with unit_of_work(settings.database_url) as session:
            commands = accounts.add_meter(
                session, account_id=detail.account.id, meter_id=meter_id,
                operator=auth.current_operator(session), now=auth.utcnow(),
                policy=auth.policy(session),
            )
            notes = command_notes(commands)
        done = t("accounts.add.done", meter=free[meter_id], number=number)
        return [("success", done)] + [("info", note) for note in notes]

    _act(add, {})


def _remove_meter(detail: Detail) -> None:
    if not detail.meters:
        st.info(t("accounts.no_meters"))
        return
    held = {m.id: meter_label(m.serial, m.unit) for m in detail.meters}
    number = detail.account.number
    with st.form("accounts_remove"):
        meter_id = _meter_choice("accounts_remove_meter", t("accounts.remove.meter"), held)
        trip = st.checkbox(t("accounts.remove.trip"), value=True, key="accounts_remove_trip")
        confirmed = st.checkbox(t("accounts.remove.confirm", number=number),
                                key="accounts_remove_confirm")
        submitted = st.form_submit_button(t("accounts.remove.submit"),
                                          key="accounts_remove_submit")
    if not submitted:
        return
    if meter_id is None:
        st.error(t("accounts.choose_meter"))
        return
    if not confirmed:
        st.error(t("accounts.confirm_first"))
        return

    def remove() -> list[tuple[str, str]]:
        settings = get_settings()
        with unit_of_work(settings.database_url) as session:
            commands = accounts.remove_meter(
                session, account_id=detail.account.id, meter_id=meter_id,
                operator=auth.current_operator(session), now=auth.utcnow(),
                policy=auth.policy(session), trip=trip,
            )
            notes = command_notes(commands)
        done = t("accounts.remove.done", meter=held[meter_id], number=number)
        return [("success", done)] + [("info", note) for note in notes]

    _act(remove, {"accounts_remove_confirm": False})


def _replace_meter(detail: Detail) -> None:
    if not detail.meters or not detail.free:
        st.info(t("accounts.no_meters") if not detail.meters else t("accounts.add.none"))
        return
    held = {m.id: meter_label(m.serial, m.unit) for m in detail.meters}
    serials = {m.id: m.serial for m in detail.meters}
    free = {m.id: meter_label(m.serial, m.unit) for m in detail.free}
    st.caption(t("accounts.replace.help", balance=money(detail.info.balance)))
    with st.form("accounts_replace"):
        old_id = _meter_choice("accounts_replace_old", t("accounts.replace.old"), held)
        new_id = _meter_choice("accounts_replace_new", t("accounts.replace.new"), free,
                               t("accounts.add.placeholder"))
        reading = st.text_input(t("accounts.replace.reading"), key="accounts_replace_reading",
                                placeholder="12345.67")
        confirmed = st.checkbox(t("accounts.replace.confirm"), key="accounts_replace_confirm")
        submitted = st.form_submit_button(t("accounts.replace.submit"),
                                          key="accounts_replace_submit")
    if not submitted:
        return
    if old_id is None or new_id is None:
        st.error(t("accounts.choose_meter"))
        return
    if not confirmed:
        st.error(t("accounts.confirm_first"))
        return

    def replace() -> list[tuple[str, str]]:
        settings = get_settings()
        final = accounts.parse_reading(reading, serials[old_id])
        with unit_of_work(settings.database_url) as session:
            record = accounts.replace_meter(
                session, account_id=detail.account.id, old_meter_id=old_id, new_meter_id=new_id,
                operator=auth.current_operator(session), now=auth.utcnow(),
                policy=auth.policy(session), old_final_energy_kwh=final,
            )
            value = record.value_transferred
        done = t("accounts.replace.done", old=held[old_id], new=free[new_id], value=money(value))
        return [("success", done)]

    _act(replace, {"accounts_replace_confirm": False, "accounts_replace_reading": ""})


def _power_protect(detail: Detail) -> None:
    if not detail.meters:
        st.info(t("accounts.no_meters"))
        return
    held = {m.id: meter_label(m.serial, m.unit) for m in detail.meters}
    st.caption(t("accounts.protect.help"))
    with st.form("accounts_protect"):
        meter_id = _meter_choice("accounts_protect_meter", t("accounts.protect.meter"), held)
        protect = st.radio(
            t("accounts.protect.mode"), (True, False), horizontal=True,
            format_func=lambda on: t("accounts.protect.on" if on else "accounts.protect.off"),
            key="accounts_protect_on",
        )
        submitted = st.form_submit_button(t("accounts.protect.submit"),
                                          key="accounts_protect_submit")
    if not submitted:
        return
    if meter_id is None:
        st.error(t("accounts.choose_meter"))
        return

    def apply() -> list[tuple[str, str]]:
        settings = get_settings()
        with unit_of_work(settings.database_url) as session:
            commands = control.set_power_protect(
                session, meter_id, bool(protect), operator=auth.current_operator(session),
                policy=auth.policy(session), now=auth.utcnow(),
            )
            notes = command_notes(commands)
        key = "accounts.protect.done_on" if protect else "accounts.protect.done_off"
        return [("success", t(key, meter=held[meter_id]))] + [("info", n) for n in notes]

    _act(apply, {})


def _kiosk(detail: Detail, *, may_control: bool) -> None:
    account = detail.account
    with unit_of_work(auth.database_url()) as session:
        status = tenants.pin_status(session, account.id, now=auth.utcnow())
    st.caption(t("accounts.kiosk.help"))
    st.markdown(t("accounts.kiosk.has_pin" if status.has_pin else "accounts.kiosk.no_pin"))
    if status.locked_until is not None:
        st.warning(t("accounts.kiosk.locked", until=local_time(status.locked_until)))
    with st.form("accounts_pin_form"):
        left, right = st.columns(2)
        pin = left.text_input(t("accounts.kiosk.pin"), type="password", max_chars=6,
                              key="accounts_pin")
        confirm = right.text_input(t("accounts.kiosk.pin_confirm"), type="password",
                                   max_chars=6, key="accounts_pin_confirm")
        submitted = st.form_submit_button(t("accounts.kiosk.set_pin"), key="accounts_pin_submit")
    if submitted:
        if not tenants.valid_pin(pin):
            st.error(t("accounts.kiosk.pin_rules"))
        elif pin != confirm:
            st.error(t("accounts.kiosk.pin_mismatch"))
        else:
            def set_pin() -> list[tuple[str, str]]:
                with unit_of_work(auth.database_url()) as session:
                    tenants.set_pin(session, operator=auth.current_operator(session),
                                    account_id=account.id, pin=pin, now=auth.utcnow())
                return [("success", t("accounts.kiosk.pin_set", number=account.number))]

            _act(set_pin, {"accounts_pin": "", "accounts_pin_confirm": ""})
    if not may_control:
        return
    with st.form("accounts_tenant_control_form"):
        allowed = st.checkbox(t("accounts.kiosk.control"), value=status.tenant_control,
                              key="accounts_tenant_control")
        saved = st.form_submit_button(t("accounts.kiosk.save_control"),
                                      key="accounts_tenant_control_submit")
    if saved:
        def save() -> list[tuple[str, str]]:
            with unit_of_work(auth.database_url()) as session:
                tenants.set_tenant_control(session, operator=auth.current_operator(session),
                                           account_id=account.id, allowed=allowed,
                                           now=auth.utcnow())
            key = "accounts.kiosk.control_on" if allowed else "accounts.kiosk.control_off"
            return [("success", t(key, number=account.number))]

        _act(save, {})


def _close_account(detail: Detail) -> None:
    account = detail.account
    close_key = st.session_state.setdefault(CLOSE_KEY, str(uuid.uuid4()))
    st.caption(t("accounts.close.help"))
    with st.form("accounts_close"):
        readings = {
            m.id: st.text_input(t("accounts.close.reading", meter=meter_label(m.serial, m.unit)),
                                key=f"accounts_close_reading_{m.id}", placeholder="12345.67")
            for m in detail.meters
        }
        method = st.radio(t("accounts.close.method"), sales.REFUND_METHODS,
                          format_func=method_label, horizontal=True,
                          key="accounts_close_method")
        note = st.text_input(t("accounts.close.note"), key="accounts_close_note")
        confirmed = st.checkbox(t("accounts.close.confirm", number=account.number),
                                key="accounts_close_confirm")
        submitted = st.form_submit_button(t("accounts.close.submit"), type="primary",
                                          key="accounts_close_submit")
    if not submitted:
        return
    if not confirmed:
        st.error(t("accounts.confirm_first"))
        return
    serials = {m.id: m.serial for m in detail.meters}

    def close() -> list[tuple[str, str]]:
        settings = get_settings()
        finals = {
            meter_id: energy
            for meter_id, text in readings.items()
            if (energy := accounts.parse_reading(text, serials[meter_id])) is not None
        }
        with unit_of_work(settings.database_url) as session:
            result = accounts.close_account(
                session, account_id=account.id, operator=auth.current_operator(session),
                now=auth.utcnow(), policy=auth.policy(session),
                idempotency_key=close_key, final_readings=finals, refund_method=str(method),
                note=note,
            )
            notes = command_notes(result.commands)
        st.session_state[CLOSE_KEY] = str(uuid.uuid4())
        return [("success", t("accounts.close.done", number=account.number))] + [
            ("info", n) for n in notes
        ]

    # Show the closed account: it has left the list of open ones.
    _act(close, {"accounts_status": "all", "accounts_close_confirm": False})


def _closing_record(closing: ClosingRow) -> None:
    h = headers()
    st.markdown(f"**{t('accounts.closing')}**")
    fields = [
        (t("accounts.closing.at", **h), local_time(closing.closed_at)),
        (t("accounts.closing.operator"), closing.operator),
        (t("accounts.closing.final", **h), format_money(closing.final_balance)),
        (t("accounts.closing.refunded", **h), format_money(closing.refunded)),
        (t("accounts.closing.debt", **h), format_money(closing.debt)),
        (t("accounts.closing.meters"), closing.meters or "-"),
        (t("accounts.closing.receipt"), closing.receipt_no or "-"),
        (t("accounts.closing.note"), closing.note or "-"),
    ]
    st.markdown("\n".join(f"- {label}: **{value}**" for label, value in fields))
    if closing.debt > 0:
        st.warning(t("accounts.closing.debt_warning", debt=money(closing.debt)))
    if closing.refund_entry_id is not None and closing.receipt_no:
        receipt_button(closing.refund_entry_id, closing.receipt_no,
                       key="accounts_closing_receipt")


def _replacements(rows: list[views.ReplacementRow]) -> None:
    h = headers()
    st.markdown(f"**{t('accounts.replacements')}**")
    columns = [
        TableColumn("at", t("accounts.rcol.at", **h), "time"),
        TableColumn("old_meter", t("accounts.rcol.old")),
        TableColumn("new_meter", t("accounts.rcol.new")),
        TableColumn("old_final_energy_kwh", t("accounts.rcol.reading"), "energy"),
        TableColumn("value_transferred", t("accounts.rcol.value", **h), "money"),
        TableColumn("operator", t("accounts.rcol.operator")),
    ]
    records = [
        {"at": r.at, "old_meter": r.old_meter, "new_meter": r.new_meter,
         "old_final_energy_kwh": r.old_final_energy_kwh,
         "value_transferred": r.value_transferred, "operator": r.operator}
        for r in rows
    ]
    show_table(records, columns, key="accounts_replacements",
               file_name="meter-replacements.xlsx", sheet=t("accounts.replacements"))


def _ledger(entries: list[EntryRow]) -> None:
    st.markdown(f"**{t('accounts.ledger')}**")
    st.checkbox(t("accounts.money_only"), value=True, key="accounts_money_only")
    if not entries:
        st.info(t("accounts.ledger_empty"))
        return
    columns = entry_columns(with_account=False)
    columns[3:3] = [
        TableColumn("meter", t("accounts.ecol.meter")),
        TableColumn("energy_kwh", t("accounts.ecol.energy"), "energy"),
    ]
    show_table([entry_record(e) for e in entries], columns, key="accounts_ledger",
               file_name="account-ledger.xlsx", sheet=t("accounts.ledger"))


if __name__ == "__main__":
    render()
