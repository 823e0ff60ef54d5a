"""The line-protocol encoder writes exactly what InfluxDB must read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from collector.tsdb_influx import FieldValue, datetime_to_ns, encode_point, ns_to_datetime


def test_plain_point() -> None:
    line = encode_point("meter_readings", {"meter": "7"}, {"energy_kwh": 1.5}, 1_700_000_000)
    assert line == "meter_readings,meter=7 energy_kwh=1.5 1700000000"


def test_tags_are_sorted_by_key_and_fields_keep_their_order() -> None:
    line = encode_point("m", {"unit": "A-101", "building": "B1"}, {"b": 1, "a": 2}, 1)
    assert line == "m,building=B1,unit=A-101 b=1i,a=2i 1"


def test_measurement_escapes_commas_and_spaces_but_not_equals() -> None:
    assert encode_point("my m,x=1", {}, {"v": 1}, 0) == r"my\ m\,x=1 v=1i 0"


def test_tag_keys_values_and_field_keys_escape_commas_equals_and_spaces() -> None:
    line = encode_point("m", {"a b": "c,d=e f"}, {"g=h, i": True}, 0)
    assert line == r"m,a\ b=c\,d\=e\ f g\=h\,\ i=true 0"


def test_a_backslash_not_before_a_special_character_is_written_as_is() -> None:
    assert encode_point("m", {"path": r"a\b"}, {"v": 1}, 0) == r"m,path=a\b v=1i 0"


def test_string_fields_escape_quotes_and_backslashes_only() -> None:
    line = encode_point("m", {}, {"note": 'say "hi", C:\\ = ok'}, 0)
    assert line == r'm note="say \"hi\", C:\\ = ok" 0'


def test_field_types() -> None:
    fields: dict[str, FieldValue] = {
        "int": -42,
        "float": 0.1,
        "whole_float": 3.0,
        "yes": True,
        "no": False,
        "text": "",
        "dec": Decimal("12345.6700"),
    }
    line = encode_point("m", {}, fields, 0)
    assert line == 'm int=-42i,float=0.1,whole_float=3.0,yes=true,no=false,text="",dec=12345.6700 0'


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (Decimal("1E+2"), "100"),
        (Decimal("1.5E-7"), "0.00000015"),
        (Decimal("-0.01"), "-0.01"),
        (Decimal("0"), "0"),
        (Decimal("98765432.1"), "98765432.1"),
    ],
)
def test_decimals_are_written_digit_for_digit_without_exponent(
    value: Decimal, written: str
) -> None:
    assert encode_point("m", {}, {"v": value}, 0) == f"m v={written} 0"


def test_empty_tag_values_are_left_out() -> None:
    assert encode_point("m", {"unit": "", "floor": "2"}, {"v": 1}, 0) == "m,floor=2 v=1i 0"


@pytest.mark.parametrize(
    ("measurement", "tags", "fields"),
    [
        ("m", {}, {}),
        ("", {}, {"v": 1}),
        ("m", {"": "x"}, {"v": 1}),
        ("m", {}, {"": 1}),
        ("m", {"unit": "A\n101"}, {"v": 1}),
        ("m\n", {}, {"v": 1}),
        ("m", {"unit": "ends in \\"}, {"v": 1}),
        ("m", {"unit": "a\\,b"}, {"v": 1}),
        ("m", {}, {"v": float("nan")}),
        ("m", {}, {"v": float("inf")}),
        ("m", {}, {"v": Decimal("NaN")}),
        ("m", {}, {"v": 2**63}),
    ],
)
def test_what_line_protocol_cannot_carry_is_refused(
    measurement: str, tags: dict[str, str], fields: dict[str, float | int | Decimal]
) -> None:
    with pytest.raises(ValueError):
        encode_point(measurement, tags, fields, 0)


def test_largest_integers_fit() -> None:
    line = encode_point("m", {}, {"max": 2**63 - 1, "min": -(2**63)}, 0)
    assert line == "m max=9223372036854775807i,min=-9223372036854775808i 0"


def test_timestamps_are_exact_nanoseconds() -> None:
    at = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert datetime_to_ns(at) == 1_709_294_400_123_456_000
    assert ns_to_datetime(datetime_to_ns(at)) == at
    shanghai = at.astimezone(timezone(timedelta(hours=8)))
    assert datetime_to_ns(shanghai) == datetime_to_ns(at)
    with pytest.raises(ValueError):
        datetime_to_ns(datetime(2024, 3, 1))  # noqa: DTZ001 - the naive datetime is the point
