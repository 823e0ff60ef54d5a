"""Tariffs priced by hand: every expected number is worked out in the comments beside it.

The site is a shop in a Shanghai mall (Asia/Shanghai, UTC+8, no DST) on an illustrative
commercial time-of-use tariff; one Berlin day shows that bands follow local wall time through
a DST change.
"""

from __future__ import annotations

import copy
import json
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from billing.errors import BillingError
from billing.money import CENT, to_charge
from billing.tariffs import (
    BANDS,
    Segment,
    TariffError,
    TariffSchedule,
    TariffVersion,
    parse_spec,
    spec_to_data,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
D = Decimal

PRICES = {
    "sharp": "1.3483",
    "peak": "1.1236",
    "flat": "0.7108",
    "valley": "0.3318",
    "deep_valley": "0.2100",
}
STANDARD = [  # an ordinary day: valley 00-08, peak 08-11, flat 11-13, peak 13-17, flat 17-22,
    {"start": "00:00", "band": "valley"},  # valley 22-24
    {"start": "08:00", "band": "peak"},
    {"start": "11:00", "band": "flat"},
    {"start": "13:00", "band": "peak"},
    {"start": "17:00", "band": "flat"},
    {"start": "22:00", "band": "valley"},
]
SUMMER = [  # July and August: all five bands
    {"start": "00:00", "band": "valley"},
    {"start": "02:00", "band": "deep_valley"},
    {"start": "05:00", "band": "valley"},
    {"start": "08:00", "band": "peak"},
    {"start": "11:00", "band": "flat"},
    {"start": "13:00", "band": "peak"},
    {"start": "19:00", "band": "sharp"},
    {"start": "21:00", "band": "peak"},
    {"start": "22:00", "band": "valley"},
]
WINTER = [  # 15 December to 15 January: the standard day with a sharp evening 18-20
    {"start": "00:00", "band": "valley"},
    {"start": "08:00", "band": "peak"},
    {"start": "11:00", "band": "flat"},
    {"start": "13:00", "band": "peak"},
    {"start": "17:00", "band": "flat"},
    {"start": "18:00", "band": "sharp"},
    {"start": "20:00", "band": "flat"},
    {"start": "22:00", "band": "valley"},
]
HOLIDAY = [  # public holidays: no peak at all
    {"start": "00:00", "band": "valley"},
    {"start": "08:00", "band": "flat"},
    {"start": "22:00", "band": "valley"},
]
TOU: dict[str, Any] = {
    "kind": "tou",
    "band_prices": PRICES,
    "plans": {"standard": STANDARD, "summer": SUMMER, "winter": WINTER, "holiday": HOLIDAY},
    "seasons": [
        {"name": "summer", "plan": "summer", "months": [7, 8]},
        {"name": "winter", "plan": "winter", "from": "12-15", "to": "01-15"},
        {"name": "rest of the year", "plan": "standard"},
    ],
    "holiday_plan": "holiday",
}
# 阶梯: the first 1,000 kWh of a month at the band price, the next 2,000 kWh 0.05 dearer,
# everything above 3,000 kWh 0.10 dearer.
TOU_TIERED: dict[str, Any] = {
    **TOU,
    "kind": "tou_tiered",
    "tiers": [
        {"from_kwh": "0", "surcharge": "0"},
        {"from_kwh": "1000", "surcharge": "0.0500"},
        {"from_kwh": "3000", "surcharge": "0.1000"},
    ],
}
# A plain ladder: 0.60 for the first 200 kWh of the month, 0.75 after.
TIERED: dict[str, Any] = {
    "kind": "tiered",
    "tiers": [{"from_kwh": "0", "price": "0.6000"}, {"from_kwh": "200", "price": "0.7500"}],
}
FLAT: dict[str, Any] = {"kind": "flat", "flat_price": "0.8500"}


def sh(local: str) -> datetime:
    """A Shanghai wall time, as the UTC instant billing works in."""
    return datetime.fromisoformat(local).replace(tzinfo=SHANGHAI).astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def schedule(
    *versions: tuple[str, Mapping[str, Any]],
    tz: ZoneInfo = SHANGHAI,
    holidays: Collection[date] = (),
) -> TariffSchedule:
    """Versions as (local effective-from, spec data) pairs."""
    return TariffSchedule(
        [
            TariffVersion(datetime.fromisoformat(at).replace(tzinfo=tz).astimezone(UTC),
                          parse_spec(data))
            for at, data in versions
        ],
        holidays,
        tz,
    )


def one(data: Mapping[str, Any], **kwargs: Any) -> TariffSchedule:
    return schedule(("2025-01-01 00:00", data), **kwargs)


def cost(segments: Iterable[Segment]) -> Decimal:
    return sum((s.cost for s in segments), D(0))


def energy(segments: Iterable[Segment]) -> Decimal:
    return sum((s.energy_kwh for s in segments), D(0))


def energy_by_band(segments: Iterable[Segment]) -> dict[str | None, Decimal]:
    totals: dict[str | None, Decimal] = defaultdict(D)
    for s in segments:
        totals[s.band] += s.energy_kwh
    return dict(totals)


def rows(segments: Iterable[Segment], tz: ZoneInfo = SHANGHAI) -> list[tuple[str, ...]]:
    """Segments as (local start, local end, band, tier, kWh, price) for readable asserts."""
    return [
        (
            f"{s.start.astimezone(tz):%m-%d %H:%M}",
            f"{s.end.astimezone(tz):%m-%d %H:%M}",
            str(s.band),
            str(s.tier),
            f"{s.energy_kwh.normalize():f}",
            str(s.price_per_kwh),
        )
        for s in segments
    ]


# --------------------------------------------------------------------------------------------
# Time of use
# --------------------------------------------------------------------------------------------
def test_a_day_of_time_of_use_priced_band_by_band() -> None:
    # A shop drawing a steady 10 kW for all of Tuesday 3 November: 240 kWh.
    segments = one(TOU).price_interval(
        sh("2026-11-03 00:00"), sh("2026-11-04 00:00"), D(240), period_energy_kwh=D(0)
    )
    assert rows(segments) == [
        ("11-03 00:00", "11-03 08:00", "valley", "0", "80", "0.3318"),
        ("11-03 08:00", "11-03 11:00", "peak", "0", "30", "1.1236"),
        ("11-03 11:00", "11-03 13:00", "flat", "0", "20", "0.7108"),
        ("11-03 13:00", "11-03 17:00", "peak", "0", "40", "1.1236"),
        ("11-03 17:00", "11-03 22:00", "flat", "0", "50", "0.7108"),
        ("11-03 22:00", "11-04 00:00", "valley", "0", "20", "0.3318"),
    ]
    # valley 10 h = 100 kWh × 0.3318 =  33.18
    # peak    7 h =  70 kWh × 1.1236 =  78.652
    # flat    7 h =  70 kWh × 0.7108 =  49.756
    #                                   161.588
    assert cost(segments) == D("161.588")
    assert all(s.period == "2026-11" for s in segments)


def test_an_interval_across_a_band_boundary_is_split_in_proportion_to_time() -> None:
    # 07:30-08:30, 3 kWh: half an hour of valley, half an hour of peak.
    segments = one(TOU).price_interval(
        sh("2026-11-03 07:30"), sh("2026-11-03 08:30"), D(3), period_energy_kwh=D(0)
    )
    assert rows(segments) == [
        ("11-03 07:30", "11-03 08:00", "valley", "0", "1.5", "0.3318"),
        ("11-03 08:00", "11-03 08:30", "peak", "0", "1.5", "1.1236"),
    ]
    assert segments[0].end == utc("2026-11-03 00:00")  # 08:00 in Shanghai is midnight UTC
    # 1.5 × 0.3318 = 0.4977;  1.5 × 1.1236 = 1.6854;  together 2.1831
    assert cost(segments) == D("2.1831")


def test_an_interval_across_local_midnight_is_split_into_its_two_days() -> None:
    # 23:45-00:15, 1 kWh, valley on both sides: one segment per local day.
    segments = one(TOU).price_interval(
        sh("2026-11-03 23:45"), sh("2026-11-04 00:15"), D(1), period_energy_kwh=D(0)
    )
    assert rows(segments) == [
        ("11-03 23:45", "11-04 00:00", "valley", "0", "0.5", "0.3318"),
        ("11-04 00:00", "11-04 00:15", "valley", "0", "0.5", "0.3318"),
    ]
    assert segments[0].end == utc("2026-11-03 16:00")  # local midnight, not UTC midnight
    assert cost(segments) == D("0.3318")


def test_a_holiday_uses_the_holiday_plan() -> None:
    national_day = date(2026, 10, 1)
    tou = one(TOU, holidays={national_day})
    # 09:00-10:00, 4 kWh. On National Day 09:00 is flat: 4 × 0.7108 = 2.8432.
    holiday = tou.price_interval(
        sh("2026-10-01 09:00"), sh("2026-10-01 10:00"), D(4), period_energy_kwh=D(0)
    )
    assert [s.band for s in holiday] == ["flat"]
    assert cost(holiday) == D("2.8432")
    # The Thursday after, an ordinary day, 09:00 is peak: 4 × 1.1236 = 4.4944.
    ordinary = tou.price_interval(
        sh("2026-10-08 09:00"), sh("2026-10-08 10:00"), D(4), period_energy_kwh=D(0)
    )
    assert [s.band for s in ordinary] == ["peak"]
    assert cost(ordinary) == D("4.4944")
    # A tariff without a holiday plan prices the holiday like any other day.
    no_holiday_plan = {k: v for k, v in TOU.items() if k != "holiday_plan"}
    assert one(no_holiday_plan, holidays={national_day}).band_at(sh("2026-10-01 09:00")) == "peak"


def test_summer_months_use_the_summer_plan() -> None:
    tou = one(TOU)
    # 19:30-20:30, 2 kWh. In July 19:00-21:00 is sharp: 2 × 1.3483 = 2.6966.
    july = tou.price_interval(
        sh("2026-07-15 19:30"), sh("2026-07-15 20:30"), D(2), period_energy_kwh=D(0)
    )
    assert [s.band for s in july] == ["sharp"]
    assert cost(july) == D("2.6966")
    # In June it is the standard flat evening: 2 × 0.7108 = 1.4216.
    june = tou.price_interval(
        sh("2026-06-15 19:30"), sh("2026-06-15 20:30"), D(2), period_energy_kwh=D(0)
    )
    assert {s.band for s in june} == {"flat"}
    assert cost(june) == D("1.4216")


def test_a_season_by_dates_can_wrap_the_year_end() -> None:
    # Winter is 12-15 to 01-15 inclusive, with 18:00-20:00 sharp; otherwise 18:30 is flat.
    tou = one(TOU)
    at_1830 = {
        on: tou.band_at(sh(f"{on} 18:30"))
        for on in ["2026-12-14", "2026-12-15", "2026-12-31", "2027-01-01", "2027-01-15",
                   "2027-01-16"]
    }
    assert at_1830 == {
        "2026-12-14": "flat",
        "2026-12-15": "sharp",
        "2026-12-31": "sharp",
        "2027-01-01": "sharp",
        "2027-01-15": "sharp",
        "2027-01-16": "flat",
    }
    # New Year's Eve 17:30-18:30, 4 kWh: 2 kWh flat (0.7108) + 2 kWh sharp (1.3483)
    # = 1.4216 + 2.6966 = 4.1182.
    segments = tou.price_interval(
        sh("2026-12-31 17:30"), sh("2026-12-31 18:30"), D(4), period_energy_kwh=D(0)
    )
    assert energy_by_band(segments) == {"flat": D(2), "sharp": D(2)}
    assert cost(segments) == D("4.1182")


def test_five_bands_including_deep_valley() -> None:
    # A summer day at a steady 1 kW: 24 kWh over the five-band plan.
    segments = one(TOU).price_interval(
        sh("2026-07-15 00:00"), sh("2026-07-16 00:00"), D(24), period_energy_kwh=D(0)
    )
    # valley      00-02, 05-08, 22-24   7 h × 0.3318 =  2.3226
    # deep_valley 02-05                 3 h × 0.2100 =  0.6300
    # peak        08-11, 13-19, 21-22  10 h × 1.1236 = 11.2360
    # flat        11-13                 2 h × 0.7108 =  1.4216
    # sharp       19-21                 2 h × 1.3483 =  2.6966
    #                                                  18.3068
    assert energy_by_band(segments) == {
        "valley": D(7), "deep_valley": D(3), "peak": D(10), "flat": D(2), "sharp": D(2)
    }
    assert set(energy_by_band(segments)) == set(BANDS)
    assert cost(segments) == D("18.3068")


def test_a_three_day_gap_is_spread_over_every_band_and_day() -> None:
    # The meter was offline from Tuesday 20:00 to Friday 20:00: 72 h, 144 kWh, 2 kWh an hour.
    segments = one(TOU).price_interval(
        sh("2026-11-03 20:00"), sh("2026-11-06 20:00"), D(144), period_energy_kwh=D(0)
    )
    #              valley  peak  flat  (hours)
    # Tue 20-24       2      0     2
    # Wed            10      7     7
    # Thu            10      7     7
    # Fri 00-20       8      7     5
    #                30     21    21   → 60, 42, 42 kWh
    assert energy_by_band(segments) == {"valley": D(60), "peak": D(42), "flat": D(42)}
    # 60 × 0.3318 = 19.908;  42 × 1.1236 = 47.1912;  42 × 0.7108 = 29.8536;  total 96.9528
    assert cost(segments) == D("96.9528")
    # Each segment lies within one local day, and every day of the gap is there.
    days = [s.start.astimezone(SHANGHAI).date() for s in segments]
    assert all((s.end - timedelta(microseconds=1)).astimezone(SHANGHAI).date() == day
               for s, day in zip(segments, days, strict=True))
    assert sorted(set(days)) == [date(2026, 11, d) for d in (3, 4, 5, 6)]
    assert len(segments) == 2 + 6 + 6 + 5


# --------------------------------------------------------------------------------------------
# Tiers
# --------------------------------------------------------------------------------------------
def test_crossing_a_tier_threshold_splits_exactly_at_it() -> None:
    # 195 kWh already used this month; 10:00-11:00 uses 20 kWh more.
    segments = one(TIERED).price_interval(
        sh("2026-11-10 10:00"), sh("2026-11-10 11:00"), D(20), period_energy_kwh=D(195)
    )
    # The first 5 kWh reach 200 at 0.60 = 3.00; the other 15 kWh at 0.75 = 11.25; total 14.25.
    # At a steady load the 200th kWh is reached a quarter of the way through, at 10:15.
    assert rows(segments) == [
        ("11-10 10:00", "11-10 10:15", "None", "0", "5", "0.6000"),
        ("11-10 10:15", "11-10 11:00", "None", "1", "15", "0.7500"),
    ]
    assert cost(segments) == D("14.25")


def test_the_tier_counter_restarts_in_a_new_month() -> None:
    # 250 kWh used in November (already on the 0.75 tier); 23:00 on the 30th to 01:00 on
    # 1 December uses 10 kWh, 5 kWh either side of local midnight.
    segments = one(TIERED).price_interval(
        sh("2026-11-30 23:00"), sh("2026-12-01 01:00"), D(10), period_energy_kwh=D(250)
    )
    # November: 5 kWh × 0.75 = 3.75.  December starts again at 0 kWh: 5 kWh × 0.60 = 3.00.
    assert [(s.period, s.tier, s.energy_kwh) for s in segments] == [
        ("2026-11", 1, D(5)),
        ("2026-12", 0, D(5)),
    ]
    assert cost(segments) == D("6.75")


def test_a_yearly_ladder_carries_on_across_months_and_restarts_in_january() -> None:
    yearly = one({**TIERED, "tier_period": "year"})
    across_month = yearly.price_interval(
        sh("2026-11-30 23:00"), sh("2026-12-01 01:00"), D(10), period_energy_kwh=D(250)
    )
    # Still 2026, still above 200 kWh: 10 × 0.75 = 7.50.
    assert {(s.period, s.tier) for s in across_month} == {("2026", 1)}
    assert cost(across_month) == D("7.50")
    across_year = yearly.price_interval(
        sh("2026-12-31 23:00"), sh("2027-01-01 01:00"), D(10), period_energy_kwh=D(250)
    )
    # 5 × 0.75 in 2026 + 5 × 0.60 in 2027 = 3.75 + 3.00 = 6.75.
    assert [(s.period, s.tier) for s in across_year] == [("2026", 1), ("2027", 0)]
    assert cost(across_year) == D("6.75")
    assert yearly.period_key(sh("2027-01-01 00:00")) == "2027"
    assert yearly.period_key(sh("2026-12-31 23:59")) == "2026"


def test_a_tariff_change_mid_month_splits_the_interval_and_the_ladder_carries_on() -> None:
    dearer = {
        "kind": "tiered",
        "tiers": [{"from_kwh": "0", "price": "0.6200"}, {"from_kwh": "200", "price": "0.7800"}],
    }
    tiered = schedule(("2026-01-01 00:00", TIERED), ("2026-11-15 10:00", dearer))
    # 195 kWh used so far in November; 09:00-11:00 on the 15th uses 20 kWh, 10 an hour.
    segments = tiered.price_interval(
        sh("2026-11-15 09:00"), sh("2026-11-15 11:00"), D(20), period_energy_kwh=D(195)
    )
    # Old prices until 10:00: 5 kWh to reach 200 at 0.60 = 3.00, then 5 kWh at 0.75 = 3.75.
    # New prices from 10:00, the counter already at 205: 10 kWh at 0.78 = 7.80.  Total 14.55.
    assert rows(segments) == [
        ("11-15 09:00", "11-15 09:30", "None", "0", "5", "0.6000"),
        ("11-15 09:30", "11-15 10:00", "None", "1", "5", "0.7500"),
        ("11-15 10:00", "11-15 11:00", "None", "1", "10", "0.7800"),
    ]
    assert cost(segments) == D("14.55")
    assert tiered.version_at(sh("2026-11-15 09:59")).spec == parse_spec(TIERED)
    assert tiered.version_at(sh("2026-11-15 10:00")).spec == parse_spec(dearer)


def test_a_month_of_half_hourly_readings_matches_the_hand_computed_bill_to_the_cent() -> None:
    """A shop's November on the tiered time-of-use tariff, read every 30 minutes.

    Load: 1 kW overnight (fridges, emergency lights) 22:00-08:00; 3 kW while staff stock the
    shelves 08:00-10:00; open 10:00-22:00 at 8 kW on weekdays and 10 kW at weekends.

    Per day, by band of the standard plan (November is in no season and has no holidays):
                    weekday                          weekend
      valley  00-08 8 + 22-24 2        = 10    same                 = 10
      peak    08-10 6 + 10-11 8 + 13-17 32 = 46    6 + 10 + 40      = 56
      flat    11-13 16 + 17-22 40      = 56    20 + 50              = 70
      total                              112                          136
    November 2026 starts on a Sunday: 9 weekend days, 21 weekdays.
      valley 30 × 10                   =  300 kWh × 0.3318 =   99.5400
      peak   21 × 46 + 9 × 56 = 966 + 504 = 1,470 kWh × 1.1236 = 1,651.6920
      flat   21 × 56 + 9 × 70 = 1176 + 630 = 1,806 kWh × 0.7108 = 1,283.7048
      energy 3,576 kWh; at band prices                     3,034.9368
    Ladder surcharges on the month's 3,576 kWh:
      first 1,000 kWh  × 0.00 =   0.00
      next  2,000 kWh  × 0.05 = 100.00
      last    576 kWh  × 0.10 =  57.60
                                 157.60
    Bill: 3,034.9368 + 157.60 = 3,192.5368 → 3,192.54
    """
    tariff = one(TOU_TIERED)
    counted: dict[str, Decimal] = defaultdict(D)  # what billing keeps per tier period
    charged = D(0)
    segments: list[Segment] = []
    start = sh("2026-11-01 00:00")
    while start < sh("2026-12-01 00:00"):
        end = start + timedelta(minutes=30)
        local = start.astimezone(SHANGHAI)
        if 10 <= local.hour < 22:
            kw = D(10) if local.weekday() >= 5 else D(8)
        elif 8 <= local.hour < 10:
            kw = D(3)
        else:
            kw = D(1)
        interval = tariff.price_interval(
            start, end, kw / 2, period_energy_kwh=counted[tariff.period_key(start)]
        )
        for s in interval:
            counted[s.period] += s.energy_kwh
        segments += interval
        # The ledger charges cost-to-date minus what was already charged, at 4 places.
        charged += to_charge(cost(segments)) - charged
        start = end

    assert energy_by_band(segments) == {"valley": D(300), "peak": D(1470), "flat": D(1806)}
    tier_energy: dict[int, Decimal] = defaultdict(D)
    for s in segments:
        tier_energy[s.tier] += s.energy_kwh
    assert tier_energy == {0: D(1000), 1: D(2000), 2: D(576)}
    assert cost(segments).quantize(CENT) == D("3192.54")
    assert charged == D("3192.5368")
    assert counted == {"2026-11": D(3576)}


# --------------------------------------------------------------------------------------------
# Band registers
# --------------------------------------------------------------------------------------------
def test_band_registers_are_priced_band_by_band() -> None:
    # 07:30-08:30: by our clock half valley, half peak; the meter's own band clock says
    # 1.2 kWh valley and 1.8 kWh peak. The meter is believed:
    # 1.2 × 0.3318 + 1.8 × 1.1236 = 0.39816 + 2.02248 = 2.42064.
    segments = one(TOU).price_interval(
        sh("2026-11-03 07:30"), sh("2026-11-03 08:30"), D(3), period_energy_kwh=D(0),
        band_energy_kwh={"valley": D("1.2"), "peak": D("1.8")},
    )
    assert rows(segments) == [
        ("11-03 07:30", "11-03 08:30", "peak", "0", "1.8", "1.1236"),
        ("11-03 07:30", "11-03 08:30", "valley", "0", "1.2", "0.3318"),
    ]
    assert cost(segments) == D("2.42064")


def test_band_registers_crossing_a_tier_split_every_band_at_the_same_point() -> None:
    # 995 kWh used this month; 10:00-11:00 the registers show 6 kWh peak and 4 kWh flat.
    # The 1,000 kWh threshold is half-way through the 10 kWh, so each band splits in half:
    #   tier 0: 3 × 1.1236 + 2 × 0.7108          = 3.3708 + 1.4216 = 4.7924
    #   tier 1: 3 × (1.1236 + 0.05) + 2 × (0.7108 + 0.05) = 3.5208 + 1.5216 = 5.0424
    #                                                                       9.8348
    segments = one(TOU_TIERED).price_interval(
        sh("2026-11-03 10:00"), sh("2026-11-03 11:00"), D(10), period_energy_kwh=D(995),
        band_energy_kwh={"peak": D(6), "flat": D(4)},
    )
    assert rows(segments) == [
        ("11-03 10:00", "11-03 10:30", "peak", "0", "3", "1.1236"),
        ("11-03 10:00", "11-03 10:30", "flat", "0", "2", "0.7108"),
        ("11-03 10:30", "11-03 11:00", "peak", "1", "3", "1.1736"),
        ("11-03 10:30", "11-03 11:00", "flat", "1", "2", "0.7608"),
    ]
    assert cost(segments) == D("9.8348")


def test_band_registers_across_midnight_are_spread_over_both_days() -> None:
    # 23:00-01:00 with 4 kWh valley on the registers: 2 kWh on each local day.
    segments = one(TOU).price_interval(
        sh("2026-11-03 23:00"), sh("2026-11-04 01:00"), D(4), period_energy_kwh=D(0),
        band_energy_kwh={"valley": D(4), "peak": D(0)},
    )
    assert rows(segments) == [
        ("11-03 23:00", "11-04 00:00", "valley", "0", "2", "0.3318"),
        ("11-04 00:00", "11-04 01:00", "valley", "0", "2", "0.3318"),
    ]


def test_band_registers_a_rounding_apart_are_scaled_to_the_total() -> None:
    # Registers of 0.01 kWh can disagree with the total register by a rounding.
    segments = one(TOU).price_interval(
        sh("2026-11-03 09:00"), sh("2026-11-03 10:00"), D("1.00005"), period_energy_kwh=D(0),
        band_energy_kwh={"peak": D("0.5"), "flat": D("0.5")},
    )
    assert energy(segments) == D("1.00005")
    assert energy_by_band(segments) == {"peak": D("0.500025"), "flat": D("0.500025")}


def test_band_registers_are_ignored_by_flat_and_tiered_tariffs() -> None:
    segments = one(FLAT).price_interval(
        sh("2026-11-03 09:00"), sh("2026-11-03 10:00"), D(2), period_energy_kwh=D(0),
        band_energy_kwh={"peak": D(2)},
    )
    # 2 × 0.85 = 1.70
    assert [(s.band, s.tier, s.energy_kwh) for s in segments] == [(None, 0, D(2))]
    assert cost(segments) == D("1.70")


def test_band_registers_that_disagree_with_the_total_are_refused() -> None:
    with pytest.raises(TariffError, match=r"add up to 2\.9 kWh but .* 3 kWh"):
        one(TOU).price_interval(
            sh("2026-11-03 07:30"), sh("2026-11-03 08:30"), D(3), period_energy_kwh=D(0),
            band_energy_kwh={"valley": D("1.2"), "peak": D("1.7")},
        )


def test_energy_in_a_band_the_tariff_does_not_price_is_refused() -> None:
    two_bands = {
        "kind": "tou",
        "band_prices": {"peak": "1.0000", "valley": "0.4000"},
        "plans": {
            "day": [{"start": "00:00", "band": "valley"}, {"start": "08:00", "band": "peak"}]
        },
        "seasons": [{"name": "all year", "plan": "day"}],
    }
    with pytest.raises(TariffError, match=r"sharp band, which the tariff version .* no price"):
        one(two_bands).price_interval(
            sh("2026-11-03 19:00"), sh("2026-11-03 20:00"), D(1), period_energy_kwh=D(0),
            band_energy_kwh={"sharp": D(1)},
        )


# --------------------------------------------------------------------------------------------
# Local wall time through DST (Europe/Berlin)
# --------------------------------------------------------------------------------------------
BERLIN_DAY: dict[str, Any] = {
    "kind": "tou",
    "band_prices": {"peak": "0.3000", "valley": "0.1500", "deep_valley": "0.1000"},
    "plans": {
        "day": [
            {"start": "00:00", "band": "valley"},
            {"start": "02:30", "band": "deep_valley"},  # a wall time the spring change skips
            {"start": "05:00", "band": "valley"},
            {"start": "08:00", "band": "peak"},
            {"start": "20:00", "band": "valley"},
        ]
    },
    "seasons": [{"name": "all year", "plan": "day"}],
}


def test_bands_follow_the_local_wall_clock_in_winter_and_summer() -> None:
    berlin = one(BERLIN_DAY, tz=BERLIN)
    # Peak starts at 08:00 local: 07:00 UTC in winter (CET), 06:00 UTC in summer (CEST).
    assert berlin.band_at(utc("2026-01-15 06:59")) == "valley"
    assert berlin.band_at(utc("2026-01-15 07:00")) == "peak"
    assert berlin.band_at(utc("2026-07-15 05:59")) == "valley"
    assert berlin.band_at(utc("2026-07-15 06:00")) == "peak"


def test_the_spring_forward_day_has_23_hours_and_skipped_wall_times_start_at_the_jump() -> None:
    # Sunday 29 March 2026: at 02:00 CET the clocks jump to 03:00 CEST (01:00 UTC).
    segments = one(BERLIN_DAY, tz=BERLIN).price_interval(
        utc("2026-03-28 23:00"), utc("2026-03-29 22:00"), D(23), period_energy_kwh=D(0)
    )
    assert rows(segments, BERLIN) == [
        ("03-29 00:00", "03-29 03:00", "valley", "0", "2", "0.1500"),  # 2 real hours
        ("03-29 03:00", "03-29 05:00", "deep_valley", "0", "2", "0.1000"),  # from the jump
        ("03-29 05:00", "03-29 08:00", "valley", "0", "3", "0.1500"),
        ("03-29 08:00", "03-29 20:00", "peak", "0", "12", "0.3000"),
        ("03-29 20:00", "03-30 00:00", "valley", "0", "4", "0.1500"),
    ]
    # 1 kWh an hour: valley 9 × 0.15 + deep valley 2 × 0.10 + peak 12 × 0.30
    # = 1.35 + 0.20 + 3.60 = 5.15
    assert cost(segments) == D("5.15")


def test_of_two_band_starts_the_clock_skips_only_the_later_one_happens() -> None:
    # Valley until 02:10, deep valley from 02:10, peak from 02:50: on 29 March the clock jumps
    # from 02:00 straight to 03:00 (01:00 UTC), so both start at the jump and deep valley,
    # which would last until the peak starts at the same instant, never happens that day.
    skipped = copy.deepcopy(BERLIN_DAY)
    skipped["plans"]["day"] = [
        {"start": "00:00", "band": "valley"},
        {"start": "02:10", "band": "deep_valley"},
        {"start": "02:50", "band": "peak"},
    ]
    segments = one(skipped, tz=BERLIN).price_interval(
        utc("2026-03-28 23:00"), utc("2026-03-29 22:00"), D(23), period_energy_kwh=D(0)
    )
    assert rows(segments, BERLIN) == [
        ("03-29 00:00", "03-29 03:00", "valley", "0", "2", "0.1500"),
        ("03-29 03:00", "03-30 00:00", "peak", "0", "21", "0.3000"),
    ]
    assert segments[0].end == utc("2026-03-29 01:00")


def test_the_fall_back_day_has_25_hours() -> None:
    # Sunday 25 October 2026: at 03:00 CEST the clocks go back to 02:00 CET.
    # Local midnight to midnight is 22:00 UTC on the 24th to 23:00 UTC on the 25th.
    segments = one(BERLIN_DAY, tz=BERLIN).price_interval(
        utc("2026-10-24 22:00"), utc("2026-10-25 23:00"), D(25), period_energy_kwh=D(0)
    )
    # Deep valley starts at the first 02:30 (00:30 UTC) and lasts to 05:00 CET (04:00 UTC):
    # 3.5 h including the repeated hour.  Peak 08:00-20:00 CET is 12 h; valley the other 9.5.
    assert energy_by_band(segments) == {"valley": D("9.5"), "deep_valley": D("3.5"),
                                        "peak": D(12)}


# --------------------------------------------------------------------------------------------
# Flat tariffs, the calendar, refusals
# --------------------------------------------------------------------------------------------
def test_a_flat_tariff_has_one_price_and_no_band() -> None:
    flat = one(FLAT)
    segments = flat.price_interval(
        sh("2026-11-03 09:00"), sh("2026-11-03 09:30"), D("0.75"), period_energy_kwh=D(0)
    )
    # 0.75 × 0.85 = 0.6375
    assert [(s.band, s.tier, s.price_per_kwh) for s in segments] == [(None, 0, D("0.8500"))]
    assert cost(segments) == D("0.6375")
    assert flat.band_at(sh("2026-11-03 09:00")) is None
    assert flat.period_key(sh("2026-11-01 00:00")) == "2026-11"
    assert flat.period_key(sh("2026-11-01 00:00") - timedelta(seconds=1)) == "2026-10"


def test_no_energy_prices_as_nothing() -> None:
    tou = one(TOU)
    assert tou.price_interval(
        sh("2026-11-03 09:00"), sh("2026-11-03 10:00"), D(0), period_energy_kwh=D(0)
    ) == []
    assert tou.price_interval(
        sh("2026-11-03 09:00"), sh("2026-11-03 09:00"), D(0), period_energy_kwh=D(0)
    ) == []


@pytest.mark.parametrize(
    ("start", "end", "kwh", "message"),
    [
        ("2026-11-03 10:00", "2026-11-03 09:00", "1", "ends .* before it starts"),
        ("2026-11-03 10:00", "2026-11-03 10:00", "1", "no length"),
        ("2026-11-03 09:00", "2026-11-03 10:00", "-0.5", r"energy is negative \(-0\.5 kWh\)"),
        ("2024-12-31 09:00", "2025-01-01 10:00", "1", "No tariff is in force"),
    ],
)
def test_intervals_that_cannot_be_priced_are_refused(
    start: str, end: str, kwh: str, message: str
) -> None:
    with pytest.raises(TariffError, match=message):
        one(TOU).price_interval(sh(start), sh(end), D(kwh), period_energy_kwh=D(0))


def test_a_schedule_needs_versions_at_distinct_instants_in_aware_time() -> None:
    spec = parse_spec(FLAT)
    with pytest.raises(TariffError, match="at least one version"):
        TariffSchedule([], (), SHANGHAI)
    at = utc("2026-01-01 00:00")
    with pytest.raises(TariffError, match="both take effect at 2026-01-01T00:00:00"):
        TariffSchedule([TariffVersion(at, spec), TariffVersion(at, spec)], (), SHANGHAI)
    with pytest.raises(TariffError, match="no time zone"):
        TariffSchedule([TariffVersion(datetime(2026, 1, 1), spec)], (), SHANGHAI)  # noqa: DTZ001
    # Versions may come in any order.
    later = parse_spec({"kind": "flat", "flat_price": "0.9000"})
    both = TariffSchedule(
        [TariffVersion(utc("2026-06-01 00:00"), later), TariffVersion(at, spec)], (), SHANGHAI
    )
    assert both.version_at(utc("2026-05-31 23:59")).spec == spec
    assert both.version_at(utc("2026-06-01 00:00")).spec == later


# --------------------------------------------------------------------------------------------
# The stored form
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [FLAT, TIERED, TOU, TOU_TIERED, BERLIN_DAY])
def test_a_spec_survives_its_stored_form(data: dict[str, Any]) -> None:
    spec = parse_spec(data)
    stored = json.loads(json.dumps(spec_to_data(spec)))
    assert parse_spec(stored) == spec
    assert stored["kind"] == data["kind"]


