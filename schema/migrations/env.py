"""Alembic environment: the URL comes from the caller (schema.db.migrate) or the settings."""

from __future__ import annotations

from alembic import context

from schema.db import get_engine
from schema.models import Base


def _url() -> str:
    url = context.config.attributes.get("database_url")
    if url:
        return str(url)
    from voltpay.settings import get_settings

    return get_settings().database_url


def run_migrations_online() -> None:
    engine = get_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
