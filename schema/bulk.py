"""Set-based writes of many rows at once, for batches too large for the ORM's unit of work.

On PostgreSQL each call is one statement over `unnest` of one array per column — ten thousand
rows cost about what ten do in round trips. Elsewhere (SQLite, in-process) it is an executemany.
Values go through the columns' own types (ScaledDecimal, UTCDateTime, JSON) either way, so they
are stored exactly as the ORM would store them.

These statements bypass the session's identity map: a caller that holds ORM objects of the
rows it writes keeps them in step itself (see billing/charging.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import JSON, ColumnElement, Table, any_, bindparam, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, QueryableAttribute, Session

Row = Mapping[str, Any]


def insert_rows(session: Session, model: type[DeclarativeBase], rows: Sequence[Row]) -> None:
    """INSERT every row; all rows have the same keys."""
    if not rows:
        return
    table = cast(Table, model.__table__)
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        session.execute(table.insert(), list(rows))
        return
    columns = list(rows[0])
    source, params, values_of = _unnest(table, columns, rows, dialect)
    session.execute(
        text(
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"SELECT {', '.join(values_of.values())} FROM {source}"
        ),
        params,
    )


def update_rows(
    session: Session, model: type[DeclarativeBase], rows: Sequence[Row], key: str
) -> None:
    """UPDATE the row whose `key` column equals each row's `key` value with its other values."""
    if not rows:
        return
    table = cast(Table, model.__table__)
    dialect = session.get_bind().dialect
    columns = [name for name in rows[0] if name != key]
    if dialect.name != "postgresql":
        statement = (
            update(table)
            .where(table.c[key] == bindparam(f"_{key}"))
            .values({name: bindparam(f"_{name}") for name in columns})
        )
        session.execute(
            statement, [{f"_{name}": value for name, value in row.items()} for row in rows]
        )
        return
    source, params, values_of = _unnest(table, [key, *columns], rows, dialect)
    assignments = ", ".join(f"{name} = {values_of[name]}" for name in columns)
    session.execute(
        text(
            f"UPDATE {table.name} SET {assignments} FROM {source} "
            f"WHERE {table.name}.{key} = v.{key}"
        ),
        params,
    )


def add_rows(
    session: Session, model: type[DeclarativeBase], rows: Sequence[Row], keys: Sequence[str]
) -> None:
    """INSERT each row, or where a row with its `keys` exists, add its other values to that
    row's. The rows' keys must be distinct."""
    if not rows:
        return
    table = cast(Table, model.__table__)
    dialect = session.get_bind().dialect
    columns = list(rows[0])
    added = [name for name in columns if name not in keys]
    if dialect.name != "postgresql":
        statement = sqlite.insert(table)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=list(keys),
                set_={name: table.c[name] + statement.excluded[name] for name in added},
            ),
            list(rows),
        )
        return
    source, params, values_of = _unnest(table, columns, rows, dialect)
    assignments = ", ".join(f"{name} = {table.name}.{name} + EXCLUDED.{name}" for name in added)
    session.execute(
        text(
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"SELECT {', '.join(values_of.values())} FROM {source} "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {assignments}"
        ),
        params,
    )


def _unnest(
    table: Table, columns: Sequence[str], rows: Sequence[Row], dialect: Dialect
) -> tuple[str, dict[str, str], dict[str, str]]:
    """`unnest(...) AS v(columns)` over one typed array parameter per column (PostgreSQL), its
    parameters, and the expression that reads each column from it."""
    arrays: list[str] = []
    params: dict[str, str] = {}
    values_of: dict[str, str] = {}
    for number, name in enumerate(columns):
        column_type = table.c[name].type
        values = [row[name] for row in rows]
        if isinstance(column_type, JSON):
            # JSON travels as text and is cast per element; None stays SQL NULL.
            values = [None if v is None else json.dumps(v) for v in values]
            arrays.append(f"CAST(:p{number} AS TEXT[])")
            values_of[name] = f"CAST(v.{name} AS JSON)"
        else:
            process = column_type.bind_processor(dialect)
            if process is not None:
                values = [process(v) for v in values]
            arrays.append(f"CAST(:p{number} AS {column_type.compile(dialect=dialect)}[])")
            values_of[name] = f"v.{name}"
        params[f"p{number}"] = _array_literal(values)
    return f"unnest({', '.join(arrays)}) AS v({', '.join(columns)})", params, values_of


def among(
    session: Session, column: ColumnElement[Any] | QueryableAttribute[Any], values: Iterable[Any]
) -> ColumnElement[bool]:
    """`column IN values` for a batch: on PostgreSQL `= ANY(array)`, one parameter however many
    values (an IN list of ten thousand makes ten thousand parameters to render and parse)."""
    values = list(values)
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, values, type_=ARRAY(column.type)))


def _array_literal(values: Sequence[Any]) -> str:
    """A PostgreSQL array literal, `{1,NULL,"text"}`: built by str.join it costs a fraction of
    adapting ten thousand parameters one by one."""
    if all(type(value) is int for value in values):  # most columns: ids, scaled amounts
        return "{" + ",".join(map(str, values)) + "}"
    return "{" + ",".join(map(_element, values)) + "}"


def _element(value: Any) -> str:
    if value is None:
        return "NULL"
    if type(value) is int:
        return str(value)
    quoted = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}"'
