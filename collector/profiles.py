"""Device profiles: register maps as validated data, decoded and encoded by one pipeline.

A profile file (format v2, `collector/profiles/*.yaml`) names the meter's fields (function code,
address, type, word order, scale, unit, provenance), the status bits, and the controls: fixed
register writes (trip, close, power-protect on/off), block writes that encode values (band prices,
thresholds), and the field and bit to read back after a trip or close. The register blocks read
each cycle are derived from the fields: fields of one function code whose registers are contiguous
(or separated by at most `max_gap` registers) are coalesced into one read of at most 125
registers. Every error names the file and the field path.
"""

from __future__ import annotations

import itertools
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"

#: Registers per value type.
TYPES = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2}
_FORMATS = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}
_LIMITS = {
    "uint16": (0, 0xFFFF),
    "int16": (-0x8000, 0x7FFF),
    "uint32": (0, 0xFFFFFFFF),
    "int32": (-0x80000000, 0x7FFFFFFF),
}
READ_FUNCTIONS = (3, 4)
WRITE_FUNCTIONS = (6, 16)
WORD_ORDERS = ("big", "little")
KINDS = ("prepaid", "metering")
SOURCES = ("PUB", "CODE", "OURS")
#: Tariff bands a meter may count energy in (as in billing.tariffs.BANDS).
BANDS = ("sharp", "peak", "flat", "valley", "deep_valley")
#: Controls that write fixed register values.
SWITCH_CONTROLS = ("trip", "close", "protect_on", "protect_off")
#: Controls that encode values into a block of registers.
BLOCK_CONTROLS = ("price", "settings")
MAX_READ_COUNT = 125  # registers in one FC03/FC04 read
MAX_WRITE_COUNT = 123  # registers in one FC16 write

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP_KEYS = (
    "model", "kind", "word_order", "max_gap", "fields", "status_bits", "controls", "blocks",
)  # fmt: skip
_FIELD_KEYS = ("address", "type", "function", "scale", "unit", "source", "word_order")
_ENCODE_KEYS = ("type", "scale", "unit", "word_order")
_SWITCH_KEYS = ("function", "address", "values", "source")
_BLOCK_KEYS = ("function", "address", "encode", "items", "bands", "source")
_BLOCK_DEF_KEYS = ("name", "function", "address", "count")


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file and the field."""


class DecodeError(ValueError):
    """Registers that do not decode to a number (a float32 NaN or infinity)."""


@dataclass(frozen=True)
class Block:
    """One Modbus read: `count` registers from `address` with function 3 or 4."""

    name: str
    function: int
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count

    def holds(self, address: int, size: int, function: int | None = None) -> bool:
        if function is not None and function != self.function:
            return False
        return self.address <= address and address + size <= self.end


@dataclass(frozen=True)
class Encoding:
    """How one value sits in registers: type, word order of 32-bit values, scale."""

    type: str
    scale: Decimal = Decimal(1)
    unit: str = ""
    word_order: str = "big"

    @property
    def size(self) -> int:
        return TYPES[self.type]

    def decode(self, registers: Sequence[int]) -> Decimal:
        """Scaled value of `size` registers. Raises DecodeError for a float32 NaN/infinity."""
        words = list(registers[: self.size])
        if self.word_order == "little":
            words.reverse()
        raw = b"".join(struct.pack(">H", w & 0xFFFF) for w in words)
        if self.type == "float32":
            return _float32_decimal(raw) * self.scale
        (number,) = struct.unpack(_FORMATS[self.type], raw)
        return Decimal(number) * self.scale

    def encode(self, value: Decimal | float | int, *, strict: bool = False) -> list[int]:
        """Registers holding `value`. Integer types round half-even to the scale and saturate at
        the type's limits; with `strict`, a value that is not a multiple of the scale or does not
        fit raises ValueError instead (a price must never be silently altered)."""
        if self.type == "float32":
            number = float(value) / float(self.scale)
            if not math.isfinite(number) or abs(number) > 3.4028234e38:
                raise ValueError(f"{value} does not fit a float32")
            raw = struct.pack(">f", number)
        else:
            low, high = _LIMITS[self.type]
            if isinstance(value, float) and not strict:
                scaled = round(value / float(self.scale))
            else:
                exact = Decimal(str(value)) / self.scale
                scaled = int(exact.to_integral_value(ROUND_HALF_EVEN))
                if strict and scaled != exact:
                    raise ValueError(f"{value} is not a multiple of {self.scale}")
            if strict and not low <= scaled <= high:
                raise ValueError(f"{value} does not fit {self.type} × {self.scale}")
            raw = struct.pack(_FORMATS[self.type], max(low, min(high, scaled)))
        words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
        if self.word_order == "little":
            words.reverse()
        return words


@dataclass(frozen=True)
class Field:
    """A named value the meter reports."""

    name: str
    address: int
    type: str
    scale: Decimal
    unit: str
    function: int = 3
    word_order: str = "big"
    source: str = ""

    @property
    def size(self) -> int:
        return TYPES[self.type]

    @property
    def end(self) -> int:
        return self.address + self.size

    @cached_property
    def encoding(self) -> Encoding:
        return Encoding(self.type, self.scale, self.unit, self.word_order)

    def decode(self, registers: Sequence[int]) -> Decimal:
        try:
            return self.encoding.decode(registers)
        except DecodeError as exc:
            raise DecodeError(f"field {self.name}: {exc}") from None

    def encode(self, value: Decimal | float | int) -> list[int]:
        return self.encoding.encode(value)


@dataclass(frozen=True)
class Control:
    """A register write. A switch control writes fixed `values`; a block control (`encoding`
    set) writes one encoded value per item of `items`, consecutively from `address`."""

    function: int
    address: int
    values: tuple[int, ...] = ()
    encoding: Encoding | None = None
    items: tuple[str, ...] = ()
    source: str = ""

    @property
    def is_block(self) -> bool:
        return self.encoding is not None

    @property
    def count(self) -> int:
        if self.encoding is None:
            return len(self.values)
        return len(self.items) * self.encoding.size

    @property
    def end(self) -> int:
        return self.address + self.count

    def encode(self, values: Mapping[str, Decimal | float | int | str] | None = None) -> list[int]:
        """The registers to write. A switch control ignores `values`; a block control needs one
        exact value per item (ValueError names a missing, unknown or unencodable item)."""
        if self.encoding is None:
            return list(self.values)
        given = dict(values or {})
        missing = [item for item in self.items if item not in given]
        unknown = sorted(set(given) - set(self.items))
        if missing or unknown:
            raise ValueError(
                f"expected values for {', '.join(self.items)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else "")
            )
        registers: list[int] = []
        for item in self.items:
            try:
                registers += self.encoding.encode(_number(given[item]), strict=True)
            except (ValueError, ArithmeticError) as exc:
                raise ValueError(f"{item}: {exc}") from None
        return registers

    def decode(self, registers: Sequence[int]) -> dict[str, Decimal]:
        """The values of a block control's registers (as written or read back)."""
        if self.encoding is None:
            raise ValueError("a switch control has no encoded values")
        size = self.encoding.size
        return {
            item: self.encoding.decode(registers[i * size : (i + 1) * size])
            for i, item in enumerate(self.items)
        }


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
    max_gap: int = 0

    def decode(self, blocks: Mapping[str, Sequence[int]]) -> dict[str, Decimal]:
        """Turn the registers of each block (by block name) into scaled field values.
        Raises DecodeError when a float32 register pair holds NaN or infinity."""
        values: dict[str, Decimal] = {}
        for field in self.fields.values():
            block = self.block_of(field)
            start = field.address - block.address
            values[field.name] = field.decode(blocks[block.name][start : start + field.size])
        return values

    def block_of(self, field: Field) -> Block:
        return next(b for b in self.blocks if b.holds(field.address, field.size, field.function))

    @property
    def bands(self) -> tuple[str, ...]:
        """Tariff bands with their own energy register (fields energy_<band>_kwh)."""
        return tuple(band for band in BANDS if f"energy_{band}_kwh" in self.fields)

    @property
    def has_band_registers(self) -> bool:
        return bool(self.bands)

    def band_energy(self, values: Mapping[str, Decimal]) -> dict[str, Decimal] | None:
        """Energy per tariff band from fields named energy_<band>_kwh, when the profile has them."""
        bands = {band: values[f"energy_{band}_kwh"] for band in self.bands}
        return bands or None

    def relay_closed(self, values: Mapping[str, Decimal]) -> bool | None:
        if self.readback is None:
            return None
        return bool(int(values[self.readback.field]) >> self.readback.bit & 1)

    def status_flag(self, values: Mapping[str, Decimal], bit: str) -> bool | None:
        """A named status bit (e.g. power_protect) of the readback field, if the profile has it."""
        if self.readback is None or bit not in self.status_bits:
            return None
        return bool(int(values[self.readback.field]) >> self.status_bits[bit] & 1)

    def encode_control(
        self, kind: str, values: Mapping[str, Decimal | float | int | str] | None = None
    ) -> list[int]:
        """Registers to write for a control: fixed values for trip/close/protect_on/protect_off,
        encoded values (e.g. band prices {"sharp": Decimal("1.45"), ...}) for price/settings."""
        control = self.controls.get(kind)
        if control is None:
            raise ValueError(f"{self.model} ({self.key}) has no '{kind}' control")
        try:
            return control.encode(values)
        except ValueError as exc:
            raise ValueError(f"{self.key} controls.{kind}: {exc}") from None


