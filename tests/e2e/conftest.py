"""Fixtures of the browser tests: one `voltpay run` per test module, one Chromium for all."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.e2e.support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    UI_TIMEOUT_MS,
    System,
    running_system,
)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """A fresh demo site per module: each module's tests see the site as seeded, whatever
    another module changed."""
    with running_system(tmp_path_factory.mktemp("e2e")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module. Not for the whole session: Playwright's sync API keeps an
    event loop running in the main thread while it is open, and every later test that calls
    asyncio.run (the collector, the simulator) would fail."""
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
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, locale="en-US", accept_downloads=True
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    tab = context.new_page()
    try:
        yield tab
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PlaywrightError):  # evidence only: never mask the test's result
            tab.screenshot(path=ARTIFACTS / f"{request.node.name}-last.png", full_page=True)
    finally:
        context.close()
