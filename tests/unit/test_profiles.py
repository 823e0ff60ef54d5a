"""Device profiles: shipped files load and decode real register values; reads are coalesced;
controls encode dispatched values; a bad file names the file and the field."""

from __future__ import annotations

import struct
from decimal import Decimal
from pathlib import Path

import pytest

from collector.profiles import (
    PROFILE_DIR,
    DecodeError,
    Encoding,
    Field,
    ProfileError,
    derive_blocks,
    load_all_profiles,
    load_profile,
    load_profile_file,
)

SHIPPED = ("acrel_dtsy1352", "acrel_ddsy1352", "acrel_dtsd1352", "chint_ddsu666")
BASE = (
    "model: Test meter\n"
    "kind: metering\n"
    "fields:\n"
    "  energy_kwh: {address: 0, type: uint32, scale: 0.01, unit: kWh, source: PUB}\n"
)


def write(tmp_path: Path, text: str, name: str = "broken_meter.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def f32(value: float) -> list[int]:
    raw = struct.pack(">f", value)
    return [int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big")]


def field(name: str, address: int, kind: str = "uint16", function: int = 3) -> Field:
    return Field(name, address, kind, Decimal(1), "", function=function)


# -- the shipped profiles ---------------------------------------------------------------------


def test_every_shipped_profile_loads_and_validates() -> None:
    profiles = load_all_profiles()
    assert set(SHIPPED) <= set(profiles)
    assert {p.stem for p in PROFILE_DIR.glob("*.yaml")} == set(profiles)
    for key in ("acrel_dtsy1352", "acrel_ddsy1352"):
        prepaid = profiles[key]
        assert prepaid.kind == "prepaid"
        assert prepaid.has_band_registers
        assert prepaid.bands == ("sharp", "peak", "flat", "valley")
        assert {"trip", "close", "protect_on", "protect_off", "price", "settings"} <= set(
            prepaid.controls
        )
        assert prepaid.readback is not None
        # 0x0000..0x0010 is one read across the password and reserved registers
        assert [(b.address, b.count) for b in prepaid.blocks] == [(0x0000, 17), (0x0300, 1)]
    for key in ("acrel_dtsd1352", "chint_ddsu666"):
        metering = profiles[key]
        assert metering.kind == "metering"
        assert metering.controls == {}
        assert metering.readback is None
        assert not metering.has_band_registers
        assert metering.relay_closed({"energy_kwh": Decimal(1)}) is None


def test_dtsd1352_reads_in_three_blocks_and_decodes_int32_power() -> None:
    profile = load_profile("acrel_dtsd1352")
    assert [(b.name, b.count) for b in profile.blocks] == [
        ("fc3@0x000A", 2),
        ("fc3@0x0061", 23),
        ("fc3@0x0164", 28),
    ]
    energy = [0x0001, 0x86A1]  # 1000.01 kWh
    phases = [0] * 23
    phases[0:3] = [2301, 2299, 2310]
    phases[0x0077 - 0x0061] = 5002
    power = [0] * 28
    power[0x016A - 0x0164 : 0x016A - 0x0164 + 2] = [0xFFFF, 0xFC18]  # INT32 -1000 × 0.001
    power[0x017F - 0x0164] = 950
    values = profile.decode({"fc3@0x000A": energy, "fc3@0x0061": phases, "fc3@0x0164": power})
    assert values["energy_kwh"] == Decimal("1000.01")
    assert values["voltage_l2_v"] == Decimal("229.9")
    assert values["frequency_hz"] == Decimal("50.02")
    assert values["power_kw"] == Decimal("-1.000")
    assert values["power_factor"] == Decimal("0.950")
    assert profile.band_energy(values) is None


def test_ddsu666_decodes_big_endian_float32_input_registers() -> None:
    profile = load_profile("chint_ddsu666")
    assert [(b.function, b.address, b.count) for b in profile.blocks] == [
        (4, 0x2000, 16),
        (4, 0x4000, 2),
    ]
    block = [0] * 16
    block[0:2] = f32(230.2)
    block[2:4] = f32(1.26)
    block[4:6] = f32(-0.1963)
    block[0x200E - 0x2000 : 0x2010 - 0x2000] = f32(50.0)
    values = profile.decode({"fc4@0x2000": block, "fc4@0x4000": f32(478.492)})
    assert values["voltage_v"] == Decimal("230.2")  # not 230.1999969...
    assert values["current_a"] == Decimal("1.26")
    assert values["power_kw"] == Decimal("-0.1963")
    assert values["frequency_hz"] == Decimal("50")
    assert values["energy_kwh"] == Decimal("478.492")


def test_dtsy1352_decodes_energy_power_and_relay_state() -> None:
    profile = load_profile("acrel_dtsy1352")
    measurements = [0] * 17
    measurements[0:2] = [0x0001, 0x86A1]  # 100001 × 0.01 = 1000.01 kWh, high word first
    measurements[2:4] = [0x0000, 0x2710]  # sharp 100.00 kWh
    measurements[0x0B] = 2301  # 230.1 V
    measurements[0x0C] = 1234  # 12.34 A
    measurements[0x0D] = 0xFFFE  # INT16 -2 × 0.001 = -0.002 kW
    values = profile.decode({"fc3@0x0000": measurements, "fc3@0x0300": [0b0011]})
    assert values["energy_kwh"] == Decimal("1000.01")
    assert values["voltage_v"] == Decimal("230.1")
    assert values["current_a"] == Decimal("12.34")
    assert values["power_kw"] == Decimal("-0.002")
    assert profile.band_energy(values) == {
        "sharp": Decimal("100.00"), "peak": 0, "flat": 0, "valley": 0,
    }  # fmt: skip
    assert profile.relay_closed(values) is True
    assert profile.status_flag(values, "power_protect") is True
    assert profile.relay_closed({**values, "status": Decimal(0b0010)}) is False
    assert profile.encode_control("trip") == [1, 1]
    assert profile.encode_control("close") == [1, 0]
    assert profile.encode_control("protect_on") == [1]


# -- coalescing -------------------------------------------------------------------------------


def test_contiguous_fields_are_read_in_one_block() -> None:
    fields = [field("a", 0, "uint32"), field("b", 2), field("c", 3, "float32")]
    assert [(b.address, b.count) for b in derive_blocks(fields)] == [(0, 5)]


def test_a_gap_wider_than_max_gap_starts_a_new_block() -> None:
    fields = [field("a", 0), field("b", 3)]  # two registers between them
    assert [(b.address, b.count) for b in derive_blocks(fields, max_gap=1)] == [(0, 1), (3, 1)]
    assert [(b.address, b.count) for b in derive_blocks(fields, max_gap=2)] == [(0, 4)]


def test_a_block_never_exceeds_125_registers() -> None:
    fields = [field(f"f{i}", i * 2, "uint32") for i in range(100)]  # 200 contiguous registers
    blocks = derive_blocks(fields)
    assert [(b.address, b.count) for b in blocks] == [(0, 124), (124, 76)]
    assert all(b.count <= 125 for b in blocks)


def test_holding_and_input_registers_are_never_mixed() -> None:
    fields = [field("a", 0), field("b", 1, function=4), field("c", 2), field("d", 2, function=4)]
    blocks = derive_blocks(fields, max_gap=5)
    assert [(b.name, b.function, b.address, b.count) for b in blocks] == [
        ("fc3@0x0000", 3, 0, 3),
        ("fc4@0x0001", 4, 1, 2),
    ]


def test_explicit_blocks_are_still_accepted(tmp_path: Path) -> None:
    text = BASE + "blocks: [{name: energy, function: 3, address: 0, count: 4}]\n"
    profile = load_profile_file(write(tmp_path, text))
    assert [(b.name, b.count) for b in profile.blocks] == [("energy", 4)]
    assert profile.decode({"energy": [0, 100, 0, 0]})["energy_kwh"] == Decimal("1.00")


# -- encoding and decoding --------------------------------------------------------------------


@pytest.mark.parametrize("order", ["big", "little"])
def test_float32_and_int32_round_trip_in_both_word_orders(order: str) -> None:
    words = f32(-12.5)
    registers = words if order == "big" else words[::-1]
    assert Encoding("float32", word_order=order).decode(registers) == Decimal("-12.5")
    assert Encoding("float32", word_order=order).encode(-12.5) == registers
    signed = Encoding("int32", Decimal("0.001"), word_order=order)
    assert signed.encode(Decimal("-70000.000")) == (
        [0xFBD3, 0xE280] if order == "big" else [0xE280, 0xFBD3]
    )
    assert signed.decode(signed.encode(Decimal("-70000.000"))) == Decimal("-70000.000")


def test_a_float32_nan_is_a_decode_error_naming_the_field() -> None:
    profile = load_profile("chint_ddsu666")
    with pytest.raises(DecodeError, match="field voltage_v"):
        profile.decode({"fc4@0x2000": [0xFFFF] * 16, "fc4@0x4000": f32(1.0)})


def test_price_dispatch_encodes_each_band_as_uint32_ten_thousandths() -> None:
    profile = load_profile("acrel_dtsy1352")
    price = profile.controls["price"]
    assert (price.function, price.address, price.count) == (16, 0x0310, 8)
    prices: dict[str, Decimal | str | int] = {
        "sharp": "1.4500", "peak": Decimal("1.2"), "flat": Decimal("0.85"), "valley": 0,
    }  # fmt: skip
    registers = profile.encode_control("price", prices)
    assert registers == [0, 14500, 0, 12000, 0, 8500, 0, 0]
    assert price.decode(registers) == {
        "sharp": Decimal("1.4500"), "peak": Decimal("1.2000"),
        "flat": Decimal("0.8500"), "valley": Decimal("0"),
    }  # fmt: skip
    with pytest.raises(ValueError, match=r"sharp: 1\.23456 is not a multiple of 0\.0001"):
        profile.encode_control("price", {**prices, "sharp": Decimal("1.23456")})
    with pytest.raises(ValueError, match="missing valley"):
        profile.encode_control("price", {"sharp": 1, "peak": 1, "flat": 1})
    with pytest.raises(ValueError, match="does not fit"):
        profile.encode_control("price", {**prices, "valley": -1})
    with pytest.raises(ValueError, match="no 'price' control"):
        load_profile("chint_ddsu666").encode_control("price", prices)


def test_settings_dispatch_encodes_the_thresholds() -> None:
    profile = load_profile("acrel_ddsy1352")
    registers = profile.encode_control(
        "settings", {"alarm1_amount": "50.00", "alarm2_amount": "20", "overload_kw": "7.5"}
    )
    assert registers == [0, 5000, 0, 2000, 0, 750]


# -- bad files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: [unclosed\n", "not valid YAML"),
        ("- a list\n", "expected a mapping at the top level"),
        (BASE.replace("kind: metering", "kind: postpaid"), "kind: expected one of prepaid"),
        (BASE.replace("energy_kwh", "energy_total"), "'energy_kwh' .* is required"),
        (BASE.replace("uint32", "uint64"), r"fields\.energy_kwh\.type: expected one of"),
        (BASE.replace("address: 0", "adress: 0"), r"fields\.energy_kwh\.adress: unknown key"),
        (BASE.replace(", source: PUB", ""), r"fields\.energy_kwh: missing field 'source'"),
        (BASE.replace("source: PUB", "source: BLOG"), r"fields\.energy_kwh\.source: expected"),
        (BASE.replace("scale: 0.01", "scale: 0"), r"fields\.energy_kwh\.scale: expected a pos"),
        (
            BASE.replace("type: uint32", "type: uint32, function: 5"),
            r"fields\.energy_kwh\.function: reads use function 3 or 4",
        ),
        (
            BASE + "  voltage_v: {address: 1, type: uint16, source: PUB}\n",
            r"fields\.voltage_v\.address: 0x0001 overlaps field energy_kwh",
        ),
        (BASE + "max_gap: 200\n", r"max_gap: expected an integer 0\.\.124"),
        (
            BASE + "blocks: [{name: a, function: 3, address: 4, count: 2}]\n",
            r"fields\.energy_kwh\.address: 0x0000 \(function 3\) is in no register block",
        ),
        (
            BASE + "controls: {trip: {function: 16, address: 87, values: [1, 1], source: CODE}}\n",
            "controls.readback is required",
        ),
        (
            BASE.replace("metering", "prepaid"),
            "a prepaid meter needs a 'trip' control",
        ),
        (
            BASE + "controls: {reboot: {function: 16, address: 87, values: [1], source: OURS}}\n",
            r"controls\.reboot: expected one of trip",
        ),
        (
            BASE + "controls:\n  price: {function: 16, address: 0x310, bands: [sharp, noon],\n"
            "          encode: {type: uint32, scale: 0.0001}, source: OURS}\n",
            r"controls\.price\.bands\[1\]: expected one of sharp",
        ),
        (
            BASE + "controls:\n  settings: {function: 16, address: 0x320, items: [a],\n"
            "             encode: {type: uint128}, source: OURS}\n",
            r"controls\.settings\.encode\.type: expected one of",
        ),
        (
            BASE + "controls:\n"
            "  protect_on: {function: 16, address: 0x301, values: [1], source: OURS}\n"
            "  settings: {function: 16, address: 0x300, items: [a, b],\n"
            "             encode: {type: uint32}, source: OURS}\n",
            r"controls\.settings\.address: overlaps the registers of controls\.protect_on",
        ),
        (
            BASE + "controls: {protect_on: {function: 6, address: 1, values: [1, 2], "
            "source: OURS}}\n",
            r"controls\.protect_on\.function: function 6 writes exactly one register",
        ),
    ],
)
def test_a_bad_profile_names_the_file_and_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ProfileError, match=message) as caught:
        load_profile_file(write(tmp_path, text))
    assert "broken_meter.yaml" in str(caught.value)


def test_validating_a_directory_lists_every_broken_file(tmp_path: Path) -> None:
    write(tmp_path, BASE, "good.yaml")
    write(tmp_path, BASE.replace("uint32", "int8"), "bad_type.yaml")
    write(tmp_path, BASE.replace("model: Test meter\n", ""), "no_model.yaml")
    with pytest.raises(ProfileError) as caught:
        load_all_profiles(tmp_path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert "bad_type.yaml: fields.energy_kwh.type" in lines[0]
    assert "no_model.yaml: missing field 'model'" in lines[1]


def test_an_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="acrel_dtsy1352"):
        load_profile("no_such_meter")
