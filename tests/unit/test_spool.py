"""The on-disk spool: an outage of the time-series store loses no readings, delivers them in
order once it is back, and survives a crash of the collector."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from collector.readings import MeterReading, StoreUnavailable
from collector.spool import REJECTED, SpoolingStore, decode_batch, encode_batch

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


class MemoryStore:
    """A ReadingStore of our own in a list: it can be told to be down, to go down after some
    writes, or to refuse a meter's readings. Like the real stores, it keeps one reading per
    (meter, at), so a batch sent twice is stored once."""

    def __init__(self) -> None:
        self.batches: list[list[MeterReading]] = []
        self.down = False
        self.down_after: int | None = None
        self.refused_meters: set[int] = set()
        self.attempts = 0
        self.archived: list[datetime] = []

    def write(self, readings: Sequence[MeterReading]) -> None:
        self.attempts += 1
        if self.down or (self.down_after is not None and len(self.batches) >= self.down_after):
            raise StoreUnavailable("the memory store is down")
        if any(r.meter_id in self.refused_meters for r in readings):
            raise ValueError("the memory store refuses these readings")
        self.batches.append(list(readings))

    @property
    def stored(self) -> list[MeterReading]:
        kept: dict[tuple[int, datetime], MeterReading] = {}
        for batch in self.batches:
            for reading in batch:
                kept.setdefault((reading.meter_id, reading.at), reading)
        return list(kept.values())

    def readings(self, meter_id: int, start: datetime, end: datetime) -> list[MeterReading]:
        return sorted(
            (r for r in self.stored if r.meter_id == meter_id and start <= r.at < end),
            key=lambda r: r.at,
        )

    def daily_energy(
        self, meter_ids: Sequence[int], start_on: date, end_on: date, tz: ZoneInfo
    ) -> dict[tuple[int, date], Decimal]:
        return {(meter_id, start_on): Decimal(len(self.stored)) for meter_id in meter_ids}

    def daily_energy_by(
        self,
        group: str,
        start_on: date,
        end_on: date,
        tz: ZoneInfo,
        *,
        meters: Mapping[int, Mapping[str, str]] | None = None,
    ) -> dict[tuple[str, date], Decimal]:
        return {(group, start_on): Decimal(len(self.stored))}

    def archive(self, before: datetime, tz: ZoneInfo) -> int:
        self.down_check()
        self.archived.append(before)
        return len(self.stored)

    def down_check(self) -> None:
        if self.down:
            raise StoreUnavailable("the memory store is down")

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def batch(number: int, size: int = 3) -> list[MeterReading]:
    """A batch of readings of meters 1..size at minute `number`."""
    return [
        MeterReading(
            meter_id=m,
            at=T0 + timedelta(minutes=number),
            energy_kwh=Decimal(number * 10 + m).scaleb(-2),
            tags={"unit": f"A1{m:02d}", "building": "Building A 一号楼"},
        )
        for m in range(1, size + 1)
    ]


@pytest.fixture
def inner() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def spool(tmp_path: Path, inner: MemoryStore, clock: Clock) -> Iterator[SpoolingStore]:
    store = SpoolingStore(inner, tmp_path / "spool", retry_after_s=5, clock=clock)
    yield store
    store.close()


def segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.spool") if p.name != REJECTED)


def test_writes_go_straight_to_the_store_while_it_is_up(
    spool: SpoolingStore, inner: MemoryStore
) -> None:
    spool.write(batch(1))
    spool.write(batch(2))

    assert inner.batches == [batch(1), batch(2)]
    assert spool.pending() == 0 and segments(spool.directory) == []


def test_an_outage_spools_and_recovery_delivers_in_order(
    spool: SpoolingStore, inner: MemoryStore, clock: Clock
) -> None:
    spool.write(batch(1))
    inner.down = True
    for number in (2, 3, 4):
        spool.write(batch(number))  # never raises for an outage

    assert spool.pending() == 3
    assert inner.batches == [batch(1)]
    assert len(segments(spool.directory)) == 1

    inner.down = False
    clock.now += 5
    spool.write(batch(5))  # older batches first, then this one

    assert inner.batches == [batch(n) for n in (1, 2, 3, 4, 5)]
    assert spool.pending() == 0 and segments(spool.directory) == []


def test_the_store_is_left_alone_until_the_retry_interval_passes(
    spool: SpoolingStore, inner: MemoryStore, clock: Clock
) -> None:
    inner.down = True
    spool.write(batch(1))
    spool.write(batch(2))
    assert inner.attempts == 1  # the second write went straight to disk
    assert spool.flush() == 0 and inner.attempts == 1

    clock.now += 5
    spool.write(batch(3))  # tries again, fails again: next try after 10 s
    assert inner.attempts == 2
    clock.now += 9
    assert spool.flush() == 0 and inner.attempts == 2

    inner.down = False
    assert spool.flush(force=True) == 3
    assert inner.batches == [batch(1), batch(2), batch(3)]


def test_flush_delivers_what_waits_without_new_writes(
    spool: SpoolingStore, inner: MemoryStore, clock: Clock
) -> None:
    inner.down = True
    spool.write(batch(1))
    spool.write(batch(2))
    inner.down = False
    clock.now += 5

    assert spool.flush() == 2
    assert spool.flush() == 0
    assert inner.batches == [batch(1), batch(2)]
    assert spool.pending() == 0


def test_a_flush_cut_short_by_a_new_outage_resumes_where_it_stopped(
    spool: SpoolingStore, inner: MemoryStore, clock: Clock
) -> None:
    inner.down = True
    for number in range(1, 6):
        spool.write(batch(number))
    inner.down, inner.down_after = False, 2

    assert spool.flush(force=True) == 2
    assert spool.pending() == 3

    inner.down_after = None
    assert spool.flush(force=True) == 3
    assert inner.batches == [batch(n) for n in range(1, 6)]  # each once, in order


def test_segments_roll_over_and_each_goes_once_delivered(
    tmp_path: Path, inner: MemoryStore
) -> None:
    spool = SpoolingStore(inner, tmp_path, segment_bytes=1)  # one batch per segment
    inner.down = True
    for number in range(1, 4):
        spool.write(batch(number))
    assert len(segments(tmp_path)) == 3

    inner.down, inner.down_after = False, 2
    spool.flush(force=True)
    assert len(segments(tmp_path)) == 1

    inner.down_after = None
    spool.flush(force=True)
    assert segments(tmp_path) == [] and inner.batches == [batch(1), batch(2), batch(3)]
    spool.close()


CRASHING_COLLECTOR = """
import os, signal, sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from collector.readings import MeterReading, StoreUnavailable
from collector.spool import SpoolingStore

