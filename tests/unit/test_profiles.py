"""Device profiles: the shipped file decodes real register values; a bad file names its fault."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from collector.profiles import ProfileError, load_profile, load_profile_file


def test_dtsy1352_decodes_energy_power_and_relay_state() -> None:
    profile = load_profile("acrel_dtsy1352")
    measurements = [0] * 17
    measurements[0:2] = [0x0001, 0x86A1]  # 100001 × 0.01 = 1000.01 kWh, high word first
    measurements[0x0B] = 2301  # 230.1 V
    measurements[0x0C] = 1234  # 12.34 A
    measurements[0x0D] = 0xFFFE  # INT16 -2 × 0.001 = -0.002 kW
    values = profile.decode({"measurements": measurements, "status": [0b0001]})
    assert values["energy_kwh"] == Decimal("1000.01")
    assert values["voltage_v"] == Decimal("230.1")
    assert values["current_a"] == Decimal("12.34")
    assert values["power_kw"] == Decimal("-0.002")
    assert profile.relay_closed(values) is True
    assert profile.relay_closed({**values, "status": Decimal(0b0010)}) is False
    assert profile.controls["trip"].values == (1, 1)
    assert profile.controls["close"].values == (1, 0)


def test_an_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="acrel_dtsy1352"):
        load_profile("no_such_meter")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: X\nblocks: []\nfields: {}\n", "at least one register block"),
        (
            "model: X\nblocks: [{name: a, function: 5, address: 0, count: 2}]\nfields: {}\n",
            r"blocks\[0\]\.function: reads use function 3 or 4",
        ),
        (
            "model: X\nblocks: [{name: a, function: 3, address: 0, count: 2}]\n"
            "fields: {energy_kwh: {address: 8, type: uint32}}\n",
            r"fields\.energy_kwh\.address: 0x0008 is in no register block",
        ),
        (
            "model: X\nblocks: [{name: a, function: 3, address: 0, count: 2}]\n"
            "fields: {energy_kwh: {address: 0, type: uint64}}\n",
            r"fields\.energy_kwh\.type: expected one of",
        ),
        (
            "model: X\nblocks: [{name: a, function: 3, address: 0, count: 2}]\n"
            "fields: {energy_kwh: {address: 0, type: uint32}}\n"
            "controls: {trip: {function: 16, address: 87, values: [1, 1]}}\n",
            "controls.readback is required",
        ),
        ("model: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_bad_profile_names_the_file_and_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "broken_meter.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message) as caught:
        load_profile_file(path)
    assert "broken_meter.yaml" in str(caught.value)
