"""Quiet hours, retry back-off, recipients and message texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from notify import messages
from notify.outbox import normalise_recipient
from notify.quiet import QuietHours
from notify.sender import RetryPolicy

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 2, hour, minute, tzinfo=SHANGHAI)


def test_quiet_hours_across_midnight_in_site_time() -> None:
    quiet = QuietHours.parse("22:00-08:00")
    assert quiet is not None
    assert [quiet.contains(local(h, m), SHANGHAI) for h, m in
            [(21, 59), (22, 0), (3, 0), (7, 59), (8, 0), (12, 0)]] == [
        False, True, True, True, False, False]
    # 14:30 UTC is 22:30 in Shanghai.
    assert quiet.contains(datetime(2026, 11, 2, 14, 30, tzinfo=UTC), SHANGHAI)


def test_quiet_hours_within_a_day_and_none() -> None:
    quiet = QuietHours.parse("12:00-13:30")
    assert quiet is not None
    assert [quiet.contains(local(h, m), SHANGHAI) for h, m in [(11, 59), (12, 0), (13, 30)]] == [
        False, True, False]
    assert QuietHours.parse("  ") is None
    with pytest.raises(ValueError, match="same time"):
        QuietHours.parse("08:00-08:00")


def test_back_off_doubles_up_to_an_hour() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n).total_seconds() for n in range(1, 10)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert policy.delay(1) == timedelta(seconds=30)


@pytest.mark.parametrize(("given", "normalised"), [
    ("+86 138-0013-8000", "+8613800138000"),
    ("(021) 6888 1234", "02168881234"),
    ("ops@mall.example", "ops@mall.example"),
    ("ops@mall", None),
    ("call me", None),
])
def test_recipients(given: str, normalised: str | None) -> None:
    assert normalise_recipient(given) == normalised


def test_recharge_confirmation_in_both_languages() -> None:
    values = {"account": "10001", "amount": Decimal("200"), "balance": Decimal("1245.2"),
              "days_left": Decimal("12.4"), "currency": "CNY"}
    assert messages.recharge("en", **values) == (
        "Account 10001: recharge of 200.00 CNY received. Balance 1,245.20 CNY, enough for "
        "about 12.4 days.")
    assert messages.recharge("zh", **values) == (
        "账户10001充值200.00CNY成功，当前余额1,245.20CNY，预计可用12.4天。")


def test_level_and_trip_texts() -> None:
    assert messages.balance_level("alarm1", "en", account="10001", balance=Decimal("45.2"),
                                  days_left=None, currency="CNY") == (
        "Account 10001: balance low, 45.20 CNY. Please recharge.")
    assert messages.balance_level("arrears", "zh", account="10001", balance=Decimal("-3"),
                                  days_left=Decimal(0), currency="元") == (
        "账户10001已欠费，余额-3.00元，请尽快充值以免停电。")
    assert messages.arrears_trip("en", account="10001", balance=Decimal("-3.5"),
                                 currency="CNY") == (
        "Account 10001 owes 3.50 CNY: power has been switched off. It comes back on by itself "
        "once you recharge.")
    with pytest.raises(ValueError, match="no messages in language 'fr'"):
        messages.arrears_trip("fr", account="1", balance=Decimal(0), currency="CNY")
