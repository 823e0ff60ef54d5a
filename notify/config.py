"""The channels and the sender as the settings describe them (NOTIFY_* in the environment)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from notify.channels import Channel
from notify.channels.gsm import GsmModem
from notify.channels.http_sms import HttpSms
from notify.channels.mail import SmtpMail
from notify.quiet import QuietHours
from notify.sender import RetryPolicy, Router, Sender

if TYPE_CHECKING:
    from voltpay.settings import Settings


def configured_channels(settings: Settings) -> list[Channel]:
    """Every configured channel; SMS channels in the order they are tried."""
    sms: list[Channel] = []
    if settings.notify_modem_port:
        sms.append(GsmModem(settings.notify_modem_port, baudrate=settings.notify_modem_baudrate,
                            timeout_s=settings.notify_modem_timeout_s))
    if settings.notify_http_url:
        sms.append(HttpSms(
            settings.notify_http_url,
            method=settings.notify_http_method,
            body=settings.notify_http_body,
            body_format=settings.notify_http_body_format,
            token=settings.notify_http_token,
            username=settings.notify_http_user,
            password=settings.notify_http_password,
            headers=settings.notify_http_headers,
            success_field=settings.notify_http_success_field,
            timeout_s=settings.notify_http_timeout_s,
        ))
    sms.sort(key=lambda channel: channel.name != settings.notify_sms_first)
    channels = sms
    if settings.notify_smtp_host:
        channels.append(SmtpMail(
            settings.notify_smtp_host,
            port=settings.notify_smtp_port,
            security=settings.notify_smtp_security,
            username=settings.notify_smtp_user,
            password=settings.notify_smtp_password,
            sender=settings.notify_smtp_from,
            subject=settings.notify_smtp_subject or settings.site_name,
            timeout_s=settings.notify_smtp_timeout_s,
        ))
    return channels


def sender_from_settings(settings: Settings) -> Sender:
    return Sender(
        settings.database_url,
        Router(configured_channels(settings)),
        tz=settings.tz,
        quiet_hours=QuietHours.parse(settings.notify_quiet_hours),
        policy=RetryPolicy(
            max_attempts=settings.notify_max_attempts,
            first_retry=timedelta(seconds=settings.notify_retry_s),
            sending_timeout=timedelta(seconds=settings.notify_sending_timeout_s),
        ),
    )
