"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Date, Engine, text

from schema.db import alembic_config, get_engine
from schema.models import Base


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    with get_engine(db_url).connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_upgrading_a_foundation_database_keeps_its_billing_position(
    tmp_path: Path, pg_admin: Engine
) -> None:
    """A database made by the first migration, with data, upgrades on SQLite and PostgreSQL."""
    urls = [f"sqlite:///{tmp_path / 'old.db'}"]
    name = f"voltpay_upgrade_{uuid.uuid4().hex[:8]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    urls.append(pg_admin.url.set(database=name).render_as_string(hide_password=False))
    try:
        for url in urls:
            command.upgrade(alembic_config(url), "0001")
            with get_engine(url).begin() as conn:
                for statement in FOUNDATION_ROWS:
                    conn.execute(text(statement))
            command.upgrade(alembic_config(url), "head")
            with get_engine(url).connect() as conn:
                assert conn.execute(
                    text("SELECT meter_id, billed_energy_kwh, period FROM meter_billing")
                ).all() == [(1, 1234500, "")]
                assert conn.execute(text("SELECT alarm_level FROM accounts")).scalar() == "arrears"
                # Charges made before bands were recorded: per meter and Shanghai day, band ''.
                assert [tuple(row) for row in conn.execute(text(
                    "SELECT meter_id, on_date, band, energy_kwh, cost FROM charge_daily "
                    "ORDER BY on_date"
                ).columns(on_date=Date()))] == [
                    (1, date(2026, 11, 1), "", 25_000_000_000, 30_000_000_000),
                    (1, date(2026, 11, 2), "", 10_000_000_000, 12_000_000_000),
                ]
            get_engine(url).dispose()
    finally:
        get_engine.cache_clear()
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


FOUNDATION_ROWS = [
    "INSERT INTO gateways (id, name, host, port, transport, timeout_s, retries, enabled) "
    "VALUES (1, 'GW-01', '127.0.0.1', 1502, 'tcp', 10000, 1, true)",
    "INSERT INTO meters (id, serial, profile, gateway_id, bus_address, ct_ratio, power_protect, "
    "relay, billed_at, billed_energy_kwh, charged_since_base) VALUES (1, 'M1', 'acrel_dtsy1352', "
    "1, 1, 1, false, 'closed', '2026-11-01 00:00:00', 1234500, 0)",
    "INSERT INTO accounts (id, number, tenant_name, phone, status, balance, opened_at) "
    "VALUES (1, '10001', 'Tenant', '', 'open', -50000, '2026-11-01 00:00:00')",
    # 1.5 + 1.0 kWh on 1 November (Shanghai), 1.0 kWh just after its midnight (16:00 UTC).
    *(
        "INSERT INTO ledger_entries (account_id, kind, amount, balance_after, idempotency_key, "
        f"meter_id, energy_kwh, note, effective_at, recorded_at) VALUES (1, 'charge', {-amount}, "
        f"0, 'charge:1:{at}', 1, {energy}, '', '{at}', '{at}')"
        for at, energy, amount in [
            ("2026-11-01 02:00:00", 15000, 18000),
            ("2026-11-01 15:59:00", 10000, 12000),
            ("2026-11-01 16:00:00", 10000, 12000),
        ]
    ),
]
