"""A durable on-disk spool in front of a ReadingStore, so an outage of the time-series store
loses no readings and never holds billing up.

`SpoolingStore.write` hands readings to the store behind it; when that store is unavailable
(`StoreUnavailable`: unreachable, down, refusing the login, missing its database), or while
earlier readings still wait, it appends the batch to the spool on disk and returns. `flush`
sends waiting batches in the order they were written, and removes each from disk only after the
store took it. A crash between the two sends a batch again, which changes nothing: InfluxDB
keeps one point per series and time, the SQL store ignores a (meter, at) it has.

On disk: a directory of segment files `<sequence>.spool`, appended to and never rewritten. Each
line is one batch: the CRC-32 of the JSON as 8 hex digits, a space, then the JSON
`{"readings": [...]}`; every append is fsync'd before write() returns. A process appends only
to segments it created, so a line torn by a crash mid-append is never continued: it is skipped
with an error in the log when its turn comes, and everything else is delivered. A batch the
store refuses for its content (not an outage) would block every later one: it is moved to
`rejected.spool` in the same format, with an error in the log.

Reads (`readings`, `daily_energy`, ...) go to the store behind: spooled readings appear there
once flushed. Every method holds one lock, so the collector's worker thread and anything else
may call them concurrently; a lock file keeps a second process off the same directory.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from collector.readings import EnergyGroup, MeterReading, ReadingStore, StoreUnavailable

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".spool"
REJECTED = "rejected.spool"
LOCK_FILE = ".lock"


class SpoolCorrupt(ValueError):
    """A spooled line that cannot be read back (torn by a crash, or damaged)."""


class SpoolingStore(ReadingStore):
    """A ReadingStore that spools batches to `directory` while `inner` is unavailable.

    After a failed attempt, `inner` is left alone for `retry_after_s`, doubling with each failure
    up to `max_retry_after_s`: meanwhile writes go straight to disk, so a server that times out
    delays the caller once per interval at most, not on every write. `clock` is monotonic seconds.
    """

    def __init__(
        self,
        inner: ReadingStore,
        directory: str | os.PathLike[str],
        *,
        segment_bytes: int = 8 * 1024 * 1024,
        retry_after_s: float = 5.0,
        max_retry_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.retry_after_s = retry_after_s
        self.max_retry_after_s = max_retry_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = _lock_directory(self.directory)
        self._delay_s = 0.0
        self._retry_at: float | None = None
        # Records not yet delivered, per segment, oldest segment first.
        self._segments: dict[Path, int] = {}
        for path in sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}")):
            if path.name != REJECTED and path.stem.isdigit():
                self._segments[path] = _count_records(path.read_bytes())
        self._next_sequence = 1 + max((int(p.stem) for p in self._segments), default=0)
        # The segment this process appends to, its descriptor and size.
        self._active: Path | None = None
        self._active_fd: int | None = None
        self._active_size = 0
        # Where delivery stopped inside the oldest segment: records already sent.
        self._delivered_in_oldest = 0
        if self._segments:
            log.info("%d spooled batches of readings wait in %s", self._waiting(), self.directory)

    def __repr__(self) -> str:
        return f"SpoolingStore({self.inner!r}, {str(self.directory)!r})"

    # --- writing ----------------------------------------------------------------------------

    def write(self, readings: Sequence[MeterReading]) -> None:
        """Hand readings to the store, or spool them; raises only when the store refuses them
        for their content, or the spool cannot be written (a full disk)."""
        if not readings:
            return
        with self._lock:
            if self._segments and self._may_try():
                self._drain()
            if self._segments or not self._may_try():
                self._append(readings)
                return
            try:
                self.inner.write(readings)
            except StoreUnavailable as exc:
                self._failed(exc)
                self._append(readings)
            else:
                self._succeeded()

    def flush(self, *, force: bool = False) -> int:
        """Send spooled batches, oldest first, until none is left or the store fails again;
        return how many were delivered. Until the retry interval after a failure has passed this
        does nothing, unless `force`. Never raises for an unavailable store."""
        with self._lock:
            if not self._segments or not (force or self._may_try()):
                return 0
            return self._drain()

    def pending(self) -> int:
        """Batches waiting on disk (a torn last line counts until its turn comes)."""
        with self._lock:
            return self._waiting()

    # --- reading: the store behind ----------------------------------------------------------

    def readings(self, meter_id: int, start: datetime, end: datetime) -> list[MeterReading]:
        return self.inner.readings(meter_id, start, end)

    def daily_energy(
        self, meter_ids: Sequence[int], start_on: date, end_on: date, tz: ZoneInfo
    ) -> dict[tuple[int, date], Decimal]:
        return self.inner.daily_energy(meter_ids, start_on, end_on, tz)

    def daily_energy_by(
        self,
        group: EnergyGroup,
        start_on: date,
        end_on: date,
        tz: ZoneInfo,
        *,
        meters: Mapping[int, Mapping[str, str]] | None = None,
    ) -> dict[tuple[str, date], Decimal]:
        return self.inner.daily_energy_by(group, start_on, end_on, tz, meters=meters)

    def archive(self, before: datetime, tz: ZoneInfo) -> int:
        """Deliver the spool, then archive in the store behind, holding the lock throughout so
        no write lands in a range being archived. While batches still wait (the store is
        unavailable) nothing is archived: raises StoreUnavailable."""
        with self._lock:
            if self._segments:
                self._drain()
            if self._segments:
                raise StoreUnavailable(
                    f"not archiving while {self._waiting()} spooled batches wait for the store"
                )
            return self.inner.archive(before, tz)

    def close(self) -> None:
        """Close the store behind and the spool; waiting batches stay on disk for next time."""
        with self._lock:
            self._close_active()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
        self.inner.close()

    # --- the spool --------------------------------------------------------------------------

    def _waiting(self) -> int:
        return sum(self._segments.values()) - self._delivered_in_oldest

    def _may_try(self) -> bool:
        return self._retry_at is None or self._clock() >= self._retry_at

    def _failed(self, exc: StoreUnavailable) -> None:
        if self._retry_at is None:
            log.warning("time-series store unavailable, spooling readings to disk: %s", exc)
        self._delay_s = min(self.max_retry_after_s, max(self.retry_after_s, 2 * self._delay_s))
        self._retry_at = self._clock() + self._delay_s

    def _succeeded(self) -> None:
        if self._retry_at is not None:
            log.info("time-series store available again")
        self._delay_s = 0.0
        self._retry_at = None

    def _append(self, readings: Sequence[MeterReading]) -> None:
        line = encode_batch(readings)
        if self._active_fd is None or self._active_size >= self.segment_bytes:
            self._open_segment()
        assert self._active is not None and self._active_fd is not None
        try:
            _write_all(self._active_fd, line)
            os.fsync(self._active_fd)
        except OSError:
            # Cut off whatever part reached the file, and start the next append afresh.
            try:
                os.ftruncate(self._active_fd, self._active_size)
            except OSError:
                log.exception("could not cut a partly spooled batch from %s", self._active)
            self._close_active()
            raise
        self._active_size += len(line)
        self._segments[self._active] += 1

    def _open_segment(self) -> None:
        self._close_active()
        path = self.directory / f"{self._next_sequence:012d}{SEGMENT_SUFFIX}"
        self._next_sequence += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        _fsync_directory(self.directory)
        self._active, self._active_fd, self._active_size = path, fd, 0
        self._segments[path] = 0

    def _close_active(self) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)
        self._active, self._active_fd, self._active_size = None, None, 0

    def _drain(self) -> int:
        delivered = 0
        while self._segments:
            path = next(iter(self._segments))
            lines = _split_records(path.read_bytes())
            while self._delivered_in_oldest < len(lines):
                number = self._delivered_in_oldest + 1
                try:
                    batch = decode_batch(lines[number - 1])
                except SpoolCorrupt as exc:
                    log.error("skipping record %d of %s: %s", number, path, exc)
                else:
                    try:
                        self.inner.write(batch)
                    except StoreUnavailable as exc:
                        self._failed(exc)
                        self._log_delivered(delivered)
                        return delivered
                    except Exception as exc:
                        self._reject(lines[number - 1], path, number, exc)
                    else:
                        delivered += 1
                        self._succeeded()
                self._delivered_in_oldest = number
            if path == self._active:
                self._close_active()
            path.unlink()
            _fsync_directory(self.directory)
            del self._segments[path]
            self._delivered_in_oldest = 0
        self._log_delivered(delivered)
        return delivered

    def _reject(self, line: bytes, path: Path, number: int, exc: Exception) -> None:
        rejected = self.directory / REJECTED
        log.error(
            "the time-series store refused record %d of %s; kept in %s: %s",
            number,
            path,
            rejected,
            exc,
        )
        fd = os.open(rejected, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            _write_all(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def _log_delivered(self, delivered: int) -> None:
        if delivered:
            log.info("delivered %d spooled batches; %d wait", delivered, self._waiting())


# --- records ------------------------------------------------------------------------------------


def encode_batch(readings: Sequence[MeterReading]) -> bytes:
    """One spool line (with its newline) for a batch of readings."""
    body = json.dumps(
        {"readings": [_reading_to_json(r) for r in readings]},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def decode_batch(line: bytes) -> list[MeterReading]:
    """The readings of one spool line (without its newline); SpoolCorrupt if it is damaged."""
    checksum, _, body = line.partition(b" ")
    try:
        intact = len(checksum) == 8 and int(checksum, 16) == zlib.crc32(body)
    except ValueError:
        intact = False
    if not intact:
        raise SpoolCorrupt(f"checksum does not match ({len(line)} bytes, torn or damaged)")
    try:
        return [_reading_from_json(item) for item in json.loads(body)["readings"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise SpoolCorrupt(f"not a spooled batch: {exc}") from exc


def _reading_to_json(reading: MeterReading) -> dict[str, Any]:
    def number(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return {
        "meter_id": reading.meter_id,
        "at": reading.at.isoformat(),
        "energy_kwh": str(reading.energy_kwh),
        "power_kw": number(reading.power_kw),
        "voltage_v": number(reading.voltage_v),
        "current_a": number(reading.current_a),
        "relay_closed": reading.relay_closed,
        "band_energy_kwh": None
        if reading.band_energy_kwh is None
        else {band: str(kwh) for band, kwh in reading.band_energy_kwh.items()},
        "tags": dict(reading.tags),
    }


def _reading_from_json(item: Mapping[str, Any]) -> MeterReading:
    def number(value: str | None) -> Decimal | None:
        return None if value is None else Decimal(value)

    at = datetime.fromisoformat(item["at"])
    if at.tzinfo is None:
        raise ValueError(f"a spooled reading's time has no zone: {item['at']!r}")
    bands = item.get("band_energy_kwh")
    return MeterReading(
        meter_id=int(item["meter_id"]),
        at=at,
        energy_kwh=Decimal(item["energy_kwh"]),
        power_kw=number(item.get("power_kw")),
        voltage_v=number(item.get("voltage_v")),
        current_a=number(item.get("current_a")),
        relay_closed=item.get("relay_closed"),
        band_energy_kwh=None if bands is None else {k: Decimal(v) for k, v in bands.items()},
        tags={str(k): str(v) for k, v in (item.get("tags") or {}).items()},
    )


def _split_records(data: bytes) -> list[bytes]:
    """The records of a segment; a last line without its newline (torn) is a record too."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _count_records(data: bytes) -> int:
    return len(_split_records(data))


# --- files --------------------------------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    """Make a created or removed file's name durable, not only its contents."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock_directory(directory: Path) -> int:
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RuntimeError(
            f"another process spools readings in {directory}: give each collector its own "
            "spool directory"
        ) from None
    return fd
