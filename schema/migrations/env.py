"""Alembic environment: the URL comes from the caller (schema.db.migrate) or the settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from schema.db import get_engine
from schema.models import Base


def _url() -> str:
    url = context.config.attributes.get("database_url")
    if url:
        return str(url)
    from voltpay.settings import get_settings

    return get_settings().database_url


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


def run_migrations_online() -> None:
    url = _url()
    if not url.startswith("sqlite"):
        with get_engine(url).connect() as connection:
            _migrate(connection)
        return
    # SQLite alters a table by copying it; with foreign keys enforced, dropping the old copy of a
    # referenced table fails. Turn enforcement off for the migration, then prove nothing broke.
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        _migrate(connection)
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:
            raise RuntimeError(f"migration left rows with broken foreign keys: {broken[:5]}")
    engine.dispose()


run_migrations_online()
