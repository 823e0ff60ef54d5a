"""The tenants' kiosk (app/kiosk/main.py): sign in with account number and PIN, a wrong PIN and
the lock after five, the account with its figures, changing the PIN, restoring power where the
operators allow it, the idle sign-out in kiosk mode, and Chinese."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.kiosk.session import utcnow
from billing import control, tenants
from billing.money import format_money
from payments import orders
from payments.config import (
    MERCHANT_KEY,
    SANDBOX_APP_ID,
    configured_provider,
    sandbox_keys,
    sandbox_public_key,
)
from payments.sandbox import SandboxGateway
from schema.db import unit_of_work
from schema.models import Account, AuditEntry, Command, Operator
from tests.app.support import TIMEOUT_S, Site
from voltpay.settings import get_settings

KIOSK_SCRIPT = Path(__file__).resolve().parents[2] / "app" / "kiosk" / "main.py"
PIN = "135790"


def set_pin(
    site: Site, number: str = "10001", pin: str = PIN, language: str = "en"
) -> Account:
    """The account's kiosk PIN, and its language (the kiosk opens in it)."""
    with unit_of_work(site.url) as session:
        account = session.scalars(select(Account).where(Account.number == number)).one()
        account.language = language
        admin = session.get_one(Operator, site.operator_ids["admin"])
        tenants.set_pin(session, operator=admin, account_id=account.id, pin=pin, now=utcnow())
        return account


def open_kiosk(query: str = "") -> AppTest:
    at = AppTest.from_file(KIOSK_SCRIPT, default_timeout=TIMEOUT_S)
    if query:
        at.query_params["mode"] = query
    return at.run()


def sign_in(at: AppTest, number: str, pin: str) -> AppTest:
    at.text_input(key="kiosk_number").input(number)
    at.text_input(key="kiosk_pin").input(pin)
    return at.button(key="kiosk_sign_in_submit").click().run()


def test_signing_in_shows_the_tenants_own_account(site: Site) -> None:
    account = set_pin(site)
    at = open_kiosk()
    assert at.title[0].value == "Your electricity account"
    assert "kiosk_sign_out" not in [b.key for b in at.button]

    sign_in(at, "10001", PIN)

    assert not at.exception
    assert not at.error
    assert at.title[0].value == account.tenant_name
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Balance (CNY)"] == format_money(account.balance.quantize(Decimal("0.01")))
    assert {"Days left", "Status", "Today (kWh)", "Today (CNY)", "This month (kWh)",
            "This month (CNY)"} <= set(metrics)
    assert at.subheader[0].value == "Meters"
    assert "Last 30 days" in [s.value for s in at.subheader]
    # The PIN does not stay in the form, and nothing of the operators' dashboard is offered.
    assert at.session_state["kiosk_pin"] == ""
    assert not at.sidebar.button
    assert "kiosk_sign_out" in [b.key for b in at.button]


def test_a_wrong_pin_is_refused_and_five_lock_the_account(site: Site) -> None:
    set_pin(site)
    at = open_kiosk()

    sign_in(at, "10001", "000000")
    assert [e.value for e in at.error] == [
        "Wrong account number or PIN. No PIN yet? Ask the management office."
    ]
    assert at.title[0].value == "Your electricity account"
    for _ in range(4):
        sign_in(at, "10001", "000000")
    sign_in(at, "10001", PIN)

    assert len(at.error) == 1
    assert at.error[0].value.startswith("Too many wrong PINs: this account is locked until ")
    assert "kiosk_tenant" not in at.session_state