def test_the_stored_form_keeps_money_as_text() -> None:
    stored = spec_to_data(parse_spec(TOU_TIERED))
    assert stored["band_prices"]["peak"] == "1.1236"
    assert stored["tiers"][1] == {"from_kwh": "1000", "surcharge": "0.0500"}
    assert stored["tier_period"] == "month"
    assert stored["seasons"][1] == {"name": "winter", "plan": "winter", "from": "12-15",
                                    "to": "01-15"}


def _edit(data: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    edited = copy.deepcopy(data)
    change(edited)
    return edited


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(kind="ladder"), "kind: 'ladder' is not a tariff kind"),
        (lambda d: d.pop("kind"), "kind: is required"),
        (lambda d: d["plans"]["standard"][2].update(start="25:00"),
         "plans.standard[2].start: '25:00' is not a time of day"),
        (lambda d: d["plans"]["standard"][0].update(start="01:00"),
         "plans.standard[0].start: the first period of a day must start at 00:00"),
        (lambda d: d["plans"]["standard"][3].update(start="10:00"),
         "plans.standard[3].start: '10:00' must be later than the period before it (11:00)"),
        (lambda d: d["plans"]["holiday"][1].update(band="shoulder"),
         "plans.holiday[1].band: 'shoulder' is not a band"),
        (lambda d: d["band_prices"].update(peak="-1.1236"),
         "band_prices.peak: '-1.1236' must be above 0"),
        (lambda d: d["band_prices"].update(peak="1.12345"),
         "band_prices.peak: '1.12345' has more than 4 decimal places"),
        (lambda d: d["band_prices"].update(peak=1.1236),
         "band_prices.peak: write 1.1236 as a string"),
        (lambda d: d["band_prices"].update(peak="abc"), "band_prices.peak: 'abc' is not a number"),
        (lambda d: d["band_prices"].pop("sharp"),
         "band_prices: no price for sharp, which plan summer uses"),
        (lambda d: d["band_prices"].update(shoulder="0.5"), "band_prices.shoulder: not a band"),
        (lambda d: d["seasons"][0].update(months=[7, 13]),
         "seasons[0].months[1]: 13 is not a month"),
        (lambda d: d["seasons"][1].update({"from": "02-30"}),
         "seasons[1].from: '02-30' is not a day of the year"),
        (lambda d: d["seasons"][1].pop("to"), "seasons[1].to: is required with a date range"),
        (lambda d: d["seasons"][0].update(plan="autumn"),
         "seasons[0].plan: 'autumn' is not one of the plans"),
        (lambda d: d["seasons"].pop(), "seasons[1]: the last season is the default"),
        (lambda d: d["seasons"][0].pop("months"),
         "seasons[0]: only the last season may have no months or dates"),
        (lambda d: d.update(holiday_plan="golden week"),
         "holiday_plan: 'golden week' is not one of the plans"),
        (lambda d: d["tiers"][0].update(from_kwh="10"),
         "tiers[0].from_kwh: the first tier must start at 0 kWh"),
        (lambda d: d["tiers"][2].update(from_kwh="900"),
         "tiers[2].from_kwh: 900 kWh must be above the tier before it (1000 kWh)"),
        (lambda d: d["tiers"][1].update(from_kwh="1000.00005"),
         "tiers[1].from_kwh: '1000.00005' has more than 4 decimal places"),
        (lambda d: d["tiers"][1].update(price="1.2"),
         "tiers[1].price: a tou_tiered tariff's tiers have a surcharge, not a price"),
        (lambda d: d["tiers"][1].update(surcharge="-0.05"),
         "tiers[1].surcharge: '-0.05' must be 0 or more"),
        (lambda d: d.update(tier_period="week"), "tier_period: 'week' is not a tier period"),
        (lambda d: d.update(flat_price="0.85"), "flat_price: not used by a tou_tiered tariff"),
        (lambda d: d.update(tier_peroid="year"), "tier_peroid: not a tariff field"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    with pytest.raises(TariffError, match="^" + re.escape(message)) as refused:
        parse_spec(_edit(TOU_TIERED, change))
    assert isinstance(refused.value, BillingError)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "flat"}, "flat_price: is required"),
        ({"kind": "flat", "flat_price": "0"}, "flat_price: '0' must be above 0"),
        ({"kind": "tiered", "tiers": []}, "tiers: must be a non-empty list"),
        ({"kind": "tiered", "tiers": [{"from_kwh": "0", "surcharge": "0.1"}]},
         "tiers[0].surcharge: a tiered tariff's tiers have a price, not a surcharge"),
        ({"kind": "tou", "plans": {}}, "plans: needs at least one day plan"),
    ],
)
def test_each_kind_needs_its_own_fields(data: dict[str, Any], message: str) -> None:
    with pytest.raises(TariffError, match="^" + re.escape(message)):
        parse_spec(data)
