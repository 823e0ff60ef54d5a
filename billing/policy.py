"""The site's money rules that come from settings, passed to every billing service."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class BillingPolicy:
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    default_price_per_kwh: Decimal = Decimal("1.2000")
    max_sale_amount: Decimal = Decimal("50000.00")
    # 囤积金额上限: the most an account may hold after a sale.
    hoarding_limit: Decimal = Decimal("100000.00")
    alarm1_amount: Decimal = Decimal("50.00")
    alarm2_amount: Decimal = Decimal("20.00")
    overload_kw: Decimal = Decimal("30.00")  # default power threshold dispatched to meters
    overload_sustain: timedelta = timedelta(minutes=5)  # over the threshold this long: alarm
    command_ttl: timedelta = timedelta(minutes=10)
    currency: str = "CNY"
    # Operator alerts (gateway lost, command failed): phone numbers and email addresses.
    alert_recipients: tuple[str, ...] = ()
    alert_language: str = "zh"
