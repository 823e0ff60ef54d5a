"""Our own reading type and the time-series store interface; pymodbus never leaks past here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class MeterReading:
    """One meter read at one instant. `at` is an aware UTC datetime."""

    meter_id: int
    at: datetime
    energy_kwh: Decimal
    power_kw: Decimal | None = None
    voltage_v: Decimal | None = None
    current_a: Decimal | None = None
    relay_closed: bool | None = None
    # Energy per time-of-use band from the meter's own band registers, when its profile has them.
    band_energy_kwh: Mapping[str, Decimal] | None = None
    # Where the meter sits, for grouping in the time-series store: unit, floor, building, gateway.
    tags: Mapping[str, str] = field(default_factory=dict)


class ReadingStore(Protocol):
    """Where readings go. The embedded SQL store and InfluxDB implement the same contract."""

    def write(self, readings: Sequence[MeterReading]) -> None:
        """Store readings; writing the same (meter, at) again changes nothing.

        Only a rewrite with different values for a stored (meter, at) depends on the store: the
        SQL store keeps the first values, InfluxDB the last."""

    def readings(self, meter_id: int, start: datetime, end: datetime) -> list[MeterReading]:
        """Readings of one meter with start <= at < end, oldest first.

        `tags` come back only from a store that keeps them (InfluxDB); the SQL store has none."""

    def daily_energy(
        self, meter_ids: Sequence[int], start_on: date, end_on: date, tz: ZoneInfo
    ) -> dict[tuple[int, date], Decimal]:
        """Energy used per meter per site-local day for start_on <= day <= end_on: the last
        reading of the day minus the last reading before the day (or the day's first reading).
        A day without readings has no entry."""

    def close(self) -> None:
        """Release connections."""
