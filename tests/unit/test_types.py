"""Column types refuse what would silently lose money or time."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy.dialects import sqlite

from schema.types import ScaledDecimal, UTCDateTime


def test_money_keeps_four_places_and_refuses_a_fifth() -> None:
    money = ScaledDecimal(4)
    dialect = sqlite.dialect()
    assert money.process_bind_param(Decimal("12.3456"), dialect) == 123456
    assert money.process_result_value(123456, dialect) == Decimal("12.3456")
    with pytest.raises(ValueError, match="more than 4 decimal places"):
        money.process_bind_param(Decimal("0.00001"), dialect)


def test_instants_must_be_aware() -> None:
    column = UTCDateTime()
    dialect = sqlite.dialect()
    with pytest.raises(ValueError, match="aware"):
        column.process_bind_param(datetime(2026, 1, 1), dialect)  # noqa: DTZ001
    stored = column.process_bind_param(datetime(2026, 1, 1, 8, tzinfo=UTC), dialect)
    assert column.process_result_value(stored, dialect) == datetime(2026, 1, 1, 8, tzinfo=UTC)
