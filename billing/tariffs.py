"""Tariffs: what each kWh of an interval costs. Pure rules — no database, no Streamlit.

Kinds (``KINDS``)
    flat        one price per kWh.
    tou         time of use: each instant falls in a band (``BANDS``: sharp 尖峰, peak 高峰,
                flat 平, valley 低谷, deep_valley 深谷), and each band has a price.
    tiered      ladder (阶梯) prices on the consumption counted so far in the tier period — the
                local calendar month (default) or year.
    tou_tiered  band price plus the tier's surcharge.

Which band an instant is in comes from a day plan (band periods in site-local wall time). A date
in the holiday calendar uses the holiday plan when the tariff has one; any other date uses the
plan of the first season that covers it (by months, or an inclusive MM-DD range that may wrap the
year end); the last season is the default. Tariffs are versioned: each version is in force from
its ``effective_from`` instant until the next one.

Pricing an interval (``TariffSchedule.price_interval``)
    * Times are aware (segments come back in UTC). ``start < end`` and ``energy_kwh >= 0``
      (a meter going backwards is the caller's business); zero energy prices as no segments.
    * Without band registers the energy is taken as uniform over the interval and split in
      proportion to time at every boundary inside it: local midnights (so day, season, holiday
      and tier-period changes), band changes of the day's plan, and version changes. A meter
      offline for days is thereby spread over every band and day it missed.
    * With band registers (energy per band from the meter itself, summing to ``energy_kwh``
      within 0.0001 kWh) the meter's own band clock is trusted for the band and ours for the
      rest: each band's energy is priced at that band's price and spread over the interval's
      days, versions and tier periods in proportion to time. The registers are used as
      proportions of ``energy_kwh``, so the total stays exactly ``energy_kwh``; registers
      that add up to 0 are no information, and our clock is used. For flat and tiered versions
      they are ignored (band None). Energy in a band the version has no price for is refused:
      the meter's band clock does not match the tariff.
    * Tiers: consumption is counted from ``period_energy_kwh`` in the tier period containing
      ``start`` and from 0 in each later period (a new period is any change of period key, which
      includes a version that changes ``tier_period``). A piece that crosses a threshold is
      split exactly at it — all of its bands at the same fraction — and the split instant is
      placed in proportion to energy.
    * Segments come back in time order, one per (piece, band, tier); segments with the same
      start (band registers) are listed in ``BANDS`` order. They are never merged: every
      segment lies within one local day, one version and one tier — and, by our clock, one
      band period — so daily and per-band reports can add them up directly. Segments with no
      energy are left out.
    * Exactness: proportional shares are differences of cumulative amounts rounded to 10^-12 kWh
      and the last share takes the remainder, so the segments' energies add up to
      ``energy_kwh`` exactly, none is negative, and splitting never loses or creates energy.

Local wall time: a band period starting at wall time ``t`` on date ``d`` starts at the first
instant the site's clock shows ``d t`` or later — on a DST fall-back day the first of the two
such instants, on a spring-forward day a skipped wall time starts when the clock jumps. Days in
a DST zone are therefore 23 or 25 hours long when the clocks change.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from billing.errors import BillingError

BANDS = ("sharp", "peak", "flat", "valley", "deep_valley")
CUT_CACHE_SIZE = 4096  # intervals whose pieces a schedule keeps
KINDS = ("flat", "tou", "tiered", "tou_tiered")
TIER_PERIODS = ("month", "year")
REGISTER_TOLERANCE_KWH = Decimal("0.0001")
ENERGY_QUANTUM_KWH = Decimal("1e-12")  # grid of proportional shares (see the module docstring)
PLACES = 4  # of prices, surcharges and tier thresholds

_ZERO = Decimal(0)
_ONE_DAY = timedelta(days=1)
_MIDNIGHT = time(0)
_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_MONTH_DAY = re.compile(r"(\d\d)-(\d\d)")

_TOU_FIELDS = frozenset({"band_prices", "plans", "seasons", "holiday_plan"})
_FIELDS = {
    "flat": frozenset({"kind", "tier_period", "flat_price"}),
    "tou": frozenset({"kind", "tier_period"}) | _TOU_FIELDS,
    "tiered": frozenset({"kind", "tier_period", "tiers"}),
    "tou_tiered": frozenset({"kind", "tier_period", "tiers"}) | _TOU_FIELDS,
}
_ALL_FIELDS = frozenset().union(*_FIELDS.values())


class TariffError(BillingError):
    """A tariff that cannot be used as written, or an interval it cannot price."""


# --------------------------------------------------------------------------------------------
# The parsed, validated tariff
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BandPeriod:
    start: time  # site-local wall time; the period lasts until the next one starts (or midnight)
    band: str


@dataclass(frozen=True)
class DayPlan:
    name: str
    periods: tuple[BandPeriod, ...]  # sorted, the first at 00:00


@dataclass(frozen=True)
class Season:
    """Dates using a plan: by months, by an inclusive MM-DD range, or (neither) every date."""

    name: str
    plan: str
    months: tuple[int, ...] = ()
    from_day: tuple[int, int] | None = None  # (month, day)
    to_day: tuple[int, int] | None = None  # (month, day); before from_day when it wraps the year

    @property
    def is_default(self) -> bool:
        return not self.months and self.from_day is None

    def covers(self, on: date) -> bool:
        if self.months:
            return on.month in self.months
        if self.from_day is None or self.to_day is None:
            return True
        month_day = (on.month, on.day)
        if self.from_day <= self.to_day:
            return self.from_day <= month_day <= self.to_day
        return month_day >= self.from_day or month_day <= self.to_day


@dataclass(frozen=True)
class Tier:
    from_kwh: Decimal  # counted consumption in the tier period where this tier starts
    per_kwh: Decimal  # the tier's price (tiered) or its surcharge on the band price (tou_tiered)


@dataclass(frozen=True)
class TariffSpec:
    """One version's prices and calendar. Build it with ``parse_spec``, which validates it."""

    kind: str
    tier_period: str = "month"
    flat_price: Decimal | None = None
    band_prices: tuple[tuple[str, Decimal], ...] = ()  # in BANDS order
    plans: tuple[DayPlan, ...] = ()
    seasons: tuple[Season, ...] = ()
    holiday_plan: str | None = None
    tiers: tuple[Tier, ...] = ()

    @property
    def has_bands(self) -> bool:
        return self.kind in ("tou", "tou_tiered")

    def band_price(self, band: str) -> Decimal | None:
        return next((price for name, price in self.band_prices if name == band), None)

    def plan(self, name: str) -> DayPlan:
        return next(plan for plan in self.plans if plan.name == name)

    def plan_on(self, on: date, *, holiday: bool) -> DayPlan:
        if holiday and self.holiday_plan is not None:
            return self.plan(self.holiday_plan)
        return self.plan(next(s.plan for s in self.seasons if s.covers(on)))

    def period_key(self, on: date) -> str:
        return f"{on.year:04d}-{on.month:02d}" if self.tier_period == "month" else f"{on.year:04d}"

    def price(self, band: str | None, tier: int) -> Decimal:
        if self.kind == "flat":
            assert self.flat_price is not None
            return self.flat_price
        if self.kind == "tiered":
            return self.tiers[tier].per_kwh
        assert band is not None
        band_price = self.band_price(band)
        assert band_price is not None
        return band_price + (self.tiers[tier].per_kwh if self.tiers else _ZERO)


