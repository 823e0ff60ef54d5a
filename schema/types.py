"""Column types that keep money, energy and instants exact on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class ScaledDecimal(TypeDecorator[Decimal]):
    """A Decimal stored as an integer count of 10^-places units.

    SQLite round-trips NUMERIC through float; an integer never loses a digit on either database.
    Storing a value with more places than the column holds is an error, never a silent rounding.
    """

    impl = BigInteger
    cache_ok = True

    def __init__(self, places: int) -> None:
        super().__init__()
        self.places = places
        self.quantum = Decimal(1).scaleb(-places)

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        amount = Decimal(value)
        scaled = amount.scaleb(self.places)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{amount} has more than {self.places} decimal places")
        return int(scaled)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(int(value)).scaleb(-self.places).quantize(self.quantum)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC instant; naive values are refused so local time can never slip in."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"expected an aware datetime, got {value!r}")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def Money() -> ScaledDecimal:
    """Ledger amounts: 4 decimal places (interval charges carry 4, sales 2)."""
    return ScaledDecimal(4)


def Energy() -> ScaledDecimal:
    """Energy in kWh to 4 decimal places (meters register 0.01 kWh; float meters need more)."""
    return ScaledDecimal(4)
