"""Typed settings from the environment and an optional `.env` file."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing.policy import BillingPolicy
from notify.quiet import QuietHours

ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = ROOT / "var"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field(default=f"sqlite:///{VAR_DIR / 'voltpay.db'}")
    # Empty selects the embedded SQL store (readings in DATABASE_URL); an http(s) URL selects
    # InfluxDB through its v1-compatible API, e.g. http://user:pass@127.0.0.1:8086/voltpay.
    timeseries_url: str = ""
    site_tz: str = "Asia/Shanghai"
    currency: str = "CNY"
    site_name: str = "Voltpay demo mall"
    default_price_per_kwh: Decimal = Decimal("1.2000")
    max_sale_amount: Decimal = Decimal("50000.00")
    hoarding_limit: Decimal = Decimal("100000.00")
    alarm1_amount: Decimal = Decimal("50.00")
    alarm2_amount: Decimal = Decimal("20.00")
    overload_kw: Decimal = Decimal("30.00")
    # Power must stay above a meter's overload threshold this long before an overload alarm.
    overload_sustain_s: float = 300.0
    collect_interval_s: float = 1800.0
    # Readings InfluxDB cannot take (it is down) wait here, on disk, in order.
    spool_dir: str = str(VAR_DIR / "spool")
    # 数据转存: readings older than this many local days are rolled up per meter per day.
    archive_after_days: int = 90
    command_ttl_s: float = 600.0
    modbus_timeout_s: float = 1.0
    modbus_retries: int = 1
    simulator_speed: float = 1.0
    admin_password: str = Field(default="", alias="VOLTPAY_ADMIN_PASSWORD")
    # An operator idle this long is logged out on the next interaction.
    session_timeout_min: int = Field(default=30, ge=1)
    # This many wrong passwords in a row lock the operator for login_lock_minutes.
    login_lock_attempts: int = Field(default=5, ge=1)
    login_lock_minutes: int = Field(default=15, ge=1)
    dashboard_port: int = 8501
    # The tenants' kiosk and phone pages (app/kiosk/), on their own port.
    kiosk_port: int = 8502
    # Every kiosk session is in kiosk mode (a shared touch screen): a tenant idle this long is
    # signed out. Otherwise only pages opened with ?mode=kiosk are; phones use the operators'
    # SESSION_TIMEOUT_MIN.
    kiosk_mode: bool = False
    kiosk_idle_s: int = Field(default=120, ge=10)
    # The demo site's gateways listen on 127.0.0.1 from this port on (one port per gateway).
    demo_first_port: int = 15021

    # Notifications (notify/). Every channel given here is active: a phone number goes by the
    # modem or the HTTP SMS service (NOTIFY_SMS_FIRST first, the other if it fails), an email
    # address by SMTP.
    notify_modem_port: str = ""
    notify_modem_baudrate: int = 115200
    notify_modem_timeout_s: float = Field(default=30.0, gt=0)
    notify_http_url: str = ""
    notify_http_method: str = "POST"
    # {recipient} and {text} are filled in; JSON (placeholders inside its strings), or
    # name=value&... for form and query.
    notify_http_body: str = '{"to": "{recipient}", "text": "{text}"}'
    notify_http_body_format: Literal["json", "form", "query"] = "json"
    notify_http_token: str = ""
    notify_http_user: str = ""
    notify_http_password: str = ""
    notify_http_headers: dict[str, str] = Field(default_factory=dict)
    # e.g. code=0: the JSON reply must carry this for a message to count as sent.
    notify_http_success_field: str = ""
    notify_http_timeout_s: float = Field(default=10.0, gt=0)
    notify_sms_first: Literal["modem", "http_sms"] = "modem"
    notify_smtp_host: str = ""
    notify_smtp_port: int = 587
    notify_smtp_security: Literal["starttls", "ssl", "plain"] = "starttls"
    notify_smtp_user: str = ""
    notify_smtp_password: str = ""
    notify_smtp_from: str = ""
    notify_smtp_subject: str = ""
    notify_smtp_timeout_s: float = Field(default=30.0, gt=0)
    # Non-urgent messages wait while it is between these local times (SITE_TZ), e.g. 22:00-08:00.
    notify_quiet_hours: str = ""
    notify_max_attempts: int = Field(default=8, ge=1)
    notify_retry_s: float = Field(default=30.0, gt=0)
    notify_sending_timeout_s: float = Field(default=600.0, gt=0)
    notify_poll_s: float = Field(default=5.0, gt=0)
    # Operator alerts (gateway lost, command failed) go here, in this language.
    notify_alarm_phone: str = ""
    notify_alarm_email: str = ""
    notify_operator_language: Literal["en", "zh"] = "zh"

    # Online recharge (payments/) and the HTTP API (api/). PAY_PROVIDER: none, sandbox (the
    # demo's stand-in, `voltpay run` picks it when unset) or alipay.
    pay_provider: Literal["none", "sandbox", "alipay"] = "none"
    # qr: alipay.trade.precreate (a code to scan); page / wap: a signed pay URL to open.
    pay_mode: Literal["qr", "page", "wap"] = "qr"
    # Where the provider posts notifications: our API as the internet reaches it. Empty:
    # http://127.0.0.1:API_PORT/pay/notify/<provider>, which only a local sandbox can reach.
    pay_notify_url: str = ""
    pay_return_url: str = ""
    # An order not paid within this many minutes is closed at the provider and here.
    pay_order_timeout_min: int = Field(default=15, ge=1)
    # Unpaid orders older than this are asked about every PAY_POLL_INTERVAL_S (the fallback
    # when the provider's notifications cannot reach the site).
    pay_poll_after_s: float = Field(default=60.0, gt=0)
    pay_poll_interval_s: float = Field(default=30.0, gt=0)
    alipay_app_id: str = ""
    alipay_gateway_url: str = "https://openapi.alipay.com/gateway.do"
    # Our application private key and Alipay's public key: PEM or the console's base64 text,
    # inline or in a file.
    alipay_private_key: str = ""
    alipay_private_key_file: str = ""
    alipay_public_key: str = ""
    alipay_public_key_file: str = ""
    # The sandbox provider's gateway and pay pages; its keys are generated here on first run.
    pay_sandbox_host: str = "127.0.0.1"
    pay_sandbox_port: int = 8010
    pay_sandbox_dir: str = str(VAR_DIR / "pay-sandbox")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Bearer tokens integrations present to the API, comma-separated; empty: no one gets in.
    api_tokens: str = ""

    @field_validator("site_tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)  # raises for an unknown zone name
        return value

    @field_validator("archive_after_days")
    @classmethod
    def _keep_today(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1 (today's readings always stay hot)")
        return value

    @field_validator("collect_interval_s")
    @classmethod
    def _positive_interval(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("notify_quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        QuietHours.parse(value)  # raises with the expected form
        return value

    @property
    def notify_configured(self) -> bool:
        return bool(self.notify_modem_port or self.notify_http_url or self.notify_smtp_host)

    @property
    def api_token_list(self) -> list[str]:
        return [token.strip() for token in self.api_tokens.split(",") if token.strip()]

    @property
    def notify_url(self) -> str:
        return self.pay_notify_url or (
            f"http://127.0.0.1:{self.api_port}/pay/notify/{self.pay_provider}"
        )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.site_tz)

    def billing_policy(self) -> BillingPolicy:
        return BillingPolicy(
            tz=self.tz,
            default_price_per_kwh=self.default_price_per_kwh,
            max_sale_amount=self.max_sale_amount,
            hoarding_limit=self.hoarding_limit,
            alarm1_amount=self.alarm1_amount,
            alarm2_amount=self.alarm2_amount,
            overload_kw=self.overload_kw,
            overload_sustain=timedelta(seconds=self.overload_sustain_s),
            command_ttl=timedelta(seconds=self.command_ttl_s),
            currency=self.currency,
            alert_recipients=tuple(
                r for r in (self.notify_alarm_phone, self.notify_alarm_email) if r.strip()
            ),
            alert_language=self.notify_operator_language,
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
