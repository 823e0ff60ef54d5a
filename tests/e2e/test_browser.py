"""The foundation slice in a real browser: `voltpay run` (simulated meters, collector, dashboard)
driven through Chromium — log in, watch the overview refresh itself, sell, and see a tripped
meter closed again by a sale."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from billing.money import format_money
from tests.e2e.support import (
    ADMIN_PASSWORD,
    System,
    eventually,
    log_in,
    metric,
    open_sale_page,
    sell,
    shot,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_wrong_password_is_refused(system: System, page: Page) -> None:
    log_in(page, system, "not-the-password")
    expect(page.get_by_text("Wrong user name or password")).to_be_visible()
    shot(page, "01-wrong-password")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("heading", name="Meters", exact=True)).to_have_count(0)
    expect(page.get_by_test_id("stMetric")).to_have_count(0)
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav.get_by_role("link", name="Sale", exact=True)).to_have_count(0)


def test_overview_shows_the_site_and_refreshes_by_itself(system: System, page: Page) -> None:
    log_in(page, system, ADMIN_PASSWORD)
    expect(page.get_by_role("heading", name="Meters", exact=True)).to_be_visible()
    expect(page.get_by_text("Signed in as")).to_contain_text("(administrator)")
    expect(metric(page, "Meters")).to_have_text("48")
    grid = page.get_by_test_id("stDataFrame").locator("table[role=grid]")
    expect(grid).to_have_attribute("aria-rowcount", "49")  # a header row and 48 meters
    expect(grid.locator("th")).to_have_text([
        "Unit", "Building", "Floor", "Meter", "Account", "Tenant", "Balance", "Relay",
        "Power (kW)", "Last reading (Asia/Shanghai)",
    ])
    total = metric(page, "Total balance (CNY)")
    expect(total).to_have_text(re.compile(r"^-?[\d,]+\.\d\d$"))
    shot(page, "02-overview")

    # Nothing reloads the page or touches it from here on: the marker would not survive a reload.
    page.evaluate("window.__e2eNoReload = true")
    before = total.inner_text()
    updated = page.get_by_text(re.compile(r"^Updated .* refreshes every 5 s$"))
    updated_before = updated.inner_text()
    expect(total).not_to_have_text(before)
    expect(updated).not_to_have_text(updated_before)
    assert page.evaluate("window.__e2eNoReload") is True, "the page was reloaded"
    shot(page, "03-overview-refreshed")


def test_sale_posts_one_ledger_entry(system: System, page: Page) -> None:
    # A customer with plenty of credit and supply on: the sale changes nothing but the balance.
    row = eventually(
        lambda: next(
            (r for r in system.status()
             if r.account and r.relay == "closed" and r.balance is not None
             and r.balance > 300),
            None,
        ),
        "some account has credit",
        timeout_s=30,
    )
    assert row.account is not None
    sales_before = system.sale_entries(row.account)

    log_in(page, system, ADMIN_PASSWORD)
    expect(metric(page, "Meters")).to_have_text("48")
    open_sale_page(page)
    sell(page, row.account, "50.00", "Card")
    posted = page.get_by_text(
        re.compile(rf"^Sale posted: 50\.00 CNY to account {row.account}\. New balance: ")
    )
    expect(posted).to_be_visible()
    shot(page, "04-sale-posted")
    expect(page.get_by_text("Supply will be restored")).to_have_count(0)
    expect(page.get_by_role("button", name="New sale")).to_be_visible()

    sales_after = system.sale_entries(row.account)
    new = sales_after[len(sales_before):]
    assert [e.id for e in sales_after[: len(sales_before)]] == [e.id for e in sales_before]
    assert len(new) == 1, f"exactly one new sale entry, got {len(new)}"
    entry = new[0]
    assert entry.amount == Decimal("50.0000")
    assert entry.payment_method == "card"
    # The balance rose by exactly 50 at the sale, whatever was charged before or after it.
    assert entry.balance_after == system.entry_before(entry).balance_after + Decimal("50")
    expect(posted).to_have_text(
        f"Sale posted: 50.00 CNY to account {row.account}. "
        f"New balance: {format_money(entry.balance_after)} CNY."
    )

    # Back to an empty form; the posted sale is not posted again.
    page.get_by_role("button", name="New sale").click()
    expect(page.get_by_role("combobox", name="Account")).to_have_value("")
    assert len(system.sale_entries(row.account)) == len(sales_after)


def test_sale_closes_a_tripped_meter(system: System, page: Page) -> None:
    # At ×3600 the demo's low-credit shops run out within seconds and the collector trips them.
    tripped = eventually(
        lambda: next(
            (r for r in system.status()
             if r.account and r.relay == "open" and r.balance is not None and r.balance <= 0),
            None,
        ),
        "the collector trips a meter in arrears",
        timeout_s=60,
        every_s=0.5,
    )
    assert tripped.account is not None
    commands_before = {c.id for c in system.commands(tripped.meter_id)}

    log_in(page, system, ADMIN_PASSWORD)
    expect(metric(page, "Tripped meters")).not_to_have_text("0")
    shot(page, "05-overview-with-tripped-meters")
    open_sale_page(page)
    # Enough credit to keep the supply on for a while at ×3600.
    sell(page, tripped.account, "500.00", "Cash")
    expect(
        page.get_by_text(re.compile(rf"^Sale posted: 500\.00 CNY to account {tripped.account}\."))
    ).to_be_visible()
    expect(
        page.get_by_text("Supply will be restored: a close command is queued for 1 meter(s).")
    ).to_be_visible()
    shot(page, "06-sale-restores-supply")

    eventually(
        lambda: any(
            r.meter_id == tripped.meter_id and r.relay == "closed" for r in system.status()
        ),
        f"meter {tripped.meter} is closed again",
        timeout_s=30,
    )
    closes = [
        c for c in system.commands(tripped.meter_id)
        if c.id not in commands_before and c.kind == "close"
    ]
    assert [c.state for c in closes] == ["confirmed"], [(c.kind, c.state) for c in closes]
