"""Notifications end to end: the outbox on SQLite and PostgreSQL, the sender loop, and every
channel against a stand-in that speaks the real protocol — a GSM modem on a pseudo-terminal, an
HTTP SMS service and an SMTP server on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from notify import messages, outbox
from notify.channels import Channel
from notify.channels.gsm import GsmModem
from notify.channels.http_sms import HttpSms
from notify.channels.mail import SmtpMail
from notify.quiet import QuietHours
from notify.sender import RetryPolicy, Router, Sender, attempts_of
from schema.db import unit_of_work
from schema.models import Account, OutboxMessage
from tests.gsm_modem import ModemEmulator
from tests.notify_servers import self_signed_certificate, sms_service, smtp_server

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
PHONE = "+8613800138000"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def modem() -> Iterator[ModemEmulator]:
    emulator = ModemEmulator()
    yield emulator
    emulator.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


def sender(db_url: str, clock: Clock, *channels: Channel, **options: object) -> Sender:
    return Sender(db_url, Router(channels), tz=SHANGHAI, clock=clock, **options)


def queue(db_url: str, *, text: str = "Your balance is low.", recipient: str = PHONE,
          key: str = "k1", urgent: bool = True, now: datetime = T0,
          kind: str = "alarm1") -> int:
    with unit_of_work(db_url) as session:
        message = outbox.enqueue(session, recipient=recipient, kind=kind, text=text,
                                 language="en", dedupe_key=key, urgent=urgent, now=now)
        assert message is not None
        return message.id


def state_of(db_url: str, message_id: int) -> OutboxMessage:
    with unit_of_work(db_url) as session:
        return session.get_one(OutboxMessage, message_id)


def test_a_modem_failure_then_recovery_delivers_exactly_once(
    db_url: str, modem: ModemEmulator, clock: Clock
) -> None:
    loop = sender(db_url, clock, GsmModem(modem.port, timeout_s=0.5))
    message_id = queue(db_url, text="Account 10001: balance low, 45.20 CNY.")
    modem.fail_next(1)

    assert loop.run_once() == 1
    assert modem.arrived == []
    failed = state_of(db_url, message_id)
    assert (failed.state, failed.attempts) == ("queued", 1)
    assert failed.last_error == "the modem answered sending the message text with +CMS ERROR: 500"
    assert failed.next_attempt_at == T0 + timedelta(seconds=30)

    assert loop.run_once() == 0  # not due yet: nothing is sent early
    clock.advance(timedelta(seconds=30))
    assert loop.run_once() == 1
    for _ in range(3):
        clock.advance(timedelta(hours=1))
        assert loop.run_once() == 0

    assert [(a.number, a.text) for a in modem.arrived] == [
        (PHONE, "Account 10001: balance low, 45.20 CNY.")]
    sent = state_of(db_url, message_id)
    assert (sent.state, sent.sent_at, sent.reference, sent.last_error) == (
        "sent", T0 + timedelta(seconds=30), "1", "")
    with unit_of_work(db_url) as session:
        assert [(a.channel, a.ok) for a in attempts_of(session, message_id)] == [
            ("modem", False), ("modem", True)]


def test_a_silent_modem_times_out_and_is_used_again_when_it_answers(
    db_url: str, modem: ModemEmulator, clock: Clock
) -> None:
    loop = sender(db_url, clock, GsmModem(modem.port, timeout_s=0.3))
    message_id = queue(db_url)
    modem.go_silent()
    loop.run_once()
    assert "did not answer AT within 0.3 s" in state_of(db_url, message_id).last_error
    modem.go_silent(False)
    clock.advance(timedelta(minutes=1))
    loop.run_once()
    assert [a.text for a in modem.arrived] == ["Your balance is low."]
    assert state_of(db_url, message_id).state == "sent"


def test_chinese_text_survives_the_round_trip_through_pdu_mode(
    db_url: str, modem: ModemEmulator, clock: Clock
) -> None:
    text = messages.balance_level("alarm2", "zh", account="10001", balance=Decimal("18.5"),
                                  days_left=Decimal("1.6"), currency="元")
    assert text == "账户10001余额严重不足：18.50元，预计可用1.6天，请及时充值。"
    queue(db_url, text=text, kind="alarm2")
    sender(db_url, clock, GsmModem(modem.port, timeout_s=1)).run_once()
    assert [(a.number, a.text, a.mode, a.parts) for a in modem.arrived] == [
        (PHONE, text, "pdu", 1)]
    assert "AT+CMGF=0" in modem.commands


def test_a_message_longer_than_one_sms_arrives_whole(
    db_url: str, modem: ModemEmulator, clock: Clock
) -> None:
    text = "。".join(f"第{n}条：账户10001已欠费，请尽快充值以免停电" for n in range(1, 9))
    assert len(text) > 2 * 67
    message_id = queue(db_url, text=text)
    sender(db_url, clock, GsmModem(modem.port, timeout_s=1)).run_once()
    [arrived] = modem.arrived
    assert (arrived.text, arrived.parts) == (text, -(-len(text) // 67))
    # One +CMGS message reference per part.
    assert len(state_of(db_url, message_id).reference.split(",")) == arrived.parts


def test_http_sms_service_gets_the_configured_json_body_and_token(
    db_url: str, clock: Clock
) -> None:
    with sms_service() as service:
        channel = HttpSms(service.url, token="s3cret", success_field="code=0",
                          body='{"mobile": "{recipient}", "content": "{text}", "sign": "Voltpay"}')
        text = 'Account "10001": recharge of 200.00 CNY received.\n余额 245.20'
        message_id = queue(db_url, text=text, kind="recharge")
        sender(db_url, clock, channel).run_once()
    [request] = service.requests
    assert (request.method, request.path) == ("POST", "/sms/send")
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.json() == {"mobile": PHONE, "content": text, "sign": "Voltpay"}
    sent = state_of(db_url, message_id)
    assert (sent.state, sent.reference) == ("sent", '{"code": 0, "id": "msg-1"}')


def test_http_sms_form_body_with_basic_auth_and_its_refusals_reported(
    db_url: str, clock: Clock
) -> None:
    with sms_service() as service:
        channel = HttpSms(service.url, body="to={recipient}&msg={text}&from=VP",
                          body_format="form", username="site", password="pw",
                          success_field="result.status=ok")
        service.replies = [(503, "busy, try later"),
                           (200, '{"result": {"status": "rejected", "why": "bad number"}}'),
                           (200, '{"result": {"status": "ok"}}')]
        message_id = queue(db_url, text="充值成功")
        loop = sender(db_url, clock, channel)
        for _ in range(3):
            loop.run_once()
            clock.advance(timedelta(minutes=5))
    assert [r.form() for r in service.requests] == [
        {"to": PHONE, "msg": "充值成功", "from": "VP"}] * 3
    assert service.requests[0].headers["authorization"] == "Basic c2l0ZTpwdw=="
    with unit_of_work(db_url) as session:
        assert [(a.ok, a.reply) for a in attempts_of(session, message_id)] == [
            (False, "SMS service answered HTTP 503: busy, try later"),
            (False, 'SMS service answered HTTP 200 with result.status=rejected: '
                    '{"result": {"status": "rejected", "why": "bad number"}}'),
            (True, '{"result": {"status": "ok"}}'),
        ]


def test_a_phone_message_falls_back_to_the_other_sms_channel(
    db_url: str, modem: ModemEmulator, clock: Clock
) -> None:
    modem.go_silent()
    with sms_service() as service:
        message_id = queue(db_url)
        sender(db_url, clock, GsmModem(modem.port, timeout_s=0.3),
               HttpSms(service.url)).run_once()
    assert [r.json()["text"] for r in service.requests] == ["Your balance is low."]
    assert state_of(db_url, message_id).state == "sent"
    with unit_of_work(db_url) as session:
        assert [(a.channel, a.ok) for a in attempts_of(session, message_id)] == [
            ("modem", False), ("http_sms", True)]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_arrives_with_its_subject_and_utf8_text(db_url: str, clock: Clock) -> None:
    with smtp_server(users={"voltpay": "mail-pw"}) as server:
        channel = SmtpMail(server.host, port=server.port, security="plain",
                           username="voltpay", password="mail-pw",
                           sender="alerts@voltpay.example", subject="电费提醒 Voltpay")
        text = messages.gateway_lost("zh", gateway="GW-02",
                                     since=datetime(2026, 11, 2, 9, 30, tzinfo=SHANGHAI))
        message_id = queue(db_url, recipient="ops@mall.example", text=text, kind="gateway_lost")
        sender(db_url, clock, channel).run_once()
        [mail] = server.mails
    assert (mail.mail_from, mail.rcpt_tos, mail.login) == (
        "alerts@voltpay.example", ["ops@mall.example"], "voltpay")
    assert mail.message["Subject"] == "电费提醒 Voltpay"
    assert mail.message.get_content().strip() == (
        "通讯管理机GW-02自2026-11-02 09:30起失去联系，请检查网络和供电。")
    assert state_of(db_url, message_id).reference == mail.message["Message-ID"]


def test_email_over_starttls_and_a_wrong_password_reported(
    sqlite_url: str, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts our test certificate
    with smtp_server(users={"voltpay": "mail-pw"}, tls=(cert, key)) as server:
        good = SmtpMail(server.host, port=server.port, security="starttls", username="voltpay",
                        password="mail-pw", sender="alerts@voltpay.example", subject="Voltpay")
        bad = SmtpMail(server.host, port=server.port, security="starttls", username="voltpay",
                       password="wrong", sender="alerts@voltpay.example", subject="Voltpay")
        first = queue(sqlite_url, recipient="a@mall.example", text="hello", key="a")
        sender(sqlite_url, clock, good).run_once()
        second = queue(sqlite_url, recipient="b@mall.example", text="hello", key="b")
        sender(sqlite_url, clock, bad).run_once()
        assert [m.rcpt_tos for m in server.mails] == [["a@mall.example"]]
    assert state_of(sqlite_url, first).state == "sent"
    refused = state_of(sqlite_url, second)
    assert refused.state == "queued"
    assert refused.last_error.startswith(f"SMTP server 127.0.0.1:{server.port} refused the mail")
    assert "535" in refused.last_error


def test_a_duplicate_key_enqueues_nothing_until_the_condition_clears(db_url: str) -> None:
    with unit_of_work(db_url) as session:
        account = Account(number="10001", tenant_name="福满面馆", phone="138 0013 8000",
                          opened_at=T0)
        session.add(account)
        session.flush()

        def tell(level: str) -> OutboxMessage | None:
            return outbox.enqueue(
                session, recipient=account.phone, kind=level, text=f"{level}!",
                language=account.language, dedupe_key=outbox.level_key(account.id, level),
                urgent=level == "arrears", now=T0, account_id=account.id)

        first = tell("alarm1")
        assert first is not None and first.recipient == "13800138000"
        assert first.language == "zh"  # a tenant is told things in Chinese unless set otherwise
        assert tell("alarm1") is None
        # The conflict left the caller's transaction usable: it goes on and commits.
        assert tell("alarm2") is not None
        assert tell("arrears") is not None
        # Recharged back to alarm 1: alarm 2 and arrears clear (still queued: cancelled).
        assert outbox.clear_levels_above(session, account_id=account.id, level="alarm1",
                                         now=T0) == 2
        assert tell("alarm1") is None
        assert tell("alarm2") is not None
        account_id = account.id
    with unit_of_work(db_url) as session:
        rows = session.execute(
            select(OutboxMessage.kind, OutboxMessage.state, OutboxMessage.cleared_at.is_(None))
            .where(OutboxMessage.account_id == account_id).order_by(OutboxMessage.id)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("alarm1", "queued", True), ("alarm2", "cancelled", False),
        ("arrears", "cancelled", False), ("alarm2", "queued", True)]


def test_an_account_without_a_phone_queues_nothing_and_a_bad_address_is_reported(
    db_url: str,
) -> None:
    with unit_of_work(db_url) as session:
        assert outbox.enqueue(session, recipient="", kind="recharge", text="x", language="en",
                              dedupe_key="sale:1", urgent=True, now=T0) is None
        bad = outbox.enqueue(session, recipient="call me", kind="recharge", text="x",
                             language="en", dedupe_key="sale:2", urgent=True, now=T0)
        assert bad is not None
        assert [(m.recipient, m.state, m.last_error) for m in outbox.failed_messages(session)] \
            == [("call me", "failed", "not a phone number or an email address")]


def test_a_non_urgent_message_waits_out_quiet_hours_while_an_urgent_one_goes(
    db_url: str, modem: ModemEmulator
) -> None:
    night = datetime(2026, 11, 2, 23, 0, tzinfo=SHANGHAI)
    clock = Clock(night.astimezone(UTC))
    loop = sender(db_url, clock, GsmModem(modem.port, timeout_s=1),
                  quiet_hours=QuietHours.parse("22:00-08:00"))
    queue(db_url, text="Balance low", key="low", urgent=False, now=clock.now)
    queue(db_url, text="Power off: in arrears", key="trip", urgent=True, now=clock.now)
    loop.run_once()
    assert [a.text for a in modem.arrived] == ["Power off: in arrears"]
    clock.now = datetime(2026, 11, 3, 7, 59, tzinfo=SHANGHAI).astimezone(UTC)
    assert loop.run_once() == 0
    clock.now = datetime(2026, 11, 3, 8, 0, tzinfo=SHANGHAI).astimezone(UTC)
    assert loop.run_once() == 1
    assert [a.text for a in modem.arrived] == ["Power off: in arrears", "Balance low"]


def test_a_message_that_keeps_failing_ends_failed_and_is_reported(
    db_url: str, modem: ModemEmulator, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    loop = sender(db_url, clock, GsmModem(modem.port, timeout_s=1),
                  policy=RetryPolicy(max_attempts=3))
    message_id = queue(db_url)
    modem.fail_next(10, "+CMS ERROR: 38")
    for delay in (0, 30, 60, 120):  # back-off doubles
        clock.advance(timedelta(seconds=delay))
        loop.run_once()
    assert modem.arrived == []
    with unit_of_work(db_url) as session:
        [failed] = outbox.failed_messages(session)
        assert (failed.id, failed.attempts) == (message_id, 3)
        assert failed.last_error == ("gave up after 3 attempts: the modem answered sending the "
                                     "message text with +CMS ERROR: 38")
        assert len(attempts_of(session, message_id)) == 3
    assert f"message {message_id} (alarm1 to {PHONE}) failed: gave up" in caplog.text


def test_a_message_past_its_expiry_fails(db_url: str, modem: ModemEmulator, clock: Clock) -> None:
    message_id = queue(db_url, urgent=False)
    clock.advance(timedelta(hours=25))
    sender(db_url, clock, GsmModem(modem.port, timeout_s=1)).run_once()
    assert modem.arrived == []
    expired = state_of(db_url, message_id)
    assert (expired.state, expired.last_error) == ("failed", "expired before it could be sent")


class Crash(BaseException):
    """The process dies in the middle of a send."""


class CrashingChannel:
    name = "modem"

    def send(self, recipient: str, text: str) -> str:
        raise Crash

    def close(self) -> None:
        pass


def test_a_crash_mid_send_is_never_sent_again_but_reported(
    db_url: str, modem: ModemEmulator, clock: Clock
) -> None:
    """The sender died after handing the message over: it may have gone out, so it is not sent
    a second time; once the claim lapses it is reported as failed for an operator to check."""
    message_id = queue(db_url)
    with pytest.raises(Crash):
        sender(db_url, clock, CrashingChannel()).run_once()
    assert state_of(db_url, message_id).state == "sending"

    restarted = sender(db_url, clock, GsmModem(modem.port, timeout_s=1))
    clock.advance(timedelta(minutes=9))
    assert restarted.run_once() == 0  # it may still be in flight
    clock.advance(timedelta(minutes=1, seconds=30))
    for _ in range(3):
        restarted.run_once()
        clock.advance(timedelta(hours=1))
    assert modem.arrived == []
    failed = state_of(db_url, message_id)
    assert failed.state == "failed" and "may or may not have gone out" in failed.last_error
    with unit_of_work(db_url) as session:
        assert [(a.channel, a.ok) for a in attempts_of(session, message_id)] == [
            ("unknown", False)]
        assert [m.id for m in outbox.failed_messages(session)] == [message_id]


def test_two_senders_share_the_queue_and_send_each_message_once(
    db_url: str, clock: Clock
) -> None:
    ids = [queue(db_url, key=f"k{n}", text=f"message {n}") for n in range(30)]
    with sms_service() as service:
        loops = [sender(db_url, clock, HttpSms(service.url), batch=3) for _ in range(2)]
        threads = [threading.Thread(target=lambda s=s: [s.run_once() for _ in range(12)])
                   for s in loops]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(r.json()["text"] for r in service.requests) == sorted(
        f"message {n}" for n in range(30))
    assert {state_of(db_url, i).state for i in ids} == {"sent"}


def test_voltpay_notify_delivers_until_stopped(sqlite_url: str) -> None:
    queue(sqlite_url, text="From the command line", now=datetime.now(UTC))
    with sms_service() as service:
        env = {**os.environ, "DATABASE_URL": sqlite_url, "NOTIFY_HTTP_URL": service.url,
               "NOTIFY_POLL_S": "0.2"}
        process = subprocess.Popen([sys.executable, "-m", "voltpay.cli", "notify"], cwd=ROOT,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        try:
            deadline = time.monotonic() + 60
            while not service.requests and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=30)
    assert [r.json()["text"] for r in service.requests] == ["From the command line"], output
    assert process.returncode == 0, output
    assert "delivering notifications by http_sms" in output


def test_voltpay_notify_without_a_channel_says_so(sqlite_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
    done = subprocess.run([sys.executable, "-m", "voltpay.cli", "notify"], cwd=ROOT,
                          env={**env, "DATABASE_URL": sqlite_url}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "no notification channel is configured" in done.stderr


def test_the_supervisor_starts_the_sender_only_with_a_channel() -> None:
    from voltpay.settings import Settings
    from voltpay.supervisor import _children

    assert "notifier" not in _children(Settings(), 60, 10)
    configured = Settings(notify_smtp_host="mail.example", notify_smtp_from="a@b.example")
    assert _children(configured, 60, 10)["notifier"][-1] == "notify"


def test_bad_quiet_hours_are_refused_with_the_expected_form() -> None:
    from pydantic import ValidationError

    from voltpay.settings import Settings

    with pytest.raises(ValidationError, match="write them as HH:MM-HH:MM"):
        Settings(notify_quiet_hours="10pm-8am")


def test_operator_alert_texts() -> None:
    assert messages.command_failed("en", meter="M-0107", command="trip",
                                   reason="relay did not open") == \
        "The trip command to meter M-0107 failed: relay did not open"
    assert messages.command_failed("zh", meter="M-0107", command="trip", reason="继电器未断开") \
        == "电表M-0107的拉闸命令失败：继电器未断开"
