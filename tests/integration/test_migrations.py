"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from schema.db import get_engine
from schema.models import Base


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    with get_engine(db_url).connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