def _number(value: Any) -> Decimal | float | int:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, Decimal | float | int):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"expected a number, got {value!r}") from None


def _float32_decimal(raw: bytes) -> Decimal:
    """The shortest decimal that reads back as the same float32 (230.2, not 230.1999969...)."""
    (number,) = struct.unpack(">f", raw)
    if not math.isfinite(number):
        raise DecodeError(f"float32 registers hold {number}")
    for digits in range(1, 10):
        text = f"{number:.{digits}g}"
        if struct.pack(">f", float(text)) == raw:
            break
    value = Decimal(text)
    if value.as_tuple().exponent > 0:  # type: ignore[operator]
        value = value.quantize(Decimal(1))
    return value


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------
def _fail(where: str, message: str) -> ProfileError:
    return ProfileError(f"{where}: {message}")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"expected a mapping, got {value!r}")
    return value


def _keys(data: dict[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise _fail(f"{where}.{key}", f"unknown key (expected one of {', '.join(allowed)})")


def _require(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise _fail(where, f"missing field '{key}'")
    return data[key]


def _int(value: Any, where: str, low: int = 0, high: int = 0xFFFF) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _fail(where, f"expected an integer {low}..{high}, got {value!r}")
    return value


def _choice(value: Any, choices: Sequence[str], where: str) -> str:
    if value not in choices:
        raise _fail(where, f"expected one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _scale(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(where, f"expected a positive number, got {value!r}")
    try:
        scale = Decimal(str(value))
    except InvalidOperation:
        raise _fail(where, f"expected a positive number, got {value!r}") from None
    if not scale.is_finite() or scale <= 0:
        raise _fail(where, f"expected a positive number, got {value!r}")
    return scale


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise _fail(where, f"expected a lower_case name, got {value!r}")
    return value


def _encoding(raw: Any, default_order: str, where: str) -> Encoding:
    data = _mapping(raw, where)
    _keys(data, _ENCODE_KEYS, where)
    return Encoding(
        type=_choice(_require(data, "type", where), tuple(TYPES), f"{where}.type"),
        scale=_scale(data.get("scale", 1), f"{where}.scale"),
        unit=str(data.get("unit", "")),
        word_order=_choice(
            data.get("word_order", default_order), WORD_ORDERS, f"{where}.word_order"
        ),
    )


def _parse_field(name: str, raw: Any, word_order: str, where: str) -> Field:
    data = _mapping(raw, where)
    _keys(data, _FIELD_KEYS, where)
    kind = _choice(_require(data, "type", where), tuple(TYPES), f"{where}.type")
    function = _int(data.get("function", 3), f"{where}.function", 1, 127)
    if function not in READ_FUNCTIONS:
        raise _fail(f"{where}.function", f"reads use function 3 or 4, got {function}")
    address = _int(_require(data, "address", where), f"{where}.address")
    if address + TYPES[kind] > 0x10000:
        raise _fail(f"{where}.address", f"{address:#06x} + {TYPES[kind]} passes 0xFFFF")
    return Field(
        name=name,
        address=address,
        type=kind,
        scale=_scale(data.get("scale", 1), f"{where}.scale"),
        unit=str(data.get("unit", "")),
        function=function,
        word_order=_choice(data.get("word_order", word_order), WORD_ORDERS, f"{where}.word_order"),
        source=_choice(_require(data, "source", where), SOURCES, f"{where}.source"),
    )


def _parse_control(name: str, raw: Any, word_order: str, where: str) -> Control:
    data = _mapping(raw, where)
    _keys(data, _SWITCH_KEYS if name in SWITCH_CONTROLS else _BLOCK_KEYS, where)
    function = _int(_require(data, "function", where), f"{where}.function", 1, 127)
    if function not in WRITE_FUNCTIONS:
        raise _fail(f"{where}.function", f"writes use function 6 or 16, got {function}")
    address = _int(_require(data, "address", where), f"{where}.address")
    source = _choice(_require(data, "source", where), SOURCES, f"{where}.source")
    if name in SWITCH_CONTROLS:
        values = _require(data, "values", where)
        if not isinstance(values, list) or not values:
            raise _fail(f"{where}.values", "expected a list of register values")
        control = Control(
            function=function,
            address=address,
            values=tuple(_int(v, f"{where}.values[{i}]") for i, v in enumerate(values)),
            source=source,
        )
    else:
        if "items" in data and "bands" in data:
            raise _fail(where, "give either 'items' or 'bands', not both")
        key = "bands" if "bands" in data else "items"
        items = _require(data, key, where)
        if not isinstance(items, list) or not items:
            raise _fail(f"{where}.{key}", "expected a list of names")
        names = tuple(_name(item, f"{where}.{key}[{i}]") for i, item in enumerate(items))
        if len(set(names)) != len(names):
            raise _fail(f"{where}.{key}", "names must be unique")
        if name == "price":
            for i, band in enumerate(names):
                _choice(band, BANDS, f"{where}.{key}[{i}]")
        control = Control(
            function=function,
            address=address,
            encoding=_encoding(_require(data, "encode", where), word_order, f"{where}.encode"),
            items=names,
            source=source,
        )
    if control.function == 6 and control.count != 1:
        raise _fail(f"{where}.function", "function 6 writes exactly one register")
    if control.count > MAX_WRITE_COUNT:
        raise _fail(
            where, f"writes {control.count} registers; one write carries at most {MAX_WRITE_COUNT}"
        )
    if control.end > 0x10000:
        raise _fail(f"{where}.address", f"{address:#06x} + {control.count} passes 0xFFFF")
    return control


def derive_blocks(fields: Sequence[Field], max_gap: int = 0) -> tuple[Block, ...]:
    """Coalesce fields into reads: per function code, in address order, a field joins the current
    block when at most `max_gap` registers lie between them and the block stays within 125
    registers. Function 3 blocks come before function 4 blocks."""
    blocks: list[Block] = []
    for function in READ_FUNCTIONS:
        start = end = -1
        for field in sorted((f for f in fields if f.function == function), key=lambda f: f.address):
            if (
                start >= 0
                and field.address - end <= max_gap
                and field.end - start <= MAX_READ_COUNT
            ):
                end = max(end, field.end)
                continue
            if start >= 0:
                blocks.append(_block(function, start, end))
            start, end = field.address, field.end
        if start >= 0:
            blocks.append(_block(function, start, end))
    return tuple(blocks)


def _block(function: int, start: int, end: int) -> Block:
    return Block(f"fc{function}@0x{start:04X}", function, start, end - start)


def _parse_blocks(raw: Any, source: str) -> tuple[Block, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail(
            f"{source}: blocks",
            "expected a non-empty list (or leave 'blocks' out to derive them from the fields)",
        )
    blocks: list[Block] = []
    for i, entry in enumerate(raw):
        where = f"{source}: blocks[{i}]"
        data = _mapping(entry, where)
        _keys(data, _BLOCK_DEF_KEYS, where)
        function = _int(_require(data, "function", where), f"{where}.function", 1, 127)
        if function not in READ_FUNCTIONS:
            raise _fail(f"{where}.function", f"reads use function 3 or 4, got {function}")
        block = Block(
            name=str(_require(data, "name", where)),
            function=function,
            address=_int(_require(data, "address", where), f"{where}.address"),
            count=_int(_require(data, "count", where), f"{where}.count", 1, MAX_READ_COUNT),
        )
        if block.end > 0x10000:
            raise _fail(f"{where}.count", "the block passes address 0xFFFF")
        if any(b.name == block.name for b in blocks):
            raise _fail(f"{where}.name", f"duplicate block name {block.name!r}")
        blocks.append(block)
    return tuple(blocks)


def _check_overlaps(fields: Sequence[Field], source: str) -> None:
    for function in READ_FUNCTIONS:
        ordered = sorted((f for f in fields if f.function == function), key=lambda f: f.address)
        for before, after in itertools.pairwise(ordered):
            if after.address < before.end:
                raise _fail(
                    f"{source}: fields.{after.name}.address",
                    f"{after.address:#06x} overlaps field {before.name} "
                    f"({before.address:#06x}, {before.size} registers)",
                )


def _check_control_overlaps(controls: dict[str, Control], source: str) -> None:
    items = list(controls.items())
    for i, (name, control) in enumerate(items):
        for other_name, other in items[:i]:
            if control.address >= other.end or other.address >= control.end:
                continue
            same_range = (control.function, control.address, control.count) == (
                other.function,
                other.address,
                other.count,
            )
            if not same_range or control.is_block or other.is_block:
                raise _fail(
                    f"{source}: controls.{name}.address",
                    f"overlaps the registers of controls.{other_name}",
                )
            if control.values == other.values:
                raise _fail(
                    f"{source}: controls.{name}.values", f"same values as controls.{other_name}"
                )


def parse_profile(key: str, data: Any, source: str) -> DeviceProfile:
    """Validate a profile's data (as loaded from YAML); `source` names it in every error."""
    if not isinstance(data, dict):
        raise _fail(source, "expected a mapping at the top level")
    _keys(data, _TOP_KEYS, source)
    model = _require(data, "model", source)
    if not isinstance(model, str) or not model.strip():
        raise _fail(f"{source}: model", f"expected the meter model's name, got {model!r}")
    kind = _choice(_require(data, "kind", source), KINDS, f"{source}: kind")
    word_order = _choice(data.get("word_order", "big"), WORD_ORDERS, f"{source}: word_order")
    max_gap = _int(data.get("max_gap", 0), f"{source}: max_gap", 0, MAX_READ_COUNT - 1)

    raw_fields = _mapping(_require(data, "fields", source) or {}, f"{source}: fields")
    fields: dict[str, Field] = {}
    for name, raw in raw_fields.items():
        where = f"{source}: fields.{name}"
        fields[_name(name, where)] = _parse_field(name, raw, word_order, where)
    if "energy_kwh" not in fields:
        raise _fail(f"{source}: fields", "'energy_kwh' (total import energy) is required")
    _check_overlaps(list(fields.values()), source)

    if "blocks" in data:
        blocks = _parse_blocks(data["blocks"], source)
        for field in fields.values():
            if not any(b.holds(field.address, field.size, field.function) for b in blocks):
                raise _fail(
                    f"{source}: fields.{field.name}.address",
                    f"{field.address:#06x} (function {field.function}) is in no register block",
                )
    else:
        blocks = derive_blocks(list(fields.values()), max_gap)

    raw_bits = _mapping(data.get("status_bits") or {}, f"{source}: status_bits")
    status_bits = {
        _name(k, f"{source}: status_bits.{k}"): _int(v, f"{source}: status_bits.{k}", 0, 15)
        for k, v in raw_bits.items()
    }
    if len(set(status_bits.values())) != len(status_bits):
        raise _fail(f"{source}: status_bits", "two names share one bit")

    controls: dict[str, Control] = {}
    readback = None
    raw_controls = _mapping(data.get("controls") or {}, f"{source}: controls")
    for name, raw in raw_controls.items():
        where = f"{source}: controls.{name}"
        if name == "readback":
            spec = _mapping(raw, where)
            _keys(spec, ("field", "bit", "source"), where)
            field_name = _require(spec, "field", where)
            if field_name not in fields:
                raise _fail(f"{where}.field", f"no field named {field_name!r}")
            if fields[field_name].type == "float32":
                raise _fail(f"{where}.field", "a status field must be an integer type")
            bit_name = _require(spec, "bit", where)
            if bit_name not in status_bits:
                raise _fail(f"{where}.bit", f"no status bit named {bit_name!r}")
            readback = Readback(field=field_name, bit=status_bits[bit_name])
            continue
        _choice(name, SWITCH_CONTROLS + BLOCK_CONTROLS + ("readback",), where)
        controls[name] = _parse_control(name, raw, word_order, where)
    _check_control_overlaps(controls, source)
    if ("trip" in controls or "close" in controls) and readback is None:
        raise _fail(
            f"{source}: controls", "controls.readback is required to confirm trip and close"
        )
    if kind == "prepaid":
        for needed in ("trip", "close"):
            if needed not in controls:
                raise _fail(f"{source}: controls", f"a prepaid meter needs a '{needed}' control")
    return DeviceProfile(
        key=key,
        model=model,
        kind=kind,
        word_order=word_order,
        blocks=blocks,
        fields=fields,
        status_bits=status_bits,
        controls=controls,
        readback=readback,
        max_gap=max_gap,
    )


def load_profile_file(path: Path) -> DeviceProfile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot be read: {exc.strerror}") from None
    return parse_profile(path.stem, data, str(path))


@lru_cache(maxsize=64)
def load_profile(key: str) -> DeviceProfile:
    path = PROFILE_DIR / f"{key}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
        raise ProfileError(f"Unknown device profile {key!r}; known profiles: {known}")
    return load_profile_file(path)


def load_all_profiles(directory: Path = PROFILE_DIR) -> dict[str, DeviceProfile]:
    """Every profile in `directory`, validated (call at start). One ProfileError lists every
    broken file."""
    profiles: dict[str, DeviceProfile] = {}
    errors: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            profiles[path.stem] = (
                load_profile(path.stem) if directory == PROFILE_DIR else load_profile_file(path)
            )
        except ProfileError as exc:
            errors.append(str(exc))
    if errors:
        raise ProfileError("\n".join(errors))
    return profiles