class Down:
    def write(self, readings):
        raise StoreUnavailable("down")
    def close(self):
        pass

spool = SpoolingStore(Down(), sys.argv[1])
t0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
for number in range(1, 6):
    spool.write([MeterReading(m, t0 + timedelta(minutes=number),
                              Decimal(number * 10 + m).scaleb(-2),
                              tags={"unit": f"A1{m:02d}", "building": "Building A 一号楼"})
                 for m in range(1, 4)])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_batches_spooled_before_a_crash_are_delivered_after_a_restart(
    tmp_path: Path, inner: MemoryStore
) -> None:
    directory = tmp_path / "spool"
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_COLLECTOR, str(directory)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=60,
    )
    assert child.returncode == -9, child.stderr.decode()

    restarted = SpoolingStore(inner, directory)
    assert restarted.pending() == 5
    assert restarted.flush() == 5
    restarted.close()

    assert inner.batches == [batch(n) for n in range(1, 6)]


class Crash(BaseException):
    """The process dying at this point."""


def test_a_crash_between_delivery_and_removal_sends_again_but_stores_once(
    tmp_path: Path, inner: MemoryStore
) -> None:
    spool = SpoolingStore(inner, tmp_path)
    inner.down = True
    spool.write(batch(1))
    spool.write(batch(2))
    inner.down = False
    delivered = inner.write

    def deliver_then_crash(readings: Sequence[MeterReading]) -> None:
        delivered(readings)
        raise Crash

    inner.write = deliver_then_crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        spool.flush(force=True)
    spool.close()  # as the OS would, for the process that died
    inner.write = delivered  # type: ignore[method-assign]

    restarted = SpoolingStore(inner, tmp_path)
    assert restarted.flush() == 2
    restarted.close()

    assert inner.batches == [batch(1), batch(1), batch(2)]  # batch 1 sent again...
    assert inner.stored == batch(1) + batch(2)  # ...and stored once


def test_a_torn_last_record_is_skipped_and_the_rest_delivered(
    tmp_path: Path, inner: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    spool = SpoolingStore(inner, tmp_path)
    inner.down = True
    for number in (1, 2, 3):
        spool.write(batch(number))
    spool.close()
    (segment,) = segments(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) - 40])  # the crash hit while batch 3 was appended

    restarted = SpoolingStore(inner, tmp_path)
    restarted.write(batch(4))  # still down: spooled in a new segment, never after the torn line
    assert len(segments(tmp_path)) == 2
    inner.down = False
    with caplog.at_level(logging.ERROR, logger="collector.spool"):
        assert restarted.flush(force=True) == 3
    restarted.close()

    assert inner.batches == [batch(1), batch(2), batch(4)]
    assert restarted.pending() == 0 and segments(tmp_path) == []
    assert "skipping record 3" in caplog.text and "torn or damaged" in caplog.text


