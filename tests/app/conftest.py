"""A seeded demo site in a temporary SQLite database, with the dashboard pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from billing.operators import create_operator
from billing.policy import BillingPolicy
from schema.db import get_engine, migrate, unit_of_work
from tests.app.support import PASSWORD, Downloads, Site
from voltpay.demo import seed_demo_site
from voltpay.settings import get_settings

OPERATORS = (("admin", "administrator"), ("cashier", "cashier"), ("viewer", "viewer"))


@pytest.fixture
def make_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Site]]:
    """Build the site (the demo mall unless `seed=False`) and point the app at it."""
    urls: list[str] = []

    def build(*, seed: bool = True) -> Site:
        url = f"sqlite:///{tmp_path / 't.db'}"
        migrate(url)
        now = datetime.now(UTC)
        with unit_of_work(url) as session:
            operators = {
                username: create_operator(
                    session, username=username, password=PASSWORD, role=role, now=now
                )
                for username, role in OPERATORS
            }
            if seed:
                seed_demo_site(session, admin=operators["admin"], now=now, policy=BillingPolicy())
            ids = {username: operator.id for username, operator in operators.items()}
        monkeypatch.setenv("DATABASE_URL", url)
        get_settings.cache_clear()
        urls.append(url)
        return Site(url, ids)

    yield build
    monkeypatch.undo()
    get_settings.cache_clear()
    for url in urls:
        get_engine(url).dispose()
    get_engine.cache_clear()


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site()


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Downloads]:
    """The files the page offers, by file name: exports are built only when clicked, so the
    test clicks for the browser by calling what the page registered."""
    offered: Downloads = {}
    register = MediaFileManager.add_deferred

    def add_deferred(self: MediaFileManager, data: Callable[[], Any], mimetype: str | None,
                     coordinates: str, file_name: str | None = None, **kwargs: Any) -> str:
        offered[file_name or ""] = data
        return register(self, data, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    yield offered
