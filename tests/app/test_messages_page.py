"""Messages (短信通知): the outbox by day, state and kind with the finally failed ones counted
and highlighted, each message's tries, sending a failed one again (control permission only),
Excel export, and what to do when no channel is configured."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, select
from streamlit.testing.v1 import AppTest

from notify import outbox
from schema.db import unit_of_work
from schema.models import Account, AuditEntry, DeliveryAttempt, OutboxMessage
from tests.app.support import Downloads, Site
from voltpay.settings import get_settings

DUTY_PHONE = "+8613900139000"




@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    """The demo mall without the notices its low-credit shops queue when it is seeded: each
    test queues the messages it looks at."""
    built = make_site()
    with unit_of_work(built.url) as session:
        session.execute(delete(DeliveryAttempt))
        session.execute(delete(OutboxMessage))
    return built


def open_page(site: Site, username: str = "admin") -> AppTest:
    return site.open_app(username).switch_page("screens/messages.py").run()


def queue_messages(site: Site) -> dict[str, int]:
    """Account 10001's recharge confirmation sent two hours ago; its alarm 1 notice, which the
    network refused until the sender gave up, an hour ago; a gateway alert to the duty phone
    still queued; and a confirmation from ten days ago."""
    now = datetime.now(UTC)
    with unit_of_work(site.url) as session:
        account = session.scalars(select(Account).where(Account.number == "10001")).one()

        def queue(kind: str, key: str, text: str, at: datetime, recipient: str | None = None,
                  account_id: int | None = None) -> OutboxMessage:
            message = outbox.enqueue(
                session, recipient=recipient or account.phone, kind=kind, text=text,
                language="zh", dedupe_key=key, urgent=True, now=at,
                account_id=account.id if recipient is None else account_id,
            )
            assert message is not None
            return message

        sent = queue("recharge", "sale:1", "账户10001充值100.00元，余额150.00元",
                     now - timedelta(hours=2))
        sent.state, sent.attempts, sent.sent_at = "sent", 1, now - timedelta(hours=2)
        session.add(DeliveryAttempt(message_id=sent.id, channel="modem", at=sent.sent_at,
                                    ok=True, reply="+CMGS: 17"))
        failed = queue("alarm1", "account:1:alarm1", "账户10001余额偏低：48.00元",
                       now - timedelta(hours=1))
        failed.state, failed.attempts = "failed", 2
        failed.last_error = "gave up after 2 attempts: +CMS ERROR: 38"
        for minutes in (60, 59):
            session.add(DeliveryAttempt(message_id=failed.id, channel="modem",
                                        at=now - timedelta(minutes=minutes), ok=False,
                                        reply="+CMS ERROR: 38"))
        alert = queue("gateway_lost", "gateway:1:lost", "通讯管理机GW-01失联",
                      now - timedelta(minutes=5), recipient=DUTY_PHONE)
        old = queue("recharge", "sale:0", "账户10001充值50.00元", now - timedelta(days=10))
        old.state = "sent"
        session.flush()
        return {"sent": sent.id, "failed": failed.id, "alert": alert.id, "old": old.id,
                "account": account.id}


def test_no_messages_and_no_channel_says_what_to_set(site: Site) -> None:
    at = open_page(site)

    assert at.title[0].value == "Messages"
    assert [w.value for w in at.warning] == [
        "No channel is configured, so messages wait in the queue and nothing reaches a phone. "
        "Set NOTIFY_MODEM_PORT (a GSM modem), NOTIFY_HTTP_URL (an SMS service) or "
        "NOTIFY_SMTP_HOST (email) as the README's Settings describe, then restart `voltpay run` "
        "or `voltpay notify`."
    ]
    assert at.info[0].value.startswith("No message was queued in these days.")
    assert not at.error and not at.dataframe


def test_configured_channels_are_named(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_HTTP_URL", "http://127.0.0.1:9/sms")
    monkeypatch.setenv("NOTIFY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("NOTIFY_SMTP_FROM", "voltpay@example.com")
    get_settings.cache_clear()

    at = open_page(site)

    assert not at.warning
    assert at.caption[0].value == "Sending through: HTTP SMS service, email (SMTP)."


def test_messages_newest_first_with_failed_ones_counted_and_highlighted(site: Site) -> None:
    ids = queue_messages(site)

    at = open_page(site)

    assert [e.value for e in at.error] == [
        "1 message(s) finally failed — check the number or the channel, then choose one below "
        "to send it again."
    ]
    table = at.dataframe[0].value
    assert list(table["id"]) == [ids["alert"], ids["failed"], ids["sent"]]  # the old one: 10 days
    assert [list(state) for state in table["state"]] == [["queued"], ["failed"], ["sent"]]
    failed = table.set_index("id").loc[ids["failed"]]
    assert (failed["kind"], failed["account"], failed["tenant"], failed["language"]) == (
        "Alarm 1 (low balance)", "10001", "Lucky Noodle House 福满面馆", "中文")
    assert (failed["attempts"], failed["last_error"], failed["text"]) == (
        2, "gave up after 2 attempts: +CMS ERROR: 38", "账户10001余额偏低：48.00元")
    alert = table.set_index("id").loc[ids["alert"]]
    assert alert["recipient"] == DUTY_PHONE and pd.isna(alert["account"])
    assert not pd.isna(alert["next"]) and pd.isna(failed["next"])  # only a queued one waits
    assert [c.value for c in at.caption] == ["3 message(s) queued in these days, newest first."]


def test_filters_by_state_kind_and_dates(site: Site) -> None:
    ids = queue_messages(site)
    at = open_page(site)

    at.multiselect(key="messages_states").set_value(["sent"]).run()
    assert list(at.dataframe[0].value["id"]) == [ids["sent"]]
    # The failed count stays whatever the state filter: it is what needs doing.
    assert at.error[0].value.startswith("1 message(s) finally failed")

    at.multiselect(key="messages_states").set_value([])
    at.multiselect(key="messages_kinds").set_value(["recharge"]).run()
    assert list(at.dataframe[0].value["id"]) == [ids["sent"]]
    assert not at.error

    today = datetime.now(UTC).astimezone(get_settings().tz).date()
    at.date_input(key="messages_from").set_value(today - timedelta(days=11)).run()
    assert list(at.dataframe[0].value["id"]) == [ids["sent"], ids["old"]]

    at.date_input(key="messages_to").set_value(today - timedelta(days=12)).run()
    assert [e.value for e in at.error] == ["The start date must be on or before the end date"]


def test_a_messages_tries_start_with_the_newest_failed_one(site: Site) -> None:
    ids = queue_messages(site)
    at = open_page(site)

    assert at.selectbox(key="messages_chosen").value == ids["failed"]
    tries = at.dataframe[1].value
    assert list(tries["channel"]) == ["GSM modem", "GSM modem"]
    assert list(tries["ok"]) == [False, False]
    assert list(tries["reply"]) == ["+CMS ERROR: 38", "+CMS ERROR: 38"]

    at.selectbox(key="messages_chosen").set_value(ids["sent"]).run()
    tries = at.dataframe[1].value
    assert (list(tries["ok"]), list(tries["reply"])) == ([True], ["+CMGS: 17"])
    # Only a failed message is sent again.
    assert "messages_send_again" not in [b.key for b in at.button]

    at.selectbox(key="messages_chosen").set_value(ids["alert"]).run()
    assert len(at.dataframe) == 1  # the messages only: the alert has no tries yet
    assert "Not tried yet." in [c.value for c in at.caption]


def test_an_operator_sends_a_failed_message_again(site: Site) -> None:
    ids = queue_messages(site)
    with unit_of_work(site.url) as session:
        session.get_one(Account, ids["account"]).phone = "139 0000 1111"
    at = open_page(site)

    at.button(key="messages_send_again").click().run()

    assert [s.value for s in at.success] == [
        f"Message #{ids['failed']} is queued again for 13900001111; the sender tries it within "
        "seconds."
    ]
    assert not at.error  # nothing failed is left in these days
    row = at.dataframe[0].value.set_index("id").loc[ids["failed"]]
    assert (list(row["state"]), row["recipient"], row["attempts"]) == (
        ["queued"], "13900001111", 2)
    with unit_of_work(site.url) as session:
        message = session.get_one(OutboxMessage, ids["failed"])
        assert (message.state, message.recipient) == ("queued", "13900001111")
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "message.send_again")).one()
        assert (audit.actor, audit.target) == ("admin", f"message {ids['failed']}")


def test_a_viewer_cannot_send_again(site: Site) -> None:
    ids = queue_messages(site)
    at = open_page(site, "viewer")
    assert [i.value for i in at.info] == [
        "Sending a message again needs the control permission — ask an administrator."
    ]

    at.button(key="messages_send_again").click().run()

    assert "viewer is not allowed to do this (control)" in [e.value for e in at.error]
    with unit_of_work(site.url) as session:
        assert session.get_one(OutboxMessage, ids["failed"]).state == "failed"


def test_messages_and_tries_export_to_excel(site: Site, downloads: Downloads) -> None:
    ids = queue_messages(site)
    open_page(site)

    (table_file,) = [n for n in downloads if n.startswith("messages-")]
    rows = list(load_workbook(io.BytesIO(downloads[table_file]())).active.values)
    assert rows[0] == (
        "No.", "Queued at (Asia/Shanghai)", "Recipient", "Account", "Tenant", "Message",
        "Language", "State", "Attempts", "Next try at (Asia/Shanghai)",
        "Sent at (Asia/Shanghai)", "Last error", "Text")
    assert [(row[0], row[7]) for row in rows[1:]] == [
        (ids["alert"], "queued"), (ids["failed"], "failed"), (ids["sent"], "sent")]
    tries = list(load_workbook(io.BytesIO(
        downloads[f"message-{ids['failed']}-tries.xlsx"]())).active.values)
    assert tries[0] == ("Tried at (Asia/Shanghai)", "Channel", "Delivered", "Reply or error")
    assert [row[1:] for row in tries[1:]] == [("GSM modem", False, "+CMS ERROR: 38")] * 2


def test_in_chinese(site: Site) -> None:
    queue_messages(site)
    at = site.open_app("admin")
    at.session_state["lang"] = "zh"
    at.switch_page("screens/messages.py").run()

    assert at.title[0].value == "短信通知"
    assert at.error[0].value.startswith("1 条消息最终发送失败——请检查号码或发送通道")
    table = at.dataframe[0].value
    assert list(table["kind"]) == ["通讯管理机失联", "一级预警（余额不足）", "充值确认"]
    assert at.button(key="messages_send_again").label == "重新发送"
