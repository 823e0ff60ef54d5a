"""Shared fixtures: real databases (SQLite, PostgreSQL) and a real influxd, one fresh per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from collector.tsdb_influx import InfluxReadingStore
from schema.db import get_engine, migrate, normalise_url
from tests.influx import running_influxd
from tests.pg import NoPostgres, throwaway_cluster

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _dispose(url: str) -> None:
    """Close the pooled connections to `url` and forget every cached engine."""
    get_engine(url).dispose()
    get_engine.cache_clear()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "voltpay.db"
    url = f"sqlite:///{path}"
    migrate(url)
    _dispose(url)
    return path


@pytest.fixture
def sqlite_url(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[str]:
    """A migrated SQLite database in a fresh temporary file."""
    path = tmp_path_factory.mktemp("sqlite") / "voltpay.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    yield url
    _dispose(url)


def _reachable(url: str) -> str | None:
    """None when PostgreSQL answers at url, else why not."""
    engine = create_engine(url)
    try:
        with engine.connect():
            return None
    except OperationalError as exc:
        return str(exc.orig).strip()
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An engine on the PostgreSQL server's maintenance database, for CREATE/DROP DATABASE.

    The server at 127.0.0.1:5432 (or VOLTPAY_TEST_PG_ADMIN_URL) when it answers; otherwise a
    throwaway cluster started from the installed binaries for this test session.
    """
    url = normalise_url(os.environ.get("VOLTPAY_TEST_PG_ADMIN_URL", PG_ADMIN_URL))
    with contextlib.ExitStack() as stack:
        problem = _reachable(url)
        if problem is not None:
            try:
                url = stack.enter_context(throwaway_cluster())
            except NoPostgres as exc:
                pytest.fail(
                    f"PostgreSQL is not reachable at {make_url(url).render_as_string()} "
                    f"({problem}) and no throwaway cluster could be started: {exc}. Start it "
                    "(e.g. `pg_ctlcluster 15 main start`), or point VOLTPAY_TEST_PG_ADMIN_URL "
                    "at a server where this user may create databases.",
                    pytrace=False,
                )
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        yield engine
        engine.dispose()


@pytest.fixture(scope="session")
def pg_template(pg_admin: Engine) -> Iterator[str]:
    """A database migrated once per session; each test's database is a copy of it."""
    name = f"voltpay_template_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        _dispose(url)
        yield name
    finally:
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_url(pg_admin: Engine, pg_template: str) -> Iterator[str]:
    """A migrated PostgreSQL database, created for this test and dropped after it."""
    name = f"voltpay_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    url = pg_admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        _dispose(url)
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(autouse=True, scope="session")
def _quick_password_hashing() -> Iterator[None]:
    """Tests create many operators: hash their passwords with argon2 at its cheapest settings
    (still argon2, still verified), instead of the production cost of ~0.3 s per hash."""
    from argon2 import PasswordHasher

    from billing import operators

    production = operators._hasher
    operators._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    yield
    operators._hasher = production


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on SQLite and on PostgreSQL: the URL of a fresh migrated database."""
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


@pytest.fixture(scope="session")
def influx_url() -> Iterator[str]:
    """Base URL (no database) of a real influxd without auth, started once per session."""
    with running_influxd() as url:
        yield url


@pytest.fixture
def influx_store(influx_url: str) -> Iterator[InfluxReadingStore]:
    """An InfluxReadingStore on a fresh database, dropped after the test."""
    database = f"voltpay_test_{uuid.uuid4().hex[:12]}"
    store = InfluxReadingStore(f"{influx_url}/{database}")
    store.create_database()
    yield store
    store.close()
    httpx.post(f"{influx_url}/query", data={"q": f'DROP DATABASE "{database}"'}).raise_for_status()