def test_kiosk_mode_signs_out_an_idle_tenant(site: Site) -> None:
    set_pin(site)
    at = sign_in(open_kiosk("kiosk"), "10001", PIN)
    assert "kiosk_tenant" in at.session_state

    # A click within the two minutes keeps the session going.
    at.session_state["kiosk_last_activity_at"] -= timedelta(seconds=100)
    at.run()
    assert "kiosk_tenant" in at.session_state
    at.session_state["kiosk_last_activity_at"] -= timedelta(seconds=121)
    at.run()

    assert "kiosk_tenant" not in at.session_state
    assert at.title[0].value == "Your electricity account"
    assert [i.value for i in at.info] == ["You were signed out after 2 minutes without activity."]
    with unit_of_work(site.url) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "tenant.sign_out")
        ).one()
        assert (entry.actor, entry.detail["reason"]) == ("tenant:10001", "idle")


def test_outside_kiosk_mode_two_idle_minutes_do_not_sign_out(site: Site) -> None:
    set_pin(site)
    at = sign_in(open_kiosk(), "10001", PIN)
    at.session_state["kiosk_last_activity_at"] -= timedelta(minutes=3)
    at.run()
    assert "kiosk_tenant" in at.session_state


def test_sign_out_returns_to_the_sign_in_page(site: Site) -> None:
    set_pin(site)
    at = sign_in(open_kiosk(), "10001", PIN)
    at.button(key="kiosk_sign_out").click().run()
    assert "kiosk_tenant" not in at.session_state
    assert at.title[0].value == "Your electricity account"


def test_an_operator_resetting_the_pin_ends_the_session(site: Site) -> None:
    set_pin(site)
    at = sign_in(open_kiosk(), "10001", PIN)
    set_pin(site, pin="246801")
    at.run()
    assert "kiosk_tenant" not in at.session_state
    assert [i.value for i in at.info] == [
        "You were signed out: the PIN was changed or the account closed."
    ]


def test_in_chinese(site: Site) -> None:
    set_pin(site, language="zh")
    at = open_kiosk()
    at.radio(key="lang").set_value("zh").run()
    assert at.title[0].value == "电费账户自助查询"

    sign_in(at, "10001", "000000")
    assert [e.value for e in at.error] == ["账户号或密码错误。还没有密码？请联系物业管理处。"]
    sign_in(at, "10001", PIN)
    assert "余额（CNY）" in [m.label for m in at.metric]
    assert at.subheader[0].value == "电表"


def test_the_kiosk_opens_in_the_accounts_language(site: Site) -> None:
    """The sign-in page is in the kiosk's language; once signed in, the account's own."""
    set_pin(site, language="zh")
    at = sign_in(open_kiosk(), "10001", PIN)
    assert "余额（CNY）" in [m.label for m in at.metric]
    at.radio(key="lang").set_value("en").run()  # the tenant may still switch
    assert "Balance (CNY)" in [m.label for m in at.metric]


def change_pin(at: AppTest, current: str, new: str, confirm: str) -> AppTest:
    at.text_input(key="kiosk_pin_current").input(current)
    at.text_input(key="kiosk_pin_new").input(new)
    at.text_input(key="kiosk_pin_confirm").input(confirm)
    return at.button(key="kiosk_pin_submit").click().run()


def test_the_tenant_changes_the_pin(site: Site) -> None:
    set_pin(site)
    at = sign_in(open_kiosk(), "10001", PIN).switch_page("change_pin.py").run()
    assert at.title[0].value == "Change PIN"

    change_pin(at, PIN, "864209", "864290")
    assert [e.value for e in at.error] == ["The two new PINs differ."]
    change_pin(at, "000000", "864209", "864209")
    assert [e.value for e in at.error] == ["The current PIN is wrong."]
    change_pin(at, PIN, "864209", "864209")

    assert [s.value for s in at.success] == ["Your PIN is changed. Use the new one next time."]
    assert "kiosk_tenant" in at.session_state
    with unit_of_work(site.url) as session:
        assert tenants.sign_in(session, "10001", "864209", now=utcnow()).outcome == "ok"


