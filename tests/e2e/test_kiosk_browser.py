"""A tenant at the kiosk, in a real browser against `voltpay run`: an account opened with a PIN
through the open-account service, then signed in on a phone-sized screen, which shows the
balance; a wrong PIN is refused; a recharge paid in the sandbox provider shows the new balance
within seconds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from billing import accounts
from billing.policy import BillingPolicy
from schema.db import unit_of_work
from schema.models import LedgerEntry, Meter, Operator, Unit
from tests.e2e.support import UI_TIMEOUT_MS, System, metric, shot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PIN = "407215"
TENANT = "Kiosk Bakery 面包坊"


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A phone-sized browser session."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US",
                                  is_mobile=True, has_touch=True)
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def open_account_with_pin(system: System) -> None:
    """The cashier's open-account service, with a PIN and a first sale of 120.00."""
    with unit_of_work(system.database_url) as session:
        admin = session.scalars(select(Operator).where(Operator.username == "admin")).one()
        meter = session.scalars(
            select(Meter).join(Unit, Unit.id == Meter.unit_id).where(Unit.number == "A201")
        ).one()
        accounts.open_account_once(
            session, form_key="e2e-kiosk", number="30001", tenant_name=TENANT, operator=admin,
            now=datetime.now(UTC), policy=BillingPolicy(), meter_ids=[meter.id],
            first_sale_amount="120.00", pin=PIN, language="en",
        )


def balances_since(system: System, entry: LedgerEntry) -> set[Decimal]:
    """The account's balances from `entry` on, as the page shows them (2 places)."""
    with unit_of_work(system.database_url) as session:
        return {
            after.quantize(Decimal("0.01"))
            for after in session.scalars(select(LedgerEntry.balance_after).where(
                LedgerEntry.account_id == entry.account_id, LedgerEntry.id >= entry.id))
        }


def sign_in(page: Page, system: System, pin: str) -> None:
    page.goto(system.kiosk_url)
    expect(page.get_by_role("heading", name="Your electricity account")).to_be_visible()
    page.get_by_label("Account number").fill("30001")
    page.get_by_label("PIN (6 digits)").fill(pin)
    page.get_by_role("button", name="Sign in").click()


def test_a_tenant_signs_in_on_a_phone_pays_and_sees_the_new_balance(
    system: System, phone: Page
) -> None:
    open_account_with_pin(system)

    sign_in(phone, system, "000000")
    expect(phone.get_by_text("Wrong account number or PIN.")).to_be_visible()
    sign_in(phone, system, PIN)

    expect(phone.get_by_role("heading", name=TENANT)).to_be_visible()
    expect(phone.get_by_text("Account 30001 · A201")).to_be_visible()
    # Billing charges the meter as the simulated hours pass: what is left of the first sale.
    balance = metric(phone, "Balance (CNY)")
    expect(balance).to_have_text(re.compile(r"^\d+\.\d\d$"))
    assert Decimal(0) < Decimal(balance.inner_text()) <= Decimal("120.00")
    expect(phone.get_by_text(re.compile(r"^Meter \S+ · unit A201$"))).to_be_visible()
    expect(metric(phone, "This month (kWh)")).to_be_visible()
    shot(phone, "kiosk-phone-home", balance)

    # Recharge online: the sandbox's pay page opens beside the kiosk; paying there notifies the
    # API, which credits the account, and the kiosk shows it without a touch.
    phone.get_by_label("Amount (CNY)").fill("50")
    phone.get_by_role("button", name="Recharge online").click()
    pay_link = phone.get_by_role("link", name="Pay 50.00 CNY now")
    expect(pay_link).to_be_visible()
    before = Decimal(balance.inner_text())
    with phone.context.expect_page() as opened:
        pay_link.click()
    pay_page = opened.value
    pay_page.get_by_role("button", name="Pay 付款").click()
    expect(pay_page.locator("#paid")).to_be_visible()
    paid = phone.get_by_text(re.compile(r"^Paid 50\.00 CNY, thank you\. New balance: "))
    expect(paid).to_be_visible(timeout=15_000)
    shown = Decimal(balance.inner_text())
    (sale,) = [e for e in system.sale_entries("30001") if e.payment_method == "online"]
    assert sale.amount == Decimal("50.00")
    # What the page shows is the balance after the payment (less what was used since).
    assert shown > before
    assert shown in balances_since(system, sale)
    shot(phone, "kiosk-phone-paid", paid)

    phone.get_by_role("button", name="Sign out").click()
    expect(phone.get_by_role("heading", name="Your electricity account")).to_be_visible()

