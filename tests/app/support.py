"""What the dashboard tests share: the site they run against and how to open the app on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from schema.db import unit_of_work
from schema.models import Account, LedgerEntry

# The files a page offers for download, by file name (see the `downloads` fixture).
Downloads = dict[str, Callable[[], Any]]

MAIN_SCRIPT = Path(__file__).resolve().parents[2] / "app" / "main.py"
PASSWORD = "correct horse battery"
# The first run imports pandas and pyarrow in the script thread; later runs take milliseconds.
TIMEOUT_S = 30


@dataclass(frozen=True)
class Site:
    url: str
    operator_ids: dict[str, int]
    password: str = PASSWORD

    def ledger_count(self) -> int:
        with unit_of_work(self.url) as session:
            return session.scalar(select(func.count()).select_from(LedgerEntry)) or 0

    def account(self, number: str) -> Account:
        with unit_of_work(self.url) as session:
            return session.scalars(select(Account).where(Account.number == number)).one()

    def open_app(self, username: str | None) -> AppTest:
        """The dashboard with `username` logged in (None: nobody), after its first run."""
        at = AppTest.from_file(MAIN_SCRIPT, default_timeout=TIMEOUT_S)
        if username is not None:
            at.session_state["operator_id"] = self.operator_ids[username]
            at.session_state["operator_username"] = username
        return at.run()
