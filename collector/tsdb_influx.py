"""InfluxDB through its v1-compatible HTTP API: line protocol on /write, InfluxQL on /query.

InfluxDB 1.x, 2.x (compatibility endpoints) and 3 Core all serve this API; see DESIGN.md, "Stores".
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import httpx

from collector.readings import MeterReading
from collector.tsdb import chunks, energy_per_day, local_day_starts
from schema.measurements import (
    FIELD_CURRENT,
    FIELD_ENERGY,
    FIELD_POWER,
    FIELD_RELAY,
    FIELD_VOLTAGE,
    READINGS,
    TAG_METER,
)

FieldValue = int | float | Decimal | str | bool

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Points per POST /write: InfluxData's advice is batches of about 5,000 lines.
WRITE_BATCH = 5000
# Rows per SELECT page, below any max-row-limit a server is likely to set.
QUERY_PAGE = 10_000
# Meters per WHERE clause and statements per POST /query, to keep requests a sensible size.
METER_BATCH = 200
STATEMENTS_PER_QUERY = 50
# The stores keep 4 decimal places (schema.types.Energy); InfluxDB keeps float64.
PLACES = 4
QUANTUM = Decimal(1).scaleb(-PLACES)


class TimeseriesError(Exception):
    """The time-series server could not be reached, or refused a request."""


# --- line protocol ------------------------------------------------------------------------------

_MEASUREMENT_SPECIALS = ", "
_KEY_SPECIALS = ", ="


def encode_point(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], at_ns: int
) -> str:
    """One line of InfluxDB line protocol, timestamp in nanoseconds.

    Tags are sorted by key (InfluxDB's advice); a tag with an empty value is left out, since line
    protocol cannot carry one and InfluxQL reads a missing tag as empty anyway. Fields keep their
    order. Integers get the `i` suffix; floats and Decimals are written as float literals, Decimals
    digit for digit; strings are double-quoted. What line protocol cannot carry (an empty name, a
    line break in a name or tag, a backslash before an escaped character or at the end of a name
    or tag, NaN or infinity) raises ValueError rather than being stored as something else.
    """
    if not fields:
        raise ValueError(f"a point needs at least one field: {measurement!r} has none")
    head = [_escape(measurement, _MEASUREMENT_SPECIALS, "measurement")]
    head += [
        f"{_escape(key, _KEY_SPECIALS, 'tag key')}={_escape(value, _KEY_SPECIALS, 'tag value')}"
        for key, value in sorted(tags.items())
        if value != ""
    ]
    body = ",".join(
        f"{_escape(key, _KEY_SPECIALS, 'field key')}={_field_value(key, value)}"
        for key, value in fields.items()
    )
    return f"{','.join(head)} {body} {int(at_ns)}"


def _escape(text: str, specials: str, what: str) -> str:
    if text == "":
        raise ValueError(f"line protocol has no empty {what}")
    if "\n" in text or "\r" in text:
        raise ValueError(f"line protocol cannot carry a line break in a {what}: {text!r}")
    # InfluxDB reads a backslash before a special character (or at the end) as an escape and
    # never unescapes "\\", so such text would be stored as something else.
    for index, char in enumerate(text):
        if char == "\\" and (index + 1 == len(text) or text[index + 1] in specials):
            raise ValueError(
                f"line protocol cannot carry a backslash before {specials!r} or at the end of a "
                f"{what}: {text!r}"
            )
    for char in specials:
        text = text.replace(char, "\\" + char)
    return text


def _field_value(key: str, value: FieldValue) -> str:
    # bool before int: True is an int too.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"field {key!r}: {value} does not fit InfluxDB's 64-bit integers")
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"field {key!r}: line protocol has no {value}")
        return repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"field {key!r}: line protocol has no {value}")
        # Fixed-point digits exactly as given ("1E+2" -> "100"); no suffix means float.
        return format(value, "f")
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"field {key!r}: cannot write a {type(value).__name__} to InfluxDB")


def datetime_to_ns(at: datetime) -> int:
    """An aware datetime as integer nanoseconds since the epoch, exactly."""
    if at.tzinfo is None:
        raise ValueError(f"expected an aware datetime, got {at!r}")
    return (at - EPOCH) // timedelta(microseconds=1) * 1000


def ns_to_datetime(at_ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=at_ns // 1000)


# --- the store ----------------------------------------------------------------------------------


class InfluxReadingStore:
    """ReadingStore on InfluxDB's v1-compatible HTTP API.

    `url` is `http(s)://[user:password@]host:port[/prefix]/database[?token=...]`: user and
    password go as basic auth (InfluxDB 1.x), a token as `Authorization: Token ...` (2.x, 3.x).

    One reading is one point of `READINGS`, tagged with its meter and the reading's tags, at the
    reading's time: writing the same reading again overwrites the point with itself (different
    values for the same meter and time overwrite the earlier ones). Readings come back with the
    tags they were written with.
    """

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an InfluxDB URL looks like http://user:pass@127.0.0.1:8086/voltpay")
        prefix, _, database = parts.path.strip("/").rpartition("/")
        if not database:
            raise ValueError(
                "the InfluxDB URL names no database: add it as the path, "
                "e.g. http://127.0.0.1:8086/voltpay"
            )
        self.database = unquote(database)
        host = parts.netloc.rpartition("@")[2]
        base = f"{parts.scheme}://{host}" + (f"/{prefix}" if prefix else "")
        # The URL for messages: never the password or the token.
        user = f"{parts.username}@" if parts.username else ""
        self.safe_url = f"{parts.scheme}://{user}{host}/{parts.path.strip('/')}"
        # unquote, not parse_qs: a "+" in a token is a plus, not a space.
        query = dict(pair.partition("=")[::2] for pair in parts.query.split("&") if pair)
        token = unquote(query.get("token", ""))
        headers = {"Authorization": f"Token {token}"} if token else {}
        auth = (
            httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
            if parts.username and not token
            else None
        )
        self._client = httpx.Client(base_url=base, timeout=timeout_s, headers=headers, auth=auth)

    def __repr__(self) -> str:
        return f"InfluxReadingStore({self.safe_url!r})"

    def create_database(self) -> None:
        """Create the database unless the server already lists it.

        Asking first lets a user with read and write rights but no admin rights start; InfluxDB
        2.x and 3.x create databases with their own tools, and list them here once they exist.
        """
        listed = self._query(["SHOW DATABASES"])[0]
        names = {row[0] for series in listed.get("series", []) for row in series.get("values", [])}
        if self.database not in names:
            self._query([f"CREATE DATABASE {_ident(self.database)}"])

    def write(self, readings: Sequence[MeterReading]) -> None:
        lines = [_reading_line(reading) for reading in readings]
        for batch in chunks(lines, WRITE_BATCH):
            self._request(
                "POST",
                "/write",
                "write",
                params={"db": self.database, "precision": "ns"},
                content="\n".join(batch).encode(),
            )

    def readings(self, meter_id: int, start: datetime, end: datetime) -> list[MeterReading]:
        # Page by time: a server may cap the rows one query returns (max-row-limit).
        result: list[MeterReading] = []
        after = f"time >= {datetime_to_ns(start)}"
        end_ns = datetime_to_ns(end)
        while True:
            # SELECT * gives tags and fields alike as columns; SHOW TAG KEYS tells them apart.
            keys, page = self._query(
                [
                    f"SHOW TAG KEYS FROM {_ident(READINGS)}",
                    f"SELECT * FROM {_ident(READINGS)} WHERE {_meters_match([meter_id])} "
                    f"AND {after} AND time < {end_ns} ORDER BY time ASC LIMIT {QUERY_PAGE}",
                ]
            )
            tag_keys = {
                row[0] for series in keys.get("series", []) for row in series.get("values", [])
            }
            tag_keys.discard(TAG_METER)
            rows = [
                dict(zip(series["columns"], values, strict=True))
                for series in page.get("series", [])
                for values in series.get("values", [])
            ]
            for row in rows:
                reading = _reading(meter_id, row, tag_keys)
                # The same meter under other tags is another series; one reading per instant.
                if reading is not None and (not result or reading.at > result[-1].at):
                    result.append(reading)
            if not rows or (len(rows) < QUERY_PAGE and not _partial(page)):
                return result
            after = f"time > {rows[-1]['time']}"

    def daily_energy(
        self, meter_ids: Sequence[int], start_on: date, end_on: date, tz: ZoneInfo
    ) -> dict[tuple[int, date], Decimal]:
        # Each local day is its own time range, bounded by UTC instants computed in Python. Not
        # GROUP BY time(1d) with tz(): its buckets are fixed 24 h steps, so days around a DST
        # change would be cut at the wrong hour, and servers differ in how far they support tz().
        if end_on < start_on or not meter_ids:
            return {}
        bounds = [datetime_to_ns(at) for at in local_day_starts(start_on, end_on, tz)]
        days = [start_on + timedelta(days=k) for k in range(len(bounds) - 1)]
        energy = _ident(FIELD_ENERGY)
        result: dict[tuple[int, date], Decimal] = {}
        for batch in chunks(sorted(set(meter_ids)), METER_BATCH):
            where = f"FROM {_ident(READINGS)} WHERE {_meters_match(batch)}"
            group = f"GROUP BY {_ident(TAG_METER)}"
            statements = [f"SELECT last({energy}) {where} AND time < {bounds[0]} {group}"] + [
                f"SELECT first({energy}), last({energy}) {where} "
                f"AND time >= {bounds[k]} AND time < {bounds[k + 1]} {group}"
                for k in range(len(days))
            ]
            answers = [
                answer
                for part in chunks(statements, STATEMENTS_PER_QUERY)
                for answer in self._query(part)
            ]
            before = {
                meter: values[0][1]
                for meter, values in _by_meter(answers[0])
                if values[0][1] is not None
            }
            spans: dict[int, dict[date, tuple[Decimal, Decimal]]] = {m: {} for m in batch}
            for day, answer in zip(days, answers[1:], strict=True):
                for meter, values in _by_meter(answer):
                    _, first, last = values[0]
                    if first is not None and last is not None:
                        spans[meter][day] = (first, last)
            for meter_id in batch:
                result.update(energy_per_day(meter_id, before.get(meter_id), spans[meter_id]))
        return result

    def close(self) -> None:
        self._client.close()

    # --- HTTP -----------------------------------------------------------------------------------

    def _query(self, statements: Sequence[str]) -> list[dict[str, Any]]:
        """Run InfluxQL statements in one request; one result per statement, errors raised."""
        query = ";\n".join(statements)
        response = self._request(
            "POST",
            "/query",
            "query",
            params={"db": self.database, "epoch": "ns"},
            data={"q": query},
        )
        try:
            results: list[dict[str, Any]] = response.json()["results"]
        except (ValueError, KeyError, TypeError) as exc:
            raise TimeseriesError(
                f"InfluxDB at {self.safe_url} sent an answer to a query that is not InfluxDB's "
                f"JSON: {response.text[:200]!r}"
            ) from exc
        errors = [str(result["error"]) for result in results if "error" in result]
        reasons = [error for error in errors if error != "not executed"]
        if errors and not reasons and len(statements) > 1:
            # InfluxDB 1.x answers "not executed" for a whole request it refuses up front (an
            # unknown database, say): run the statements one by one to learn the reason.
            for statement in statements:
                self._query([statement])
        if errors:
            reasons = reasons or errors
            raise TimeseriesError(
                f"InfluxDB at {self.safe_url} refused a query: {reasons[0]} (query: {query[:300]})"
            )
        if len(results) != len(statements):
            raise TimeseriesError(
                f"InfluxDB at {self.safe_url} answered {len(results)} of "
                f"{len(statements)} statements"
            )
        return results

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TimeseriesError(
                f"InfluxDB at {self.safe_url} is unreachable ({what}): {exc or type(exc).__name__}"
            ) from exc
        if response.status_code >= 400:
            raise TimeseriesError(
                f"InfluxDB at {self.safe_url} refused a {what} with HTTP {response.status_code}: "
                f"{_error_message(response)}"
            )
        return response


def _reading_line(reading: MeterReading) -> str:
    fields: dict[str, FieldValue] = {}
    for key, value in (
        (FIELD_ENERGY, reading.energy_kwh),
        (FIELD_POWER, reading.power_kw),
        (FIELD_VOLTAGE, reading.voltage_v),
        (FIELD_CURRENT, reading.current_a),
    ):
        if value is not None:
            fields[key] = _four_places(key, value)
    if reading.relay_closed is not None:
        fields[FIELD_RELAY] = bool(reading.relay_closed)
    # The meter tag is the reading's meter, whatever the reading's other tags say.
    tags = {**reading.tags, TAG_METER: str(int(reading.meter_id))}
    return encode_point(READINGS, tags, fields, datetime_to_ns(reading.at))


def _four_places(key: str, value: Decimal) -> Decimal:
    # As the SQL store does: more places than the stores keep is an error, never a rounding.
    amount = Decimal(value)
    if amount != amount.quantize(QUANTUM):
        raise ValueError(f"{key} {amount} has more than {PLACES} decimal places")
    return amount


def _decimal(value: Any) -> Decimal | None:
    """A float64 from InfluxDB's JSON back to the Decimal that was written.

    Written values have at most 4 places and far fewer than 15 significant digits, so the
    shortest repr of the float is those digits; InfluxDB sends whole floats as integers.
    """
    if value is None:
        return None
    return Decimal(repr(value)).quantize(QUANTUM)


def _reading(
    meter_id: int, row: Mapping[str, Any], tag_keys: Collection[str]
) -> MeterReading | None:
    energy = _decimal(row.get(FIELD_ENERGY))
    if energy is None:
        return None
    relay = row.get(FIELD_RELAY)
    return MeterReading(
        meter_id=meter_id,
        at=ns_to_datetime(row["time"]),
        energy_kwh=energy,
        power_kw=_decimal(row.get(FIELD_POWER)),
        voltage_v=_decimal(row.get(FIELD_VOLTAGE)),
        current_a=_decimal(row.get(FIELD_CURRENT)),
        relay_closed=None if relay is None else bool(relay),
        tags={key: str(row[key]) for key in sorted(tag_keys) if row.get(key)},
    )


def _by_meter(result: Mapping[str, Any]) -> list[tuple[int, list[list[Any]]]]:
    """(meter, values) of a GROUP BY meter result, energy values as Decimals."""
    return [
        (
            int(series["tags"][TAG_METER]),
            [[row[0], *(_decimal(value) for value in row[1:])] for row in series["values"]],
        )
        for series in result.get("series", [])
        if series.get("values")
    ]


def _partial(result: Mapping[str, Any]) -> bool:
    return bool(result.get("partial")) or any(s.get("partial") for s in result.get("series", []))


def _meters_match(meter_ids: Sequence[int]) -> str:
    meter = _ident(TAG_METER)
    return "(" + " OR ".join(f"{meter} = '{int(meter_id)}'" for meter_id in meter_ids) + ")"


def _ident(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error") or body.get("message"), str):
        return str(body.get("error") or body.get("message"))
    return response.text.strip()[:300] or response.reason_phrase