# --------------------------------------------------------------------------------------------
# Parsing and validation: every message names the field, e.g. "plans.standard[2].start: ..."
# --------------------------------------------------------------------------------------------
def _fail(path: str, message: str) -> NoReturn:
    raise TariffError(f"{path}: {message}")


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(path, "must be an object of named fields")
    for key in value:
        if not isinstance(key, str):
            _fail(path, f"field names must be text, not {key!r}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list | tuple) or not value:
        _fail(path, "must be a non-empty list")
    return list(value)


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(path, "must be a non-empty name")
    return value


def _required(data: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in data:
        _fail(path, "is required")
    return data[key]


def _only(data: Mapping[str, Any], allowed: Collection[str], path: str) -> None:
    for key in data:
        if key not in allowed:
            _fail(f"{path}.{key}", f"not a field here (expected {', '.join(sorted(allowed))})")


def _decimal(value: Any, path: str) -> Decimal:
    if isinstance(value, float):
        _fail(path, f"write {value!r} as a string such as \"0.8500\"; a float is not exact")
    number: Decimal | None = None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            number = None
    if number is None or not number.is_finite():
        _fail(path, f"{value!r} is not a number")
    return number


def _amount(value: Any, path: str, *, zero_allowed: bool) -> Decimal:
    """A price, surcharge or threshold: positive (or 0 when allowed), at most 4 places."""
    amount = _decimal(value, path)
    if amount < 0 or (amount == 0 and not zero_allowed):
        _fail(path, f"{value!r} must be {'0 or more' if zero_allowed else 'above 0'}")
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -PLACES:
        _fail(path, f"{value!r} has more than {PLACES} decimal places")
    return amount


def _price(value: Any, path: str) -> Decimal:
    return _amount(value, path, zero_allowed=False)


def _time_of_day(value: Any, path: str) -> time:
    match = _TIME_OF_DAY.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        _fail(path, f"{value!r} is not a time of day (HH:MM, 00:00 to 23:59)")
    return time(int(match[1]), int(match[2]))


def _month_day(value: Any, path: str) -> tuple[int, int]:
    match = _MONTH_DAY.fullmatch(value) if isinstance(value, str) else None
    try:
        if match is None:
            raise ValueError
        date(2000, int(match[1]), int(match[2]))  # a leap year, so 02-29 is a day
    except ValueError:
        _fail(path, f"{value!r} is not a day of the year (MM-DD, for example 07-01)")
    return int(match[1]), int(match[2])


def _parse_plan(name: str, value: Any, path: str) -> DayPlan:
    periods: list[BandPeriod] = []
    for i, entry in enumerate(_list(value, path)):
        where = f"{path}[{i}]"
        entry = _mapping(entry, where)
        _only(entry, ("start", "band"), where)
        start = _time_of_day(_required(entry, "start", f"{where}.start"), f"{where}.start")
        band = _required(entry, "band", f"{where}.band")
        if band not in BANDS:
            _fail(f"{where}.band", f"{band!r} is not a band ({', '.join(BANDS)})")
        if i == 0 and start != _MIDNIGHT:
            _fail(f"{where}.start", "the first period of a day must start at 00:00")
        if periods and start <= periods[-1].start:
            _fail(
                f"{where}.start",
                f"{entry['start']!r} must be later than the period before it "
                f"({periods[-1].start:%H:%M})",
            )
        periods.append(BandPeriod(start, band))
    return DayPlan(name, tuple(periods))


def _parse_season(value: Any, path: str, plans: Collection[str]) -> Season:
    entry = _mapping(value, path)
    _only(entry, ("name", "plan", "months", "from", "to"), path)
    name = _text(_required(entry, "name", f"{path}.name"), f"{path}.name")
    plan = _required(entry, "plan", f"{path}.plan")
    if plan not in plans:
        _fail(f"{path}.plan", f"{plan!r} is not one of the plans ({', '.join(plans)})")
    if "months" in entry and ("from" in entry or "to" in entry):
        _fail(path, "give either months or from/to dates, not both")
    months: list[int] = []
    listed = _list(entry["months"], f"{path}.months") if "months" in entry else []
    for i, month in enumerate(listed):
        if isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= 12:
            _fail(f"{path}.months[{i}]", f"{month!r} is not a month (1 to 12)")
        if month in months:
            _fail(f"{path}.months[{i}]", f"month {month} is listed twice")
        months.append(month)
    if ("from" in entry) != ("to" in entry):
        missing = "to" if "from" in entry else "from"
        _fail(f"{path}.{missing}", "is required with a date range (both from and to)")
    if "from" in entry:
        return Season(
            name,
            plan,
            from_day=_month_day(entry["from"], f"{path}.from"),
            to_day=_month_day(entry["to"], f"{path}.to"),
        )
    return Season(name, plan, months=tuple(months))


def _parse_tiers(value: Any, kind: str) -> tuple[Tier, ...]:
    amount, other = ("price", "surcharge") if kind == "tiered" else ("surcharge", "price")
    tiers: list[Tier] = []
    for i, entry in enumerate(_list(value, "tiers")):
        where = f"tiers[{i}]"
        entry = _mapping(entry, where)
        if other in entry:
            _fail(
                f"{where}.{other}",
                f"a {kind} tariff's tiers have a {amount}, not a {other}"
                + (" (added to the band price)" if kind == "tou_tiered" else ""),
            )
        _only(entry, ("from_kwh", amount), where)
        threshold = f"{where}.from_kwh"
        from_kwh = _amount(_required(entry, "from_kwh", threshold), threshold, zero_allowed=True)
        if i == 0 and from_kwh != 0:
            _fail(f"{where}.from_kwh", "the first tier must start at 0 kWh")
        if tiers and from_kwh <= tiers[-1].from_kwh:
            _fail(
                f"{where}.from_kwh",
                f"{from_kwh} kWh must be above the tier before it ({tiers[-1].from_kwh} kWh)",
            )
        per_kwh = _amount(
            _required(entry, amount, f"{where}.{amount}"),
            f"{where}.{amount}",
            zero_allowed=kind == "tou_tiered",
        )
        tiers.append(Tier(from_kwh, per_kwh))
    return tuple(tiers)


def parse_spec(data: Mapping[str, Any]) -> TariffSpec:
    """A validated tariff from its stored form; TariffError names the first bad field."""
    data = _mapping(data, "tariff")
    kind = _required(data, "kind", "kind")
    if kind not in KINDS:
        _fail("kind", f"{kind!r} is not a tariff kind ({', '.join(KINDS)})")
    for key in data:
        if key not in _FIELDS[kind]:
            known = key in _ALL_FIELDS
            _fail(key, f"not used by a {kind} tariff" if known else "not a tariff field")
    tier_period = data.get("tier_period", "month")
    if tier_period not in TIER_PERIODS:
        _fail("tier_period", f"{tier_period!r} is not a tier period (month or year)")

    if kind == "flat":
        price = _price(_required(data, "flat_price", "flat_price"), "flat_price")
        return TariffSpec(kind, tier_period, flat_price=price)

    tiers = _parse_tiers(_required(data, "tiers", "tiers"), kind) if kind != "tou" else ()
    if kind == "tiered":
        return TariffSpec(kind, tier_period, tiers=tiers)

    plans_data = _mapping(_required(data, "plans", "plans"), "plans")
    if not plans_data:
        _fail("plans", "needs at least one day plan")
    plans = tuple(
        _parse_plan(_text(name, "plans"), value, f"plans.{name}")
        for name, value in plans_data.items()
    )
    names = [plan.name for plan in plans]

    seasons_data = _list(_required(data, "seasons", "seasons"), "seasons")
    seasons = tuple(_parse_season(v, f"seasons[{i}]", names) for i, v in enumerate(seasons_data))
    for i, season in enumerate(seasons):
        if season.name in (s.name for s in seasons[:i]):
            _fail(f"seasons[{i}].name", f"{season.name!r} is used by an earlier season")
        if season.is_default and i < len(seasons) - 1:
            _fail(f"seasons[{i}]", "only the last season may have no months or dates")
    if not seasons[-1].is_default:
        _fail(
            f"seasons[{len(seasons) - 1}]",
            "the last season is the default for every other date: give it no months or dates",
        )

    holiday_plan = data.get("holiday_plan")
    if holiday_plan is not None and holiday_plan not in names:
        _fail("holiday_plan", f"{holiday_plan!r} is not one of the plans ({', '.join(names)})")

    prices_data = _mapping(_required(data, "band_prices", "band_prices"), "band_prices")
    for band in prices_data:
        if band not in BANDS:
            _fail(f"band_prices.{band}", f"not a band ({', '.join(BANDS)})")
    for plan in plans:
        for period in plan.periods:
            if period.band not in prices_data:
                _fail("band_prices", f"no price for {period.band}, which plan {plan.name} uses")
    band_prices = tuple(
        (band, _price(prices_data[band], f"band_prices.{band}"))
        for band in BANDS
        if band in prices_data
    )
    return TariffSpec(
        kind,
        tier_period,
        band_prices=band_prices,
        plans=plans,
        seasons=seasons,
        holiday_plan=holiday_plan,
        tiers=tiers,
    )


def spec_to_data(spec: TariffSpec) -> dict[str, Any]:
    """The stored (JSON-ready) form of a spec: money and kWh as strings."""
    data: dict[str, Any] = {"kind": spec.kind, "tier_period": spec.tier_period}
    if spec.flat_price is not None:
        data["flat_price"] = str(spec.flat_price)
    if spec.has_bands:
        data["band_prices"] = {band: str(price) for band, price in spec.band_prices}
        data["plans"] = {
            plan.name: [{"start": f"{p.start:%H:%M}", "band": p.band} for p in plan.periods]
            for plan in spec.plans
        }
        data["seasons"] = [_season_data(season) for season in spec.seasons]
        if spec.holiday_plan is not None:
            data["holiday_plan"] = spec.holiday_plan
    if spec.tiers:
        amount = "price" if spec.kind == "tiered" else "surcharge"
        data["tiers"] = [{"from_kwh": str(t.from_kwh), amount: str(t.per_kwh)} for t in spec.tiers]
    return data


def _season_data(season: Season) -> dict[str, Any]:
    data: dict[str, Any] = {"name": season.name, "plan": season.plan}
    if season.months:
        data["months"] = list(season.months)
    if season.from_day is not None and season.to_day is not None:
        data["from"] = "{:02d}-{:02d}".format(*season.from_day)
        data["to"] = "{:02d}-{:02d}".format(*season.to_day)
    return data


# --------------------------------------------------------------------------------------------
# Pricing
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TariffVersion:
    effective_from: datetime  # aware
    spec: TariffSpec


@dataclass(frozen=True)
class Segment:
    start: datetime  # aware UTC
    end: datetime
    period: str  # tier period key in local time: "2026-11" (month) or "2026" (year)
    band: str | None  # None for flat / tiered versions
    tier: int  # 0-based; 0 when the tariff has no tiers
    energy_kwh: Decimal
    price_per_kwh: Decimal  # band price + tier surcharge, or tier price, or flat price

    @property
    def cost(self) -> Decimal:
        """Unrounded: the ledger rounds cumulative sums, never single segments."""
        return self.energy_kwh * self.price_per_kwh


@dataclass(frozen=True)
class _Piece:
    """A stretch of time within one local day, version and tier period (and band, when split
    by our clock)."""

    start: datetime
    end: datetime
    version: TariffVersion
    period: str
    band: str | None

    @property
    def spec(self) -> TariffSpec:
        return self.version.spec


def _share(total: Decimal, weights: Sequence[Decimal | int]) -> list[Decimal]:
    """`total` shared in proportion to `weights` (all >= 0, some > 0).

    Shares are differences of cumulative amounts rounded to ENERGY_QUANTUM_KWH, the last
    reaching `total` itself: they add up to `total` exactly and none is negative, because each
    cumulative amount is a non-decreasing function of the running weight.
    """
    whole = sum(weights)
    shares: list[Decimal] = []
    running: Decimal | int = 0
    done = _ZERO
    for i, weight in enumerate(weights):
        running += weight
        if i == len(weights) - 1:
            upto = total
        else:
            upto = min(total, (total * running / whole).quantize(ENERGY_QUANTUM_KWH))
        shares.append(upto - done)
        done = upto
    return shares


def _microseconds(span: timedelta) -> int:
    return span // timedelta(microseconds=1)


def _aware_utc(at: datetime, what: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise TariffError(f"{what} {at.isoformat()} has no time zone; give times in UTC")
    return at.astimezone(UTC)


class TariffSchedule:
    """A tariff's versions, the holiday calendar and the site's time zone: prices intervals."""

    def __init__(
        self, versions: Sequence[TariffVersion], holidays: Collection[date], tz: ZoneInfo
    ) -> None:
        if not versions:
            raise TariffError("A tariff needs at least one version")
        starts = [_aware_utc(v.effective_from, "A tariff version's start") for v in versions]
        order = sorted(range(len(versions)), key=starts.__getitem__)
        self._versions = [versions[i] for i in order]
        self._starts = [starts[i] for i in order]
        for earlier, later in zip(self._starts, self._starts[1:], strict=False):
            if earlier == later:
                raise TariffError(f"Two tariff versions both take effect at {later.isoformat()}")
        self._holidays = frozenset(holidays)
        self._tz = tz
        # A day's band periods are the same for every meter on the tariff: a batch of ten
        # thousand meters works them out once per version and day.
        self._spans: dict[tuple[int, date], list[tuple[datetime, datetime, str]]] = {}
        self._midnights: dict[date, datetime] = {}
        # Likewise an interval's pieces: a collection cycle reads every meter at one instant.
        self._cut: dict[tuple[datetime, datetime, bool], tuple[list[_Piece], list[int]]] = {}

    # -- the calendar --------------------------------------------------------------------------
    def _index_at(self, at: datetime) -> int:
        at = _aware_utc(at, "The time")
        if at < self._starts[0]:
            raise TariffError(
                f"No tariff is in force at {at.isoformat()}: "
                f"the first version takes effect at {self._starts[0].isoformat()}"
            )
        return max(i for i, start in enumerate(self._starts) if start <= at)

    def version_at(self, at: datetime) -> TariffVersion:
        return self._versions[self._index_at(at)]

    def _local_date(self, at: datetime) -> date:
        return at.astimezone(self._tz).date()

    def _wall_to_utc(self, on: date, at: time) -> datetime:
        """The first instant at which the site's clock shows `on` `at` or later."""
        wall = datetime.combine(on, at)
        instant = wall.replace(tzinfo=self._tz).astimezone(UTC)
        if instant.astimezone(self._tz).replace(tzinfo=None) == wall:
            return instant  # the wall time exists (on a fall-back day: its first occurrence)
        # The clock skips this wall time. Read with the offset after the jump it falls before
        # the jump, with the offset before it after: search the whole seconds between for the
        # jump itself (time zone transitions fall on whole seconds).
        low = math.floor(wall.replace(tzinfo=self._tz, fold=1).timestamp())
        high = math.ceil(instant.timestamp())
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, self._tz).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, UTC)

    def _midnight(self, on: date) -> datetime:
        if (midnight := self._midnights.get(on)) is None:
            midnight = self._midnights[on] = self._wall_to_utc(on, _MIDNIGHT)
        return midnight

    def _band_spans(self, spec: TariffSpec, on: date) -> list[tuple[datetime, datetime, str]]:
        """The local day `on` as (start, end, band) in UTC, skipping periods the clock skips."""
        if (spans := self._spans.get((id(spec), on))) is None:
            spans = self._spans[id(spec), on] = self._work_out_spans(spec, on)
        return spans

    def _work_out_spans(self, spec: TariffSpec, on: date) -> list[tuple[datetime, datetime, str]]:
        plan = spec.plan_on(on, holiday=on in self._holidays)
        starts = [self._wall_to_utc(on, p.start) for p in plan.periods]
        starts.append(self._midnight(on + _ONE_DAY))
        return [
            (starts[i], starts[i + 1], period.band)
            for i, period in enumerate(plan.periods)
            if starts[i] < starts[i + 1]
        ]

    def band_at(self, at: datetime) -> str | None:
        spec = self.version_at(at).spec
        if not spec.has_bands:
            return None
        at = at.astimezone(UTC)
        spans = self._band_spans(spec, self._local_date(at))
        band = spans[0][2]
        for span_start, _, span_band in spans:
            if span_start <= at:
                band = span_band
        return band

    def period_key(self, at: datetime) -> str:
        return self.version_at(at).spec.period_key(self._local_date(at.astimezone(UTC)))

    def _pieces(self, start: datetime, end: datetime, *, by_band: bool) -> list[_Piece]:
        """[start, end) cut at version changes and local midnights, and at band changes when
        `by_band` and the version has bands."""
        pieces: list[_Piece] = []
        first = self._index_at(start)
        for i in range(first, len(self._versions)):
            version_start = max(start, self._starts[i])
            version_end = min(end, self._starts[i + 1]) if i + 1 < len(self._starts) else end
            if version_start >= version_end:
                break
            version = self._versions[i]
            spec = version.spec
            on = self._local_date(version_start)
            while True:
                next_midnight = self._midnight(on + _ONE_DAY)
                day_start = max(version_start, self._midnight(on))
                day_end = min(version_end, next_midnight)
                period = spec.period_key(on)
                if by_band and spec.has_bands:
                    for span_start, span_end, band in self._band_spans(spec, on):
                        piece_start, piece_end = max(span_start, day_start), min(span_end, day_end)
                        if piece_start < piece_end:
                            pieces.append(_Piece(piece_start, piece_end, version, period, band))
                elif day_start < day_end:
                    pieces.append(_Piece(day_start, day_end, version, period, None))
                if next_midnight >= version_end:
                    break
                on += _ONE_DAY
        return pieces

    def _cut_interval(
        self, start: datetime, end: datetime, *, by_band: bool
    ) -> tuple[list[_Piece], list[int]]:
        """_pieces of the interval and their lengths in microseconds, worked out once."""
        key = (start, end, by_band)
        if (cut := self._cut.get(key)) is None:
            if len(self._cut) >= CUT_CACHE_SIZE:
                self._cut.clear()
            pieces = self._pieces(start, end, by_band=by_band)
            cut = self._cut[key] = (pieces, [_microseconds(p.end - p.start) for p in pieces])
        return cut

    # -- pricing -------------------------------------------------------------------------------
    def price_interval(
        self,
        start: datetime,
        end: datetime,
        energy_kwh: Decimal,
        *,
        period_energy_kwh: Decimal,
        band_energy_kwh: Mapping[str, Decimal] | None = None,
    ) -> list[Segment]:
        """The interval's energy as priced segments (rules in the module docstring)."""
        start = _aware_utc(start, "The interval's start")
        end = _aware_utc(end, "The interval's end")
        if end < start:
            raise TariffError(
                f"The interval ends ({end.isoformat()}) before it starts ({start.isoformat()})"
            )
        if energy_kwh < 0:
            raise TariffError(f"The interval's energy is negative ({energy_kwh} kWh)")
        if period_energy_kwh < 0:
            raise TariffError(
                f"The consumption already counted this period is negative ({period_energy_kwh} kWh)"
            )
        if energy_kwh == 0:
            return []
        if start == end:
            raise TariffError(
                f"{energy_kwh} kWh in an interval with no length (at {start.isoformat()})"
            )
        registers = self._registers(band_energy_kwh, energy_kwh)
        pieces, durations = self._cut_interval(start, end, by_band=registers is None)
        energies: list[dict[str | None, Decimal]]
        if registers is None:
            shares = _share(energy_kwh, durations)
            energies = [{p.band: e} for p, e in zip(pieces, shares, strict=True)]
        else:
            energies = self._spread(registers, pieces, durations)

        segments: list[Segment] = []
        period, counted = pieces[0].period, period_energy_kwh
        for piece, piece_energy in zip(pieces, energies, strict=True):
            if piece.period != period:
                period, counted = piece.period, _ZERO
            counted = self._tier_split(piece, piece_energy, counted, segments)
        return segments

    def _registers(
        self, band_energy_kwh: Mapping[str, Decimal] | None, energy_kwh: Decimal
    ) -> dict[str, Decimal] | None:
        """The interval's energy per band by the meter's registers, or None to use our clock."""
        if band_energy_kwh is None:
            return None
        for band, value in band_energy_kwh.items():
            if band not in BANDS:
                raise TariffError(f"The meter reported energy for {band!r}, which is not a band")
            if value < 0:
                raise TariffError(f"The meter's {band} register went backwards ({value} kWh)")
        total = sum(band_energy_kwh.values(), _ZERO)
        if abs(total - energy_kwh) > REGISTER_TOLERANCE_KWH:
            raise TariffError(
                f"The meter's band registers add up to {total} kWh but its total register to "
                f"{energy_kwh} kWh; they must agree within {REGISTER_TOLERANCE_KWH} kWh"
            )
        if total == 0:
            return None  # a total within the tolerance of zero: nothing to apportion by
        bands = [band for band in BANDS if band_energy_kwh.get(band, _ZERO) > 0]
        shares = _share(energy_kwh, [band_energy_kwh[band] for band in bands])
        return dict(zip(bands, shares, strict=True))

    @staticmethod
    def _spread(
        registers: Mapping[str, Decimal], pieces: Sequence[_Piece], durations: Sequence[int]
    ) -> list[dict[str | None, Decimal]]:
        """Each band's energy spread over the pieces in proportion to time."""
        per_band = {band: _share(energy, durations) for band, energy in registers.items()}
        energies: list[dict[str | None, Decimal]] = []
        for i, piece in enumerate(pieces):
            if not piece.spec.has_bands:
                energies.append({None: sum((shares[i] for shares in per_band.values()), _ZERO)})
                continue
            for band in registers:
                if piece.spec.band_price(band) is None:
                    raise TariffError(
                        f"The meter recorded energy in the {band} band, which the tariff version "
                        f"from {piece.version.effective_from.isoformat()} has no price for; "
                        "check the meter's band clock"
                    )
            energies.append({band: shares[i] for band, shares in per_band.items()})
        return energies

    @staticmethod
    def _tier_split(
        piece: _Piece,
        energies: Mapping[str | None, Decimal],
        counted: Decimal,
        segments: list[Segment],
    ) -> Decimal:
        """Append the piece's segments, split at tier thresholds; return the new count."""
        spec = piece.spec
        start, remaining = piece.start, dict(energies)
        while True:
            total = sum(remaining.values(), _ZERO)
            tier = max((i for i, t in enumerate(spec.tiers) if t.from_kwh <= counted), default=0)
            next_from = spec.tiers[tier + 1].from_kwh if tier + 1 < len(spec.tiers) else None
            if next_from is None or counted + total <= next_from:
                _append(segments, start, piece.end, piece.period, tier, remaining, spec)
                return counted + total
            room = next_from - counted
            bands = list(remaining)
            below = dict(zip(bands, _share(room, [remaining[b] for b in bands]), strict=True))
            offset = _microseconds(piece.end - start) * room / total
            split_at = start + timedelta(microseconds=int(offset.to_integral_value()))
            _append(segments, start, split_at, piece.period, tier, below, spec)
            remaining = {band: remaining[band] - below[band] for band in bands}
            start, counted = split_at, next_from


def _append(
    segments: list[Segment],
    start: datetime,
    end: datetime,
    period: str,
    tier: int,
    energies: Mapping[str | None, Decimal],
    spec: TariffSpec,
) -> None:
    for band, energy_kwh in energies.items():
        if energy_kwh > 0:
            price = spec.price(band, tier)
            segments.append(Segment(start, end, period, band, tier, energy_kwh, price))
