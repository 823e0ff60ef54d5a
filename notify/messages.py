"""What tenants and operators are told, in English and Simplified Chinese.

Each function returns the text of one message; the caller queues it with notify.outbox.enqueue
in the tenant's (or the operators') language. Amounts are shown to the cent.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

LANGUAGES = ("en", "zh")

_LEVELS = {
    "en": {"alarm1": "low", "alarm2": "very low"},
    "zh": {"alarm1": "偏低", "alarm2": "严重不足"},
}

_COMMANDS = {
    "en": {"trip": "trip", "close": "close", "protect_on": "power-protect on",
           "protect_off": "restore prepaid", "price": "price dispatch",
           "settings": "settings dispatch"},
    "zh": {"trip": "拉闸", "close": "合闸", "protect_on": "保电", "protect_off": "取消保电",
           "price": "电价下发", "settings": "参数下发"},
}


def _language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"no messages in language {language!r}; one of {', '.join(LANGUAGES)}")
    return language


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):,}"


def _days(days_left: Decimal | None, language: str) -> str:
    if days_left is None:
        return ""
    if language == "zh":
        return f"，预计可用{days_left}天"
    return f", enough for about {days_left} days"


def balance_level(
    level: str, language: str, *, account: str, balance: Decimal, days_left: Decimal | None,
    currency: str,
) -> str:
    """The balance fell to alarm 1 or alarm 2, or to zero (arrears)."""
    if _language(language) == "zh":
        if level == "arrears":
            return f"账户{account}已欠费，余额{_money(balance)}{currency}，请尽快充值以免停电。"
        return (f"账户{account}余额{_LEVELS['zh'][level]}：{_money(balance)}{currency}"
                f"{_days(days_left, 'zh')}，请及时充值。")
    if level == "arrears":
        return (f"Account {account} is in arrears: balance {_money(balance)} {currency}. "
                "Please recharge now to keep your power on.")
    return (f"Account {account}: balance {_LEVELS['en'][level]}, {_money(balance)} {currency}"
            f"{_days(days_left, 'en')}. Please recharge.")


def arrears_trip(language: str, *, account: str, balance: Decimal, currency: str) -> str:
    """The meters of an account in arrears were switched off."""
    if _language(language) == "zh":
        return (f"账户{account}欠费{_money(-balance)}{currency}，已停止供电。"
                "充值后将自动恢复供电。")
    return (f"Account {account} owes {_money(-balance)} {currency}: power has been switched "
            "off. It comes back on by itself once you recharge.")


def recharge(
    language: str, *, account: str, amount: Decimal, balance: Decimal,
    days_left: Decimal | None, currency: str,
) -> str:
    """Confirmation of a sale (充值)."""
    if _language(language) == "zh":
        return (f"账户{account}充值{_money(amount)}{currency}成功，当前余额"
                f"{_money(balance)}{currency}{_days(days_left, 'zh')}。")
    return (f"Account {account}: recharge of {_money(amount)} {currency} received. Balance "
            f"{_money(balance)} {currency}{_days(days_left, 'en')}.")


def gateway_lost(language: str, *, gateway: str, since: datetime) -> str:
    """Operators: a gateway stopped answering (`since` in site-local time)."""
    at = since.strftime("%Y-%m-%d %H:%M")
    if _language(language) == "zh":
        return f"通讯管理机{gateway}自{at}起失去联系，请检查网络和供电。"
    return f"Gateway {gateway} has not answered since {at}. Check its network and power."


def command_failed(language: str, *, meter: str, command: str, reason: str) -> str:
    """Operators: a command to a meter failed or expired unconfirmed."""
    if _language(language) == "zh":
        return f"电表{meter}的{_COMMANDS['zh'].get(command, command)}命令失败：{reason}"
    return f"The {_COMMANDS['en'].get(command, command)} command to meter {meter} failed: {reason}"
