"""InfluxDB through its v1-compatible HTTP API: line protocol on /write, InfluxQL on /query.

InfluxDB 1.x, 2.x (compatibility endpoints) and 3 Core all serve this API; see DESIGN.md, "Stores".
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import httpx

from collector.archive import ARCHIVE_STEP_DAYS, DayRollup, archive_cut, merge_step
from collector.readings import EnergyGroup, MeterReading, StoreUnavailable
from collector.tsdb import (
    GROUP_TAGS,
    DaySpan,
    Mark,
    add_up,
    check_group,
    chunks,
    energy_by_group,
    energy_from_spans,
    later,
    local_day_starts,
)
from schema.measurements import (
    DAILY,
    FIELD_CURRENT,
    FIELD_ENERGY,
    FIELD_FIRST_AT,
    FIELD_FIRST_ENERGY,
    FIELD_LAST_AT,
    FIELD_LAST_ENERGY,
    FIELD_MAX_POWER,
    FIELD_POWER,
    FIELD_READINGS,
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

    def __init__(self, message: str, *, database_missing: bool = False) -> None:
        super().__init__(message)
        self.database_missing = database_missing


class TimeseriesUnavailable(TimeseriesError, StoreUnavailable):
    """The server could not be reached or cannot serve now (down, overloaded, refusing the login,
    missing the database); the same request may succeed later. A request the server refuses for
    what it says (a malformed point, a field type conflict) is a plain TimeseriesError."""


# Refusals of the request itself; every other HTTP error is the server's state (see above).
_REFUSED_FOR_CONTENT = frozenset(range(400, 500)) - {401, 403, 404, 408, 429}


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

    def __init__(
        self, url: str, timeout_s: float = 10.0, *, create_missing_database: bool = False
    ) -> None:
        # With create_missing_database, a write that finds no database creates it and retries:
        # a collector started while InfluxDB was down could not create it up front.
        self.create_missing_database = create_missing_database
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
        self._write_lines([_reading_line(reading) for reading in readings])

    def _write_lines(self, lines: Sequence[str]) -> None:
        for batch in chunks(lines, WRITE_BATCH):
            body = "\n".join(batch).encode()
            try:
                self._post_lines(body)
            except TimeseriesError as exc:
                if not (exc.database_missing and self.create_missing_database):
                    raise
                self.create_database()
                self._post_lines(body)

    def _post_lines(self, body: bytes) -> None:
        self._request(
            "POST",
            "/write",
            "write",
            params={"db": self.database, "precision": "ns"},
            content=body,
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
        if end_on < start_on or not meter_ids:
            return {}
        result: dict[tuple[int, date], Decimal] = {}
        for batch in chunks(sorted(set(meter_ids)), METER_BATCH):
            found = self._day_spans(f"{_meters_match(batch)} AND ", start_on, end_on, tz, None)
            for meter_id in batch:
                spans = found.spans.get(meter_id, {})
                result.update(energy_from_spans(meter_id, found.before.get(meter_id), spans))
        return result

    def daily_energy_by(
        self,
        group: EnergyGroup,
        start_on: date,
        end_on: date,
        tz: ZoneInfo,
        *,
        meters: Mapping[int, Mapping[str, str]] | None = None,
    ) -> dict[tuple[str, date], Decimal]:
        """Without `meters`, one set of InfluxQL statements over every meter, grouped by meter and
        the group's tag: each meter-day counts where the day's last reading was tagged."""
        if meters is not None:
            return energy_by_group(self, group, start_on, end_on, tz, meters)
        check_group(group)
        if end_on < start_on:
            return {}
        tag = None if group == "meter" else GROUP_TAGS[group]
        found = self._day_spans("", start_on, end_on, tz, tag)
        energy: dict[tuple[int, date], Decimal] = {}
        for meter_id, spans in found.spans.items():
            energy.update(energy_from_spans(meter_id, found.before.get(meter_id), spans))
        if tag is None:
            return add_up(energy, lambda meter_id, _day: str(meter_id))
        return add_up(energy, lambda meter_id, day: found.places.get((meter_id, day)) or None)

    def _day_spans(
        self, where: str, start_on: date, end_on: date, tz: ZoneInfo, tag: str | None
    ) -> _Found:
        """Each meter's first and last register value on each local day with readings (hot or
        archived), and its last value before the first day; `where` ("... AND " or "") picks
        the meters. With `tag`, also the tag's value on each meter-day's last data.

        Each local day is its own time range, bounded by UTC instants computed in Python. Not
        GROUP BY time(1d) with tz(): its buckets are fixed 24 h steps, so days around a DST
        change would be cut at the wrong hour, and servers differ in how far they support tz().
        """
        bounds = [datetime_to_ns(at) for at in local_day_starts(start_on, end_on, tz)]
        days = [start_on + timedelta(days=k) for k in range(len(bounds) - 1)]
        group = f"GROUP BY {_ident(TAG_METER)}" + (f", {_ident(tag)}" if tag else "")
        energy = _ident(FIELD_ENERGY)
        raw = f"FROM {_ident(READINGS)} WHERE {where}"
        daily = f"FROM {_ident(DAILY)} WHERE {where}"
        statements = [
            f"SELECT last({energy}) {raw}time < {bounds[0]} GROUP BY {_ident(TAG_METER)}",
            f"SELECT last({_ident(FIELD_LAST_ENERGY)}), {_ident(FIELD_LAST_AT)} "
            f"{daily}time < {bounds[0]} GROUP BY {_ident(TAG_METER)}",
            f"SELECT {_fields(_SPAN_FIELDS)} {daily}time >= {bounds[0]} "
            f"AND time < {bounds[-1]} {group}",
        ]
        for k in range(len(days)):
            during = f"time >= {bounds[k]} AND time < {bounds[k + 1]}"
            statements += [
                f"SELECT first({energy}) {raw}{during} {group}",
                f"SELECT last({energy}) {raw}{during} {group}",
            ]
        answers = self._query_all(statements)
        found = _Found()
        for tags, row in _rows(answers[0]):
            found.before[int(tags[TAG_METER])] = _mark(row[0], row[1])
        for tags, row in _rows(answers[1]):
            meter_id = int(tags[TAG_METER])
            found.before[meter_id] = _later(found.before.get(meter_id), _mark(row[2], row[1]))
        for tags, row in _rows(answers[2]):
            index = bisect_right(bounds, row[0]) - 1
            span = _span(row[1], row[2], row[3], row[4])
            found.add(int(tags[TAG_METER]), days[index], span, tags.get(tag or "", ""))
        for k, day in enumerate(days):
            for tags, span in _series_spans(answers[3 + 2 * k], answers[4 + 2 * k]):
                found.add(int(tags[TAG_METER]), day, span, tags.get(tag or "", ""))
        return found

    def archive(self, before: datetime, tz: ZoneInfo) -> int:
        """Roll whole local days before `before` up into points of `DAILY`, then delete their
        readings, a few days per step (oldest first).

        InfluxDB has no transactions: each step writes its daily points before it deletes the
        readings, so an interrupted run leaves readings that the next run merges into the same
        points (idempotent). Readings written into an archived range while a step runs would be
        deleted uncounted: call this from the thread that writes (SpoolingStore.archive does)."""
        cut_on, cut_at = archive_cut(before, tz)
        cut_ns = datetime_to_ns(cut_at)
        (oldest,) = self._query(
            [f"SELECT first({_ident(FIELD_ENERGY)}) FROM {_ident(READINGS)} WHERE time < {cut_ns}"]
        )
        rows = _rows(oldest)
        if not rows:
            return 0
        day = ns_to_datetime(rows[0][1][0]).astimezone(tz).date()
        start = datetime_to_ns(local_day_starts(day, day, tz)[0])
        (archived,) = self._query(
            [
                f"SELECT last({_ident(FIELD_LAST_ENERGY)}) FROM {_ident(DAILY)} "
                f"WHERE time < {start} GROUP BY {_ident(TAG_METER)}"
            ]
        )
        previous = {int(tags[TAG_METER]): _need(_decimal(row[1])) for tags, row in _rows(archived)}
        removed = 0
        while day < cut_on:
            last_day = min(day + timedelta(days=ARCHIVE_STEP_DAYS), cut_on) - timedelta(days=1)
            removed += self._archive_step(day, last_day, tz, previous)
            day = last_day + timedelta(days=1)
        return removed

    def _archive_step(
        self, first_day: date, last_day: date, tz: ZoneInfo, previous: dict[int, Decimal]
    ) -> int:
        bounds = [datetime_to_ns(at) for at in local_day_starts(first_day, last_day, tz)]
        days = [first_day + timedelta(days=k) for k in range(len(bounds) - 1)]
        energy = _ident(FIELD_ENERGY)
        raw = f"FROM {_ident(READINGS)} WHERE"
        statements = [
            f"SELECT {_fields(_DAILY_FIELDS)} FROM {_ident(DAILY)} "
            f"WHERE time >= {bounds[0]} AND time < {bounds[-1]} GROUP BY *"
        ]
        for k in range(len(days)):
            during = f"time >= {bounds[k]} AND time < {bounds[k + 1]}"
            statements += [
                f"SELECT first({energy}) {raw} {during} GROUP BY *",
                f"SELECT last({energy}) {raw} {during} GROUP BY *",
                f"SELECT count({energy}), max({_ident(FIELD_POWER)}) {raw} {during} "
                f"GROUP BY {_ident(TAG_METER)}",
            ]
        answers = self._query_all(statements)
        kept: dict[tuple[int, date], DayRollup] = {}
        for tags, row in _rows(answers[0]):
            meter_id, on_date = int(tags[TAG_METER]), days[bisect_right(bounds, row[0]) - 1]
            kept[(meter_id, on_date)] = DayRollup(
                meter_id=meter_id,
                on_date=on_date,
                span=_span(row[1], row[2], row[3], row[4]),
                energy_kwh=_need(_decimal(row[5])),
                readings=int(row[6]),
                max_power_kw=_decimal(row[7]),
                tags=_place(tags),
            )
        fresh: dict[tuple[int, date], DayRollup] = {}
        for k, day in enumerate(days):
            firsts, lasts, stats = answers[1 + 3 * k : 4 + 3 * k]
            # A meter whose tags changed during the day has a series per set of tags.
            pieces: dict[int, tuple[DaySpan, Mapping[str, str]]] = {}
            for tags, span in _series_spans(firsts, lasts):
                meter_id = int(tags[TAG_METER])
                had = pieces.get(meter_id)
                place = _place(tags) if had is None or span.last.at > had[0].last.at else had[1]
                pieces[meter_id] = (span.merged(had and had[0]), place)
            counts = {int(tags[TAG_METER]): row for tags, row in _rows(stats)}
            for meter_id, (span, place) in pieces.items():
                _, count, max_power = counts.get(meter_id, (None, 0, None))
                fresh[(meter_id, day)] = DayRollup(
                    meter_id=meter_id,
                    on_date=day,
                    span=span,
                    readings=int(count),
                    max_power_kw=_decimal(max_power),
                    tags=place,
                )
        changed = merge_step(kept, fresh, previous)
        self._write_lines(
            [_daily_line(rollup, bounds[days.index(rollup.on_date)]) for rollup in changed]
        )
        if fresh:
            self._query(
                [
                    f"DELETE FROM {_ident(READINGS)} "
                    f"WHERE time >= {bounds[0]} AND time < {bounds[-1]}"
                ]
            )
        return sum(rollup.readings for rollup in fresh.values())

    def _query_all(self, statements: Sequence[str]) -> list[dict[str, Any]]:
        """Statements in requests of a sensible size; a truncated answer is an error, never a
        silently smaller total."""
        answers = [
            answer
            for part in chunks(statements, STATEMENTS_PER_QUERY)
            for answer in self._query(part)
        ]
        if any(_partial(answer) for answer in answers):
            raise TimeseriesError(
                f"InfluxDB at {self.safe_url} cut an answer short (max-row-limit?): "
                "ask for fewer days or meters at once"
            )
        return answers

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
            raise TimeseriesUnavailable(
                f"InfluxDB at {self.safe_url} is unreachable ({what}): {exc or type(exc).__name__}"
            ) from exc
        if response.status_code >= 400:
            error = (
                TimeseriesError
                if response.status_code in _REFUSED_FOR_CONTENT
                else TimeseriesUnavailable
            )
            message = _error_message(response)
            raise error(
                f"InfluxDB at {self.safe_url} refused a {what} with HTTP {response.status_code}: "
                f"{message}",
                database_missing=response.status_code == 404 and "database not found" in message,
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


def _daily_line(rollup: DayRollup, day_start_ns: int) -> str:
    fields: dict[str, FieldValue] = {
        FIELD_FIRST_AT: datetime_to_ns(rollup.span.first.at),
        FIELD_FIRST_ENERGY: _four_places(FIELD_FIRST_ENERGY, rollup.span.first.energy_kwh),
        FIELD_LAST_AT: datetime_to_ns(rollup.span.last.at),
        FIELD_LAST_ENERGY: _four_places(FIELD_LAST_ENERGY, rollup.span.last.energy_kwh),
        FIELD_ENERGY: _four_places(FIELD_ENERGY, rollup.energy_kwh),
        FIELD_READINGS: int(rollup.readings),
    }
    if rollup.max_power_kw is not None:
        fields[FIELD_MAX_POWER] = _four_places(FIELD_MAX_POWER, rollup.max_power_kw)
    tags = {**rollup.tags, TAG_METER: str(int(rollup.meter_id))}
    return encode_point(DAILY, tags, fields, day_start_ns)


# Columns of DAILY that make a day's span, and all that make its rollup (after "time").
_SPAN_FIELDS = (FIELD_FIRST_AT, FIELD_FIRST_ENERGY, FIELD_LAST_AT, FIELD_LAST_ENERGY)
_DAILY_FIELDS = (*_SPAN_FIELDS, FIELD_ENERGY, FIELD_READINGS, FIELD_MAX_POWER)


@dataclass
class _Found:
    """What _day_spans found: marks before the first day, spans per meter and day, and the
    place (a tag's value) of each meter-day with the time it was seen."""

    before: dict[int, Mark] = field(default_factory=dict)
    spans: dict[int, dict[date, DaySpan]] = field(default_factory=dict)
    places: dict[tuple[int, date], str] = field(default_factory=dict)
    _placed_at: dict[tuple[int, date], datetime] = field(default_factory=dict)

    def add(self, meter_id: int, day: date, span: DaySpan, place: str) -> None:
        days = self.spans.setdefault(meter_id, {})
        days[day] = span.merged(days.get(day))
        seen = self._placed_at.get((meter_id, day))
        if seen is None or span.last.at > seen:
            self._placed_at[(meter_id, day)] = span.last.at
            self.places[(meter_id, day)] = place


def _fields(names: Sequence[str]) -> str:
    return ", ".join(_ident(name) for name in names)


def _rows(result: Mapping[str, Any]) -> list[tuple[dict[str, str], list[Any]]]:
    """(tags, row) for every row of every series of a result."""
    return [
        (series.get("tags") or {}, row)
        for series in result.get("series", [])
        for row in series.get("values") or []
    ]


def _series_spans(
    firsts: Mapping[str, Any], lasts: Mapping[str, Any]
) -> list[tuple[dict[str, str], DaySpan]]:
    """(tags, span) per series from a `first()` and a `last()` answer over the same range."""
    first_of = {tuple(sorted(tags.items())): row for tags, row in _rows(firsts)}
    result = []
    for tags, last in _rows(lasts):
        first = first_of.get(tuple(sorted(tags.items())))
        if first is not None:
            result.append((tags, DaySpan(_mark(first[0], first[1]), _mark(last[0], last[1]))))
    return result


def _place(tags: Mapping[str, str]) -> dict[str, str]:
    """A series' tags without the meter and without empty values (tags the point lacked)."""
    return {key: value for key, value in tags.items() if key != TAG_METER and value}


def _mark(at_ns: Any, energy: Any) -> Mark:
    return Mark(ns_to_datetime(int(at_ns)), _need(_decimal(energy)))


def _span(first_at: Any, first: Any, last_at: Any, last: Any) -> DaySpan:
    return DaySpan(_mark(first_at, first), _mark(last_at, last))


def _later(a: Mark | None, b: Mark) -> Mark:
    mark = later(a, b)
    assert mark is not None
    return mark


def _need(value: Decimal | None) -> Decimal:
    if value is None:
        raise TimeseriesError("InfluxDB sent an empty value where the store always writes one")
    return value


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
