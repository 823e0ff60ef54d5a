"""What the browser tests share: the `voltpay run` they drive, and how a user moves through it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from playwright.sync_api import Download, Locator, Page, expect
from sqlalchemy import select

from billing.views import MeterStatus, meter_status
from schema.db import get_engine, unit_of_work
from schema.models import Account, Command, LedgerEntry

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
    kiosk_url: str

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


@contextmanager
def running_system(tmp: Path) -> Iterator[System]:
    """`voltpay run` (demo site, simulator at ×3600, collector every second, dashboard) on a
    database in `tmp`, until the block ends."""
    database_url = f"sqlite:///{tmp / 'voltpay.db'}"
    # Three simulated gateways, the dashboard, the kiosk, the API and the payment sandbox:
    # never overlapping.
    first = free_port_run(7)
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        TIMESERIES_URL="",
        VOLTPAY_ADMIN_PASSWORD=ADMIN_PASSWORD,
        DEMO_FIRST_PORT=str(first),
        DASHBOARD_PORT=str(first + 3),
        KIOSK_PORT=str(first + 4),
        API_PORT=str(first + 5),
        PAY_SANDBOX_PORT=str(first + 6),
        PAY_SANDBOX_DIR=str(tmp / "pay-sandbox"),
    )
    log = tmp / "voltpay-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "voltpay.cli", "run", "--speed", "3600", "--interval", "1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    running = System(process, env, database_url, f"http://127.0.0.1:{first + 3}", log,
                     f"http://127.0.0.1:{first + 4}")
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


def shot(page: Page, name: str, show: Locator | None = None) -> None:
    """A screenshot kept as evidence; `show` is scrolled to the middle of the view first
    (Streamlit scrolls an inner pane, so a full-page shot holds only what is in view)."""
    if show is not None:
        show.evaluate("element => element.scrollIntoView({block: 'center'})")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def keep(download: Download, name: str) -> Path:
    """Save a download among the artifacts, under `name`."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    download.save_as(path)
    return path


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


def open_page(page: Page, link: str, heading: str) -> None:
    """Follow a sidebar link, unfolding the navigation's "View N more" when it hides the link
    (a reload would start a new session: a user clicks through)."""
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav).to_be_visible()
    more = nav.get_by_text(re.compile(r"^View \d+ more$"))
    target = nav.get_by_role("link", name=link, exact=True)
    if not target.is_visible() and more.is_visible():
        more.click()
    target.click()
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()


def open_sale_page(page: Page) -> None:
    open_page(page, "Sale", "Sell electricity")
    expect(page).to_have_url(re.compile(r"/sell$"))


def choose(page: Page, combobox: Locator, typed: str, option: str | re.Pattern[str]) -> None:
    """Pick an option of a select box or multiselect as a user does: type, then click it."""
    combobox.click()
    combobox.fill(typed)
    page.get_by_role("listbox").get_by_role("option", name=option).click()


def sell(page: Page, account_number: str, amount: str, method: str) -> None:
    """Fill and post the sale form as a cashier would: type to find the account, pick it."""
    account = page.get_by_role("combobox", name="Account")
    choose(page, account, account_number, re.compile(rf"^{re.escape(account_number)} · "))
    expect(account).to_have_value(re.compile(rf"^{re.escape(account_number)} · "))
    page.get_by_label("Amount (CNY)").fill(amount)
    page.get_by_test_id("stRadio").get_by_text(method, exact=True).click()
    expect(page.get_by_role("radio", name=method)).to_be_checked()
    page.get_by_role("button", name="Post sale").click()
