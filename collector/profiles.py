"""Device profiles: register maps as validated data, decoded by one pipeline.

A profile file names its register blocks (one Modbus read each), the fields inside them
(address, type, word order, scale), the status bits, and the controls (registers to write for a
trip or close, and the field to read back to confirm). Errors name the file and the field.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
TYPES = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2}
READ_FUNCTIONS = (3, 4)


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class Block:
    name: str
    function: int
    address: int
    count: int

    def holds(self, address: int, size: int) -> bool:
        return self.address <= address and address + size <= self.address + self.count


@dataclass(frozen=True)
class Field:
    name: str
    address: int
    type: str
    scale: Decimal
    unit: str

    @property
    def size(self) -> int:
        return TYPES[self.type]


@dataclass(frozen=True)
class Control:
    function: int
    address: int
    values: tuple[int, ...]


@dataclass(frozen=True)
class Readback:
    field: str
    bit: int


@dataclass(frozen=True)
class DeviceProfile:
    key: str
    model: str
    kind: str
    word_order: str
    blocks: tuple[Block, ...]
    fields: dict[str, Field]
    status_bits: dict[str, int]
    controls: dict[str, Control]
    readback: Readback | None

    def decode(self, blocks: dict[str, list[int]]) -> dict[str, Decimal]:
        """Turn the registers of each block (by block name) into scaled field values."""
        values: dict[str, Decimal] = {}
        for field in self.fields.values():
            block = next(b for b in self.blocks if b.holds(field.address, field.size))
            registers = blocks[block.name]
            start = field.address - block.address
            values[field.name] = _decode(
                registers[start : start + field.size], field.type, self.word_order
            ) * field.scale
        return values

    def band_energy(self, values: dict[str, Decimal]) -> dict[str, Decimal] | None:
        """Energy per tariff band from fields named energy_<band>_kwh, when the profile has them."""
        bands = {
            name[len("energy_") : -len("_kwh")]: value
            for name, value in values.items()
            if name.startswith("energy_") and name.endswith("_kwh") and name != "energy_kwh"
        }
        return bands or None

    def relay_closed(self, values: dict[str, Decimal]) -> bool | None:
        if self.readback is None:
            return None
        return bool(int(values[self.readback.field]) >> self.readback.bit & 1)


def _decode(registers: list[int], kind: str, word_order: str) -> Decimal:
    words = registers if word_order == "big" else list(reversed(registers))
    raw = b"".join(struct.pack(">H", w & 0xFFFF) for w in words)
    fmt = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}[kind]
    (number,) = struct.unpack(fmt, raw)
    if kind == "float32":
        return Decimal(repr(number))
    return Decimal(number)


def _require(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ProfileError(f"{where}: missing field '{key}'")
    return data[key]


def _int(value: Any, where: str, low: int = 0, high: int = 0xFFFF) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ProfileError(f"{where}: expected an integer {low}..{high}, got {value!r}")
    return value


def parse_profile(key: str, data: Any, source: str) -> DeviceProfile:
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: expected a mapping at the top level")
    word_order = data.get("word_order", "big")
    if word_order not in ("big", "little"):
        raise ProfileError(f"{source}: word_order: expected 'big' or 'little'")
    blocks = []
    for i, raw in enumerate(_require(data, "blocks", source) or []):
        where = f"{source}: blocks[{i}]"
        if not isinstance(raw, dict):
            raise ProfileError(f"{where}: expected a mapping")
        function = _int(_require(raw, "function", where), f"{where}.function", 1, 127)
        if function not in READ_FUNCTIONS:
            raise ProfileError(f"{where}.function: reads use function 3 or 4, got {function}")
        blocks.append(
            Block(
                name=str(_require(raw, "name", where)),
                function=function,
                address=_int(_require(raw, "address", where), f"{where}.address"),
                count=_int(_require(raw, "count", where), f"{where}.count", 1, 125),
            )
        )
    if not blocks:
        raise ProfileError(f"{source}: blocks: at least one register block is needed")
    fields: dict[str, Field] = {}
    for name, raw in (_require(data, "fields", source) or {}).items():
        where = f"{source}: fields.{name}"
        if not isinstance(raw, dict):
            raise ProfileError(f"{where}: expected a mapping")
        kind = _require(raw, "type", where)
        if kind not in TYPES:
            raise ProfileError(f"{where}.type: expected one of {', '.join(TYPES)}, got {kind!r}")
        field = Field(
            name=name,
            address=_int(_require(raw, "address", where), f"{where}.address"),
            type=kind,
            scale=Decimal(str(raw.get("scale", 1))),
            unit=str(raw.get("unit", "")),
        )
        if not any(b.holds(field.address, field.size) for b in blocks):
            raise ProfileError(f"{where}.address: {field.address:#06x} is in no register block")
        fields[name] = field
    if "energy_kwh" not in fields:
        raise ProfileError(f"{source}: fields: 'energy_kwh' (total import energy) is required")
    status_bits = {
        str(k): _int(v, f"{source}: status_bits.{k}", 0, 15)
        for k, v in (data.get("status_bits") or {}).items()
    }
    controls: dict[str, Control] = {}
    readback = None
    for name, raw in (data.get("controls") or {}).items():
        where = f"{source}: controls.{name}"
        if not isinstance(raw, dict):
            raise ProfileError(f"{where}: expected a mapping")
        if name == "readback":
            field_name = _require(raw, "field", where)
            if field_name not in fields:
                raise ProfileError(f"{where}.field: no field named {field_name!r}")
            bit_name = _require(raw, "bit", where)
            if bit_name not in status_bits:
                raise ProfileError(f"{where}.bit: no status bit named {bit_name!r}")
            readback = Readback(field=field_name, bit=status_bits[bit_name])
            continue
        values = _require(raw, "values", where)
        if not isinstance(values, list) or not values:
            raise ProfileError(f"{where}.values: expected a list of register values")
        controls[name] = Control(
            function=_int(_require(raw, "function", where), f"{where}.function", 1, 127),
            address=_int(_require(raw, "address", where), f"{where}.address"),
            values=tuple(_int(v, f"{where}.values", 0, 0xFFFF) for v in values),
        )
    if ("trip" in controls or "close" in controls) and readback is None:
        raise ProfileError(f"{source}: controls.readback is required to confirm trip and close")
    return DeviceProfile(
        key=key,
        model=str(_require(data, "model", source)),
        kind=str(data.get("kind", "metering")),
        word_order=word_order,
        blocks=tuple(blocks),
        fields=fields,
        status_bits=status_bits,
        controls=controls,
        readback=readback,
    )


def load_profile_file(path: Path) -> DeviceProfile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    return parse_profile(path.stem, data, str(path))


@lru_cache(maxsize=64)
def load_profile(key: str) -> DeviceProfile:
    path = PROFILE_DIR / f"{key}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
        raise ProfileError(f"Unknown device profile {key!r}; known profiles: {known}")
    return load_profile_file(path)
