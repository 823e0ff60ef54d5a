"""Meters overview: what a viewer sees about every meter, refreshed by itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update
from streamlit.testing.v1 import AppTest

from app.screens import overview
from schema.db import unit_of_work
from schema.models import Account, Meter
from tests.app.support import Site


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_viewer_sees_every_meter_with_its_account(site: Site) -> None:
    at = site.open_app("viewer")

    table = at.dataframe[0].value
    assert len(table) == 48
    first = table.iloc[0]
    assert (first["unit"], first["building"], first["floor"], first["meter"]) == (
        "A101", "Building A A栋", "A1F", "M00001",
    )
    assert first["account"] == "10001"
    assert first["tenant"] == "Lucky Noodle House 福满面馆"
    assert Decimal(str(first["balance"])) == site.account("10001").balance
    assert first["relay"] == "? unknown"
    with unit_of_work(site.url) as session:
        total = session.scalar(select(func.sum(Account.balance)))
    assert total is not None
    assert metrics(at) == {
        "Meters": "48",
        "Accounts in arrears": "0",
        "Tripped meters": "0",
        "Total balance (CNY)": f"{total:,.2f}",
    }


def test_a_tripped_meter_shows_open_and_counts(site: Site) -> None:
    with unit_of_work(site.url) as session:
        session.execute(update(Meter).where(Meter.serial == "M00002").values(relay="open"))
        session.execute(update(Meter).where(Meter.serial != "M00002").values(relay="closed"))

    at = site.open_app("viewer")

    table = at.dataframe[0].value.set_index("meter")
    assert table.loc["M00002", "relay"] == "○ open (tripped)"
    assert table.loc["M00001", "relay"] == "● closed"
    assert metrics(at)["Tripped meters"] == "1"


def test_last_reading_is_shown_in_site_time(site: Site) -> None:
    with unit_of_work(site.url) as session:
        session.execute(
            update(Meter)
            .where(Meter.serial == "M00003")
            .values(last_reading_at=datetime(2026, 1, 31, 20, 30, tzinfo=UTC),
                    last_power_kw=Decimal("2.125"))
        )

    at = site.open_app("viewer")

    row = at.dataframe[0].value.set_index("meter").loc["M00003"]
    assert row["last_reading"] == "2026-02-01 04:30:00"  # Asia/Shanghai, UTC+8
    assert Decimal(str(row["power_kw"])) == Decimal("2.125")


def test_each_refresh_reads_the_database_afresh(site: Site) -> None:
    at = site.open_app("viewer")
    assert metrics(at)["Tripped meters"] == "0"
    with unit_of_work(site.url) as session:
        session.execute(update(Meter).where(Meter.serial == "M00004").values(relay="open"))

    at.run()

    assert metrics(at)["Tripped meters"] == "1"
    assert at.caption[-1].value.endswith(f"refreshes every {overview.REFRESH_S} s")


class TestEmptySite:
    @pytest.fixture
    def site(self, make_site: Callable[..., Site]) -> Site:
        return make_site(seed=False)

    def test_says_what_to_do_next(self, site: Site) -> None:
        at = site.open_app("admin")

        assert [i.value for i in at.info] == [
            "No meters yet — run `make run` to seed the demo site, or add meters in settings."
        ]
        assert not at.dataframe
        assert not at.metric
