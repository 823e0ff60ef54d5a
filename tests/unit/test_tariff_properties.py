"""Properties of tariff pricing over random tariffs, calendars and meter reading patterns.

Each example draws a tariff (one to three versions of any kind, random day plans, seasons,
holiday plan and ladder), a site time zone (with or without DST), holidays, and a stretch of up
to 20 days cut into consecutive reading intervals, then prices the intervals the way billing
does: the consumption counted per tier period carries from one interval to the next.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing.tariffs import (
    BANDS,
    KINDS,
    Segment,
    TariffSchedule,
    TariffVersion,
    parse_spec,
    spec_to_data,
)

ZONES = (ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/Berlin"))
# Local start days near a spring DST change, an autumn one, a year end and a month end.
START_DAYS = (date(2026, 3, 25), date(2026, 10, 20), date(2026, 12, 24), date(2026, 6, 27))
MAX_SPAN = timedelta(days=20)
TOLERANCE = Decimal("1e-9")
QUANTUM = Decimal("1e-12")

FAST = settings(max_examples=100, deadline=None)

prices = st.integers(1, 30_000).map(lambda n: str(Decimal(n).scaleb(-4)))  # 0.0001-3.0000
surcharges = st.integers(0, 2_000).map(lambda n: str(Decimal(n).scaleb(-4)))
energies = st.integers(0, 500_000).map(lambda n: Decimal(n).scaleb(-4))  # 0-50 kWh, 4 places
month_days = st.dates(date(2000, 1, 1), date(2000, 12, 31)).map(lambda d: f"{d:%m-%d}")


@st.composite
def day_plans(draw: st.DrawFn) -> list[dict[str, str]]:
    minutes = sorted(draw(st.lists(st.integers(1, 1439), unique=True, max_size=7)))
    return [
        {"start": f"{m // 60:02d}:{m % 60:02d}", "band": draw(st.sampled_from(BANDS))}
        for m in [0, *minutes]
    ]


@st.composite
def spec_data(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(KINDS))
    data: dict[str, Any] = {"kind": kind, "tier_period": draw(st.sampled_from(["month", "year"]))}
    if kind == "flat":
        data["flat_price"] = draw(prices)
    if kind in ("tou", "tou_tiered"):
        plans = {f"plan {i}": draw(day_plans()) for i in range(draw(st.integers(1, 3)))}
        used = {period["band"] for plan in plans.values() for period in plan}
        data["plans"] = plans
        data["band_prices"] = {band: draw(prices) for band in BANDS if band in used}
        names = st.sampled_from(sorted(plans))
        seasons: list[dict[str, Any]] = []
        for i in range(draw(st.integers(0, 2))):
            season: dict[str, Any] = {"name": f"season {i}", "plan": draw(names)}
            if draw(st.booleans()):
                season["months"] = draw(st.lists(st.integers(1, 12), unique=True, min_size=1))
            else:
                season["from"], season["to"] = draw(month_days), draw(month_days)
            seasons.append(season)
        data["seasons"] = [*seasons, {"name": "default", "plan": draw(names)}]
        if draw(st.booleans()):
            data["holiday_plan"] = draw(names)
    if kind in ("tiered", "tou_tiered"):
        amount, values = ("price", prices) if kind == "tiered" else ("surcharge", surcharges)
        thresholds = sorted(draw(st.lists(st.integers(1, 400), unique=True, max_size=3)))
        data["tiers"] = [{"from_kwh": str(t), amount: draw(values)} for t in [0, *thresholds]]
    return data


@dataclass
class Site:
    schedule: TariffSchedule
    versions: list[TariffVersion]
    start: datetime
    cuts: list[datetime]  # start, the end of each reading interval, in order
    period_energy_kwh: Decimal  # already counted in the period of `start`

    @property
    def end(self) -> datetime:
        return self.cuts[-1]

    def intervals(self) -> list[tuple[datetime, datetime]]:
        return list(zip(self.cuts, self.cuts[1:], strict=False))


@st.composite
def sites(draw: st.DrawFn) -> Site:
    tz = draw(st.sampled_from(ZONES))
    first_day = draw(st.sampled_from(START_DAYS))
    start = datetime.combine(first_day, datetime.min.time(), tz).astimezone(UTC) + timedelta(
        minutes=draw(st.integers(0, 3 * 24 * 60))
    )
    span = draw(st.integers(60, int(MAX_SPAN.total_seconds())))
    inner = sorted(draw(st.lists(st.integers(1, span - 1), unique=True, max_size=10)))
    cuts = [start + timedelta(seconds=s) for s in [0, *inner, span]]
    changes = draw(st.lists(st.integers(1, span), unique=True, max_size=2))
    effective = [start - timedelta(days=draw(st.integers(0, 40)))]
    effective += [start + timedelta(seconds=s) for s in changes]
    versions = [TariffVersion(at, parse_spec(draw(spec_data()))) for at in effective]
    holidays = draw(st.sets(st.dates(first_day, first_day + timedelta(days=25)), max_size=6))
    schedule = TariffSchedule(list(reversed(versions)), holidays, tz)
    period_energy = Decimal(draw(st.integers(0, 300)))
    return Site(schedule, versions, start, cuts, period_energy)


class Billing:
    """What billing keeps between readings: the current tier period and what it has counted.

    A reading in another period than the one kept starts the count again from 0."""

    def __init__(self, site: Site) -> None:
        self.schedule = site.schedule
        self.period = site.schedule.period_key(site.start)
        self.counted = site.period_energy_kwh
        self.segments: list[Segment] = []

    def price(
        self,
        start: datetime,
        end: datetime,
        energy_kwh: Decimal,
        band_energy_kwh: dict[str, Decimal] | None = None,
    ) -> list[Segment]:
        in_period = self.schedule.period_key(start) == self.period
        segments = self.schedule.price_interval(
            start,
            end,
            energy_kwh,
            period_energy_kwh=self.counted if in_period else Decimal(0),
            band_energy_kwh=band_energy_kwh,
        )
        for segment in segments:
            if segment.period != self.period:
                self.period, self.counted = segment.period, Decimal(0)
            self.counted += segment.energy_kwh
        self.segments += segments
        return segments


def total_cost(segments: Sequence[Segment]) -> Decimal:
    return sum((s.cost for s in segments), Decimal(0))


def by_key(segments: Sequence[Segment]) -> dict[tuple[str, str | None, int, Decimal], Decimal]:
    totals: dict[tuple[str, str | None, int, Decimal], Decimal] = defaultdict(Decimal)
    for s in segments:
        totals[(s.period, s.band, s.tier, s.price_per_kwh)] += s.energy_kwh
    return totals


def assert_well_formed(site: Site, start: datetime, end: datetime, segments: list[Segment]) -> None:
    for segment in segments:
        assert segment.energy_kwh > 0
        assert segment.price_per_kwh > 0
        assert segment.cost > 0
        assert start <= segment.start <= segment.end <= end
    starts = [s.start for s in segments]
    assert starts == sorted(starts)


def assert_tiers_follow_consumption(site: Site, billing: Billing) -> None:
    """Each segment's tier holds the counted consumption it covers, and within one period
    and version the tier never goes down."""
    period, counted = site.schedule.period_key(site.start), site.period_energy_kwh
    last_tier: dict[tuple[str, datetime], int] = {}
    for s in billing.segments:
        version = site.schedule.version_at(s.start)
        tiers = version.spec.tiers
        if s.period != period:
            period, counted = s.period, Decimal(0)
        before = counted
        after = counted = counted + s.energy_kwh
        if not tiers:
            assert s.tier == 0
            continue
        assert tiers[s.tier].from_kwh <= before
        if s.tier + 1 < len(tiers):
            assert after <= tiers[s.tier + 1].from_kwh
        key = (s.period, version.effective_from)
        assert s.tier >= last_tier.get(key, 0)
        last_tier[key] = s.tier


@FAST
@given(site=sites(), data=st.data())
def test_every_kwh_is_priced_once_and_nothing_is_negative(site: Site, data: st.DataObject) -> None:
    billing = Billing(site)
    for start, end in site.intervals():
        energy_kwh = data.draw(energies)
        segments = billing.price(start, end, energy_kwh)
        assert sum((s.energy_kwh for s in segments), Decimal(0)) == energy_kwh
        assert_well_formed(site, start, end, segments)
        for s in (s for s in segments if s.end > s.start):
            # Our clock: the band and period are those in force in the middle of the segment.
            middle = s.start + (s.end - s.start) / 2
            assert site.schedule.band_at(middle) == s.band
            assert site.schedule.period_key(middle) == s.period
    assert_tiers_follow_consumption(site, billing)


@FAST
@given(site=sites(), energy_kwh=st.integers(1, 2_000_000).map(lambda n: Decimal(n).scaleb(-4)))
def test_a_steady_load_costs_the_same_in_one_interval_or_many(
    site: Site, energy_kwh: Decimal
) -> None:
    one_go = Billing(site)
    one_go.price(site.start, site.end, energy_kwh)

    # The same energy read at every cut, each interval's share in proportion to its length.
    pieces = Billing(site)
    length = (site.end - site.start).total_seconds()
    done = Decimal(0)
    for start, end in site.intervals():
        if end == site.end:
            upto = energy_kwh
        else:
            fraction = Decimal((end - site.start).total_seconds()) / Decimal(length)
            upto = (energy_kwh * fraction).quantize(QUANTUM)
        pieces.price(start, end, upto - done)
        done = upto

    assert abs(total_cost(one_go.segments) - total_cost(pieces.segments)) <= TOLERANCE
    whole, piecewise = by_key(one_go.segments), by_key(pieces.segments)
    for key in whole.keys() | piecewise.keys():
        assert abs(whole.get(key, Decimal(0)) - piecewise.get(key, Decimal(0))) <= TOLERANCE
    assert_tiers_follow_consumption(site, one_go)
    assert_tiers_follow_consumption(site, pieces)


@FAST
@given(site=sites(), data=st.data())
def test_band_registers_keep_every_kwh_in_the_meters_band(
    site: Site, data: st.DataObject
) -> None:
    priced = [set(dict(v.spec.band_prices)) for v in site.versions if v.spec.has_bands]
    bands = sorted(set(BANDS).intersection(*priced), key=BANDS.index)
    assume(bands)
    billing = Billing(site)
    for start, end in site.intervals():
        registers = {band: data.draw(energies) for band in bands}
        energy_kwh = sum(registers.values(), Decimal(0))
        segments = billing.price(start, end, energy_kwh, band_energy_kwh=registers)
        assert sum((s.energy_kwh for s in segments), Decimal(0)) == energy_kwh
        assert_well_formed(site, start, end, segments)
        if all(v.spec.has_bands for v in site.versions):
            for band, register in registers.items():
                in_band = sum((s.energy_kwh for s in segments if s.band == band), Decimal(0))
                assert in_band == register
    assert_tiers_follow_consumption(site, billing)


@FAST
@given(data=spec_data())
def test_a_spec_survives_its_stored_form(data: dict[str, Any]) -> None:
    spec = parse_spec(data)
    assert parse_spec(spec_to_data(spec)) == spec
