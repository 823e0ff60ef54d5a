"""Our own reading type and the time-series store interface; pymodbus never leaks past here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

# What daily_energy_by adds up by: each meter on its own, or the place it sits in.
EnergyGroup = Literal["meter", "unit", "floor", "building"]


class StoreUnavailable(Exception):
    """A store could not take the request now (unreachable, down, refusing the login, missing
    its database); the same request may succeed later. SpoolingStore keeps the readings of a
    write that failed this way and sends them again; any other error is about the readings."""


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
        A day without readings has no entry. Days rolled up by `archive` count exactly as they
        did before."""

    def daily_energy_by(
        self,
        group: EnergyGroup,
        start_on: date,
        end_on: date,
        tz: ZoneInfo,
        *,
        meters: Mapping[int, Mapping[str, str]] | None = None,
    ) -> dict[tuple[str, date], Decimal]:
        """Energy per site-local day summed by meter, unit, floor or building: the sum of
        `daily_energy` of the group's meters, keyed by (the meter id or the place's tag value as
        written, e.g. the unit number; the day).

        `meters` maps meter id -> tags (schema.measurements TAG_*): only those meters count,
        placed as it says, and every store gives the same answer. Without it the store places
        meters itself: InfluxDB by the tags stored with each day's last reading, the SQL store by
        the meters, units, floors and buildings tables of its database. A meter without the
        group's tag counts in no group."""

    def archive(self, before: datetime, tz: ZoneInfo) -> int:
        """Roll every whole site-local day before `before` up into one row per meter and day,
        and remove those days' readings; return how many readings were removed.

        daily_energy and daily_energy_by give the same answers afterwards; `readings` no
        longer returns the removed readings. Running it again changes nothing; readings written
        later for an archived day are merged into its row by the next run."""

    def close(self) -> None:
        """Release connections."""