@pytest.fixture
def tripped(site: Site) -> Site:
    """Account 10001's first meter tripped by billing (balance aside)."""
    account = set_pin(site)
    with unit_of_work(site.url) as session:
        meter = control.account_meters(session, account.id)[0]
        for queued in session.scalars(select(Command).where(Command.meter_id == meter.id)):
            queued.state = "confirmed"  # the demo's first close, done
        command = control.queue_command(session, meter, "trip", now=utcnow(), reason="arrears")
        command.state = "confirmed"
        meter.relay = "open"
    return site


def test_restore_power_where_the_operators_allow_it(tripped: Site) -> None:
    at = sign_in(open_kiosk(), "10001", PIN)
    assert "kiosk_restore" not in " ".join(b.key or "" for b in at.button)
    assert ("Restoring power from here is not enabled for this account; the management office "
            "can do it.") in [c.value for c in at.caption]
    with unit_of_work(tripped.url) as session:
        account = session.scalars(select(Account).where(Account.number == "10001")).one()
        account.tenant_control = True
        meter = control.account_meters(session, account.id)[0]
        meter_id, serial = meter.id, meter.serial
    at.run()

    at.button(key=f"kiosk_restore_{meter_id}").click().run()

    assert [s.value for s in at.success] == [
        f"Power will be restored to meter {serial} in a moment."
    ]
    assert "Power is being restored…" in [i.value for i in at.info]
    with unit_of_work(tripped.url) as session:
        command = session.scalars(select(Command).where(Command.meter_id == meter_id)
                                  .order_by(Command.id.desc())).first()
        assert command is not None
        assert (command.kind, command.state, command.reason) == (
            "close", "queued", "restored by tenant 10001"
        )


@pytest.fixture
def sandbox(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxGateway]:
    """The demo's payment sandbox on a free port, with the kiosk's settings pointing at it."""
    directory = tmp_path / "pay-sandbox"
    _, gateway_key = sandbox_keys(directory)
    gateway = SandboxGateway(
        gateway_key=gateway_key,
        merchant_public_key=sandbox_public_key(directory, MERCHANT_KEY), app_id=SANDBOX_APP_ID,
    ).start()
    monkeypatch.setenv("PAY_PROVIDER", "sandbox")
    monkeypatch.setenv("PAY_SANDBOX_DIR", str(directory))
    monkeypatch.setenv("PAY_SANDBOX_PORT", str(gateway.port))
    get_settings.cache_clear()
    configured_provider.cache_clear()
    yield gateway
    gateway.stop()
    configured_provider.cache_clear()


def test_recharge_online_and_see_the_new_balance(site: Site, sandbox: SandboxGateway) -> None:
    account = set_pin(site)
    at = sign_in(open_kiosk(), "10001", PIN)
    at.button(key="kiosk_pay_submit").click().run()
    assert [e.value for e in at.error] == ["Enter an amount, for example 100."]

    at.text_input(key="kiosk_pay_amount").input("88.50")
    at.button(key="kiosk_pay_submit").click().run()

    assert not at.error
    (link,) = at.get("link_button")
    assert link.proto.label == "Pay 88.50 CNY now"
    order_no = link.proto.url.rsplit("/", 1)[-1]
    assert (f"Order {order_no}: waiting for your payment of 88.50 CNY. Your balance updates "
            "here within seconds of paying.") in [i.value for i in at.info]
    sandbox.pay(order_no, notify=False)
    # The API's notification or the poller credits the order; the poller here.
    orders.poll_unpaid(site.url, configured_provider(), now=utcnow() + timedelta(minutes=2),
                       policy=get_settings().billing_policy(), after=timedelta(0),
                       give_up_after=timedelta(hours=1))
    at.run()  # what the page's own refresh does

    balance = account.balance + Decimal("88.50")
    assert [s.value for s in at.success] == [
        f"Paid 88.50 CNY, thank you. New balance: {format_money(balance)} CNY."
    ]
    assert {m.label: m.value for m in at.metric}["Balance (CNY)"] == format_money(balance)
    assert not at.get("link_button")
    at.button(key="kiosk_pay_new").click().run()
    assert not at.success
    assert at.text_input(key="kiosk_pay_amount").value == ""
