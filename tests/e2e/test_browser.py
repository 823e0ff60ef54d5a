"""The foundation slice in a real browser: `voltpay run` (simulated meters, collector, dashboard)
driven through Chromium — log in, watch the overview refresh itself, sell, and see a tripped
meter closed again by a sale."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import select

from billing.money import format_money
from billing.views import MeterStatus, meter_status
from schema.db import get_engine, unit_of_work
from schema.models import Account, Command, LedgerEntry

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
ADMIN_PASSWORD = "e2e-Admin-pw-4711"
UI_TIMEOUT_MS = 20_000  # Streamlit reruns asynchronously: wait for what the user would see
expect.set_options(timeout=UI_TIMEOUT_MS)  # for assertions; contexts get it for actions

T = TypeVar("T")


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free loopback ports."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no run of free ports")


def eventually(
    probe: Callable[[], T | None], what: str, timeout_s: float, every_s: float = 0.25
) -> T:
    """probe()'s first truthy result, polling until timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting until {what}")
        time.sleep(every_s)


@dataclass
class System:
    """A running `voltpay run` on a temporary database."""

    process: subprocess.Popen[bytes]
    env: dict[str, str]
    database_url: str
    url: str
    log: Path

    def status(self) -> list[MeterStatus]:
        """What `voltpay status` shows, read in this process (fast enough to catch a relay)."""
        with unit_of_work(self.database_url) as session:
            return meter_status(session)

    def sale_entries(self, account_number: str) -> list[LedgerEntry]:
        with unit_of_work(self.database_url) as session:
            account = session.scalars(
                select(Account).where(Account.number == account_number)
            ).one()
            return list(session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.account_id == account.id, LedgerEntry.kind == "sale")
                .order_by(LedgerEntry.id)
            ))

    def entry_before(self, entry: LedgerEntry) -> LedgerEntry:
        """The account's ledger entry just before `entry`."""
        with unit_of_work(self.database_url) as session:
            return session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.account_id == entry.account_id, LedgerEntry.id < entry.id)
                .order_by(LedgerEntry.id.desc())
                .limit(1)
            ).one()

    def commands(self, meter_id: int) -> list[Command]:
        with unit_of_work(self.database_url) as session:
            return list(session.scalars(
                select(Command).where(Command.meter_id == meter_id).order_by(Command.id)
            ))

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("e2e")
    database_url = f"sqlite:///{tmp / 'voltpay.db'}"
    first = free_port_run(4)  # three simulated gateways, then the dashboard: never overlapping
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        TIMESERIES_URL="",
        VOLTPAY_ADMIN_PASSWORD=ADMIN_PASSWORD,
        DEMO_FIRST_PORT=str(first),
        DASHBOARD_PORT=str(first + 3),
    )
    log = tmp / "voltpay-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "voltpay.cli", "run", "--speed", "3600", "--interval", "1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    running = System(process, env, database_url, f"http://127.0.0.1:{first + 3}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"voltpay run exited:\n{running.log_tail()}"
            try:
                if httpx.get(f"{running.url}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (
                f"the dashboard never answered:\n{running.log_tail()}"
            )
            time.sleep(0.25)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        get_engine(database_url).dispose()
        get_engine.cache_clear()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `make test`, which installs the Debian chromium package "
            "(scripts/system-deps.sh). Do not run `playwright install`.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser session (so a fresh Streamlit session); its last view is saved."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    context.set_default_timeout(UI_TIMEOUT_MS)
    tab = context.new_page()
    try:
        yield tab
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PlaywrightError):  # evidence only: never mask the test's result
            tab.screenshot(path=ARTIFACTS / f"{request.node.name}-last.png", full_page=True)
    finally:
        context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def metric(page: Page, label: str) -> Locator:
    """The value of the st.metric whose label is exactly `label`."""
    return (
        page.get_by_test_id("stMetric")
        .filter(has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True))
        .get_by_test_id("stMetricValue")
    )


def log_in(page: Page, system: System, password: str) -> None:
    page.goto(system.url)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def open_sale_page(page: Page) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Sale", exact=True).click()
    expect(page.get_by_role("heading", name="Sell electricity")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/sell$"))


def sell(page: Page, account_number: str, amount: str, method: str) -> None:
    """Fill and post the sale form as a cashier would: type to find the account, pick it."""
    account = page.get_by_role("combobox", name="Account")
    account.click()
    account.fill(account_number)
    page.get_by_role("listbox").get_by_role(
        "option", name=re.compile(rf"^{re.escape(account_number)} · ")
    ).click()
    expect(account).to_have_value(re.compile(rf"^{re.escape(account_number)} · "))
    page.get_by_label("Amount (CNY)").fill(amount)
    page.get_by_test_id("stRadio").get_by_text(method, exact=True).click()
    expect(page.get_by_role("radio", name=method)).to_be_checked()
    page.get_by_role("button", name="Post sale").click()


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
