"""SinkWriter as a user of any sink sees it: the worker thread and blocking mode write the same
files; simulated slow storage stalls the loop only in blocking mode; a failing sink is reported
once, in its own words, and every item is accounted for."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from rpi_logger.io import sinks
from rpi_logger.io.csv_writer import CsvStreamWriter
from rpi_logger.io.sinks import Sink, SinkError, SinkWriter

COLS = ["i", "t_mono_ns", "x", "text"]


@pytest.fixture(autouse=True)
def _default_modes() -> Iterator[None]:
    """Blocking mode and latency are process-wide: every test leaves them as it found them."""
    yield
    sinks.set_blocking(False)
    sinks.set_latency()


def row(i: int) -> tuple[object, ...]:
    return (i, 1_700_000_000_000_000_000 + i * 33_333_333, i / 7, None if i % 5 else f"n\r\n{i}")


async def record(path: Path) -> None:
    """One writer's life: rows from the loop and from a thread, syncs and flushes between."""
    async with CsvStreamWriter(path, COLS, flush_interval_s=0.05) as w:
        for i in range(300):
            assert w.write_row(row(i))
        await w.sync()

        def from_a_thread() -> None:
            for i in range(300, 600):
                assert w.write_row(row(i))
            w.flush_blocking(5.0)

        await asyncio.to_thread(from_a_thread)
        for i in range(600, 700):
            assert await w.write_row_async(row(i))
        assert w.stats().dropped == 0


async def test_blocking_mode_writes_the_same_file(tmp_path: Path) -> None:
    await record(tmp_path / "threaded.csv")
    sinks.set_blocking(True)
    await record(tmp_path / "blocking.csv")
    threaded = (tmp_path / "threaded.csv").read_bytes()
    assert threaded.count(b"\n") > 700
    assert (tmp_path / "blocking.csv").read_bytes() == threaded


async def ticks_during(coro: object) -> tuple[int, float]:
    """How often a 5 ms ticker ran on the loop while `coro` was awaited, and how long it took."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)  # the ticker is running
    ticks = 0
    t0 = time.monotonic()
    await coro  # type: ignore[misc]
    elapsed = time.monotonic() - t0
    counted = ticks
    stop.set()
    await task
    return counted, elapsed


@pytest.mark.parametrize("blocking", [False, True])
async def test_slow_storage_stalls_the_loop_only_in_blocking_mode(
    tmp_path: Path, blocking: bool
) -> None:
    sinks.set_latency(flush_ms=100, fsync_ms=300)
    sinks.set_blocking(blocking)
    async with CsvStreamWriter(tmp_path / "slow.csv", COLS, flush_interval_s=60) as w:
        w.write_row(row(1))
        ticks, elapsed = await ticks_during(w.sync())
    assert elapsed >= 0.4  # the simulated SD card: a flush and an fsync
    if blocking:
        assert ticks == 0  # the loop stood still for all of it
    else:
        assert ticks >= 10  # the loop kept running (a 2-core CI box gets well over 10 of 80)
    assert (tmp_path / "slow.csv").read_text().count("\n") == 2


def test_environment_switches_are_read_at_import(tmp_path: Path) -> None:
    code = (
        "import asyncio, threading\n"
        "from rpi_logger.io.csv_writer import CsvStreamWriter\n"
        "async def main():\n"
        f"    async with CsvStreamWriter({str(tmp_path / 'e.csv')!r}, ['a']) as w:\n"
        "        w.write_row((1,))\n"
        "        print(threading.active_count(), w._io is w.sink)\n"
        "asyncio.run(main())\n"
    )
    env = {
        **os.environ,
        "RPI_LOGGER_BLOCKING_SINKS": "1",
        "RPI_LOGGER_SINK_LATENCY_MS": "flush=1,fsync=2",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "False"]  # no writer thread; the sink slowed down
    env["RPI_LOGGER_SINK_LATENCY_MS"] = "fsync=slow"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "RPI_LOGGER_SINK_LATENCY_MS='fsync=slow': expected e.g. \"flush=5,fsync=50\"" in (
        done.stderr
    )


class ListSink(Sink[int]):
    """A sink in memory: what was flushed is `kept`; writing item `fail_at` fails."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.path = Path("/virtual/items")
        self.fail_at = fail_at
        self.pending: list[int] = []
        self.kept: list[int] = []
        self.aborted = self.closed = False

    def open(self) -> None:
        pass

    def write(self, batch: Sequence[int]) -> None:
        if self.fail_at is not None and self.fail_at in batch:
            raise SinkError(f"device unplugged: {self.path}")
        self.pending.extend(batch)

    def flush(self) -> None:
        self.kept += self.pending
        self.pending.clear()

    def close(self) -> None:
        self.flush()
        self.closed = True

    def abort(self) -> None:
        self.pending.clear()
        self.aborted = True


@pytest.mark.parametrize("blocking", [False, True])
async def test_any_sink_failing_is_reported_once_and_every_item_is_accounted_for(
    blocking: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    sinks.set_blocking(blocking)
    sink = ListSink(fail_at=150)
    w = SinkWriter(sink, flush_interval_s=60, max_queue=1000)
    await w.astart()
    for i in range(100):
        assert w.submit(i)
    await w.sync()
    assert sink.kept == list(range(100))
    for i in range(100, 400):  # 150 fails: it and all after it are lost or refused
        w.submit(i)
    with pytest.raises(SinkError, match=r"^device unplugged: /virtual/items$"):
        await w.sync()
    assert w.submit(400) is False
    with pytest.raises(SinkError, match=r"^device unplugged"):
        await w.aclose()
    stats = await w.aclose()  # said once
    assert sink.aborted and not sink.closed and sink.kept == list(range(100))
    assert (stats.written, stats.dropped_error, stats.dropped_overflow) == (100, 301, 0)
    assert stats.error == "device unplugged: /virtual/items"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["device unplugged: /virtual/items"]
    assert errors[0].exc_info is None


def test_flush_blocking_waits_for_items_from_other_threads(tmp_path: Path) -> None:
    """What a video writer relies on: after flush_blocking, every row submitted before (by
    any thread) is readable by another process, though the periodic flush is an hour away."""
    path = tmp_path / "rows.csv"
    with CsvStreamWriter(path, COLS, flush_interval_s=3600, fsync_interval_s=None) as w:
        producers = [
            threading.Thread(
                target=lambda k=k: [w.write_row(row(k * 1000 + i)) for i in range(500)]
            )
            for k in range(3)
        ]
        for t in producers:
            t.start()
        for t in producers:
            t.join()
        w.flush_blocking(10.0)
        lines = path.read_text(encoding="utf-8").count("\n")
        assert lines >= 1 + 1500  # the header, every row (a few hold an escaped newline)
        assert w.stats().fsyncs == 0