def test_a_damaged_record_in_the_middle_is_skipped(
    tmp_path: Path, inner: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    spool = SpoolingStore(inner, tmp_path)
    inner.down = True
    for number in (1, 2, 3):
        spool.write(batch(number))
    spool.close()
    (segment,) = segments(tmp_path)
    lines = segment.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"A102", b"A1O2")  # one flipped character
    segment.write_bytes(b"\n".join(lines))

    inner.down = False
    restarted = SpoolingStore(inner, tmp_path)
    with caplog.at_level(logging.ERROR, logger="collector.spool"):
        assert restarted.flush() == 2
    restarted.close()

    assert inner.batches == [batch(1), batch(3)]
    assert "skipping record 2" in caplog.text


def test_a_batch_the_store_refuses_is_set_aside_and_the_rest_delivered(
    spool: SpoolingStore, inner: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    inner.down = True
    spool.write(batch(1))
    spool.write(batch(2, size=5))  # meter 5's readings will be refused
    spool.write(batch(3))
    inner.down, inner.refused_meters = False, {5}

    with caplog.at_level(logging.ERROR, logger="collector.spool"):
        assert spool.flush(force=True) == 2

    assert inner.batches == [batch(1), batch(3)]
    assert spool.pending() == 0
    (rejected,) = (spool.directory / REJECTED).read_bytes().splitlines()
    assert decode_batch(rejected) == batch(2, size=5)
    assert "refused record 2" in caplog.text


def test_readings_the_store_refuses_outright_are_not_spooled(
    spool: SpoolingStore, inner: MemoryStore
) -> None:
    inner.refused_meters = {5}

    with pytest.raises(ValueError, match="refuses"):
        spool.write(batch(1, size=5))

    assert spool.pending() == 0


def test_a_second_spool_on_the_same_directory_is_refused(
    spool: SpoolingStore, inner: MemoryStore
) -> None:
    with pytest.raises(RuntimeError, match="its own spool directory"):
        SpoolingStore(inner, spool.directory)


def test_reads_go_to_the_store_behind_and_show_spooled_readings_once_flushed(
    spool: SpoolingStore, inner: MemoryStore
) -> None:
    inner.down = True
    spool.write(batch(1))
    assert spool.readings(1, T0, T0 + timedelta(hours=1)) == []

    inner.down = False
    spool.flush(force=True)

    assert spool.readings(1, T0, T0 + timedelta(hours=1)) == [batch(1)[0]]
    tz = ZoneInfo("Asia/Shanghai")
    assert spool.daily_energy([1], date(2026, 11, 2), date(2026, 11, 2), tz) == {
        (1, date(2026, 11, 2)): 3
    }
    assert spool.daily_energy_by("unit", date(2026, 11, 2), date(2026, 11, 2), tz) == {
        ("unit", date(2026, 11, 2)): 3
    }


def test_archiving_delivers_the_spool_first_and_waits_while_the_store_is_down(
    spool: SpoolingStore, inner: MemoryStore
) -> None:
    tz = ZoneInfo("Asia/Shanghai")
    inner.down = True
    spool.write(batch(1))
    with pytest.raises(StoreUnavailable):
        spool.archive(T0, tz)
    assert inner.archived == []

    inner.down = False
    assert spool.archive(T0, tz) == 3

    assert inner.batches == [batch(1)] and inner.archived == [T0]


def test_writers_on_several_threads_lose_nothing_through_outages(
    spool: SpoolingStore, inner: MemoryStore
) -> None:
    spool.retry_after_s = spool.max_retry_after_s = 0

    def writer(thread: int) -> None:
        for number in range(50):
            spool.write(batch(thread * 1000 + number, size=1))

    def flapper() -> None:
        for k in range(200):
            inner.down = k % 3 == 0

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    threads.append(threading.Thread(target=flapper))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    inner.down = False
    spool.flush(force=True)

    delivered = [b[0].at for b in inner.batches]
    assert sorted(delivered) == sorted(
        T0 + timedelta(minutes=t * 1000 + n) for t in range(4) for n in range(50)
    )
    for t in range(4):  # each writer's batches arrive in the order it wrote them
        mine = [at for at in delivered if (at - T0) // timedelta(minutes=1000) == t]
        assert mine == sorted(mine)


def test_a_batch_comes_back_from_disk_exactly_as_written() -> None:
    reading = MeterReading(
        meter_id=7,
        at=datetime(2026, 11, 2, 2, 0, 0, 123456, tzinfo=UTC),
        energy_kwh=Decimal("98765.4300"),
        power_kw=Decimal("3.4567"),
        voltage_v=Decimal("229.9"),
        current_a=None,
        relay_closed=False,
        band_energy_kwh={"peak": Decimal("1.25"), "valley": Decimal("0")},
        tags={"unit": 'A 101,"east"', "building": "一号楼\n"},
    )
    line = encode_batch([reading, MeterReading(8, T0, Decimal("1"))])

    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = decode_batch(line.rstrip(b"\n"))
    assert back == [reading, MeterReading(8, T0, Decimal("1"))]
    assert str(back[0].energy_kwh) == "98765.4300"
