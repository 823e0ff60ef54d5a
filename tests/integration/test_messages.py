"""Messages as the dashboard reads them (by site-local day, state and kind) and sending a failed
one again: the modem gives up on a tenant's wrong number, the cashier corrects the number, an
operator sends the message again and it arrives — once, at the new number."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.errors import BillingError, NotFound, PermissionDenied
from billing.messages import send_again
from billing.operators import create_operator
from notify import outbox
from notify.channels.gsm import GsmModem
from notify.outbox import DEFAULT_EXPIRY
from notify.sender import RetryPolicy, Router, Sender, attempts_of
from notify.views import failed_count, messages
from schema.db import unit_of_work
from schema.models import Account, AuditEntry, Operator, OutboxMessage
from tests.factories import T0, make_site, open_account
from tests.gsm_modem import ModemEmulator

SHANGHAI = ZoneInfo("Asia/Shanghai")
WRONG_PHONE = "+8613800000000"
RIGHT_PHONE = "+8613800138000"


@pytest.fixture
def modem() -> Iterator[ModemEmulator]:
    emulator = ModemEmulator()
    yield emulator
    emulator.close()


def send_round(url: str, modem: ModemEmulator, at: datetime) -> None:
    Sender(url, Router([GsmModem(modem.port, timeout_s=2)]), tz=SHANGHAI, clock=lambda: at,
           policy=RetryPolicy(max_attempts=2)).run_once()


def admin_of(session: Session) -> Operator:
    return session.scalars(select(Operator).where(Operator.username == "admin")).one()


def failed_recharge(url: str, modem: ModemEmulator) -> tuple[int, int]:
    """Account 10001's recharge confirmation to a number the network refuses, tried twice and
    given up. Returns (account id, message id)."""
    with unit_of_work(url) as s:
        made = make_site(s)
        account_id = open_account(s, made, made.meters[0])
        s.get_one(Account, account_id).phone = WRONG_PHONE
        message = outbox.enqueue(s, recipient=WRONG_PHONE, kind="recharge",
                                 text="账户10001充值100.00元", language="zh",
                                 dedupe_key=outbox.recharge_key(1), urgent=True, now=T0,
                                 account_id=account_id)
        assert message is not None
        message_id = message.id
    modem.fail_next(2, "+CMS ERROR: 38")
    send_round(url, modem, T0)
    send_round(url, modem, T0 + timedelta(minutes=1))
    with unit_of_work(url) as s:
        assert s.get_one(OutboxMessage, message_id).state == "failed"
    return account_id, message_id


def test_corrected_number_then_send_again_delivers_once(
    db_url: str, modem: ModemEmulator
) -> None:
    account_id, message_id = failed_recharge(db_url, modem)
    later = T0 + timedelta(hours=30)  # past the first day's expiry
    with unit_of_work(db_url) as s:
        s.get_one(Account, account_id).phone = "138-0013-8000"
        send_again(s, message_id, operator=admin_of(s), now=later)
    with unit_of_work(db_url) as s:
        message = s.get_one(OutboxMessage, message_id)
        assert (message.state, message.recipient, message.attempts) == (
            "queued", "13800138000", 2)
        assert (message.next_attempt_at, message.expires_at) == (later, later + DEFAULT_EXPIRY)
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "message.send_again")).one()
        assert (audit.actor, audit.target) == ("admin", f"message {message_id}")
        assert audit.detail["previous_recipient"] == WRONG_PHONE
        assert audit.detail["recipient"] == "13800138000"

    send_round(db_url, modem, later)
    send_round(db_url, modem, later + timedelta(minutes=5))

    assert [(a.number, a.text) for a in modem.arrived] == [("13800138000", "账户10001充值100.00元")]
    with unit_of_work(db_url) as s:
        message = s.get_one(OutboxMessage, message_id)
        assert (message.state, message.attempts) == ("sent", 3)
        assert [a.ok for a in attempts_of(s, message_id)] == [False, False, True]
        with pytest.raises(BillingError, match=f"Message #{message_id} is sent"):
            send_again(s, message_id, operator=admin_of(s), now=later)


def test_a_viewer_may_not_send_again(db_url: str, modem: ModemEmulator) -> None:
    _, message_id = failed_recharge(db_url, modem)
    with unit_of_work(db_url) as s:
        viewer = create_operator(s, username="viewer", password="correct horse", role="viewer",
                                 now=T0)
        with pytest.raises(PermissionDenied, match=r"viewer is not allowed to do this \(control\)"):
            send_again(s, message_id, operator=viewer, now=T0)
    with unit_of_work(db_url) as s:
        assert s.get_one(OutboxMessage, message_id).state == "failed"
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "message.send_again")
                         ).first() is None


def test_send_again_refuses_what_it_cannot_fix(db_url: str, modem: ModemEmulator) -> None:
    account_id, message_id = failed_recharge(db_url, modem)
    with unit_of_work(db_url) as s:
        admin = admin_of(s)
        with pytest.raises(NotFound, match="No such message: #999"):
            send_again(s, 999, operator=admin, now=T0)
        s.get_one(Account, account_id).phone = ""
        with pytest.raises(BillingError, match="Account 10001 has no phone number"):
            send_again(s, message_id, operator=admin, now=T0)
        s.get_one(Account, account_id).phone = "call the office"
        with pytest.raises(BillingError, match=r"\(call the office\) is not a phone number"):
            send_again(s, message_id, operator=admin, now=T0)
        # A balance-level notice whose level has cleared since would tell something untrue.
        low = outbox.enqueue(s, recipient=RIGHT_PHONE, kind="alarm1", text="余额偏低",
                             language="zh", dedupe_key=outbox.level_key(account_id, "alarm1"),
                             urgent=False, now=T0, account_id=account_id)
        assert low is not None
        low.state = "failed"
        outbox.clear_levels_above(s, account_id=account_id, level="normal", now=T0)
        s.get_one(Account, account_id).phone = RIGHT_PHONE
        with pytest.raises(BillingError, match="has ended since"):
            send_again(s, low.id, operator=admin, now=T0)


def test_messages_by_local_day_state_and_kind_newest_first(db_url: str) -> None:
    # 23:30 on 1 November in Shanghai is 15:30 UTC: a message of the 1st, not the 2nd.
    late = datetime(2026, 11, 1, 23, 30, tzinfo=SHANGHAI)
    with unit_of_work(db_url) as s:
        made = make_site(s)
        account_id = open_account(s, made, made.meters[0])
        queued = [
            outbox.enqueue(s, recipient=recipient, kind=kind, text=kind, language="zh",
                           dedupe_key=key, urgent=True, now=at, account_id=account)
            for recipient, kind, key, at, account in [
                (RIGHT_PHONE, "alarm1", "k1", late, account_id),
                ("not a number", "recharge", "k2", late + timedelta(hours=1), account_id),
                ("duty@example.com", "gateway_lost", "k3", late + timedelta(hours=2), None),
            ]
        ]
        first, bad, alert = [m.id for m in queued if m is not None]

        day_one = messages(s, date(2026, 11, 1), date(2026, 11, 1), SHANGHAI)
        assert [r.message_id for r in day_one.rows] == [first]
        row = day_one.rows[0]
        assert (row.account, row.tenant, row.state) == ("10001", "Lucky Noodle House 福满面馆",
                                                         "queued")
        assert row.next_attempt_at == late
        both = messages(s, date(2026, 11, 1), date(2026, 11, 2), SHANGHAI)
        assert [r.message_id for r in both.rows] == [alert, bad, first]
        assert both.rows[0].account is None
        assert [r.message_id for r in messages(s, date(2026, 11, 1), date(2026, 11, 2), SHANGHAI,
                                               states=["failed"]).rows] == [bad]
        assert [r.message_id for r in messages(s, date(2026, 11, 1), date(2026, 11, 2), SHANGHAI,
                                               kinds=["gateway_lost", "alarm1"]).rows] == [
            alert, first]
        limited = messages(s, date(2026, 11, 1), date(2026, 11, 2), SHANGHAI, limit=1)
        assert ([r.message_id for r in limited.rows], limited.total) == ([alert], 3)
        assert failed_count(s, date(2026, 11, 1), date(2026, 11, 2), SHANGHAI) == 1
        assert failed_count(s, date(2026, 11, 1), date(2026, 11, 1), SHANGHAI) == 0
        with pytest.raises(BillingError, match="The start date must be on or before the end"):
            messages(s, date(2026, 11, 2), date(2026, 11, 1), SHANGHAI)
