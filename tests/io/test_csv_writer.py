"""CsvStreamWriter: what a researcher relies on. Rows read back exactly, files readable while
recording, drops counted exactly, sync() means on disk, errors never lost, the loop never blocked.
"""

from __future__ import annotations

import asyncio
import csv
import errno
import logging
import math
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpi_logger.io.csv_writer import CsvStreamWriter
from rpi_logger.io.sinks import SinkError, WriterClosedError

COLS = ["frame_index", "t_mono_ns", "t_wall_unix", "t_device_ns", "exposure_ms", "gain"]


def read_rows(path: Path) -> list[list[str]]:
    """Everything on disk now, as another process would see it (header included)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def video_row(i: int) -> tuple[Any, ...]:
    t = 1_000_000_000 + i * 33_333_333
    return (i, t, 1_700_000_000.123456 + i / 30, t + 17, 8.333333333333334 * (i % 3), None)


class GatedFile:
    """Wraps the writer's file: each write waits for `gate` (stalls the writer thread)."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write(self, s: str) -> int:
        self.entered.set()
        assert self.gate.wait(10), "test never released the gate"
        return self._f.write(s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


class FailingFile:
    """Wraps the writer's file: writes fail like a full disk."""

    def __init__(self, f: Any, exc: BaseException | None = None) -> None:
        self._f = f
        self.exc = exc or OSError(errno.ENOSPC, "No space left on device")

    def write(self, s: str) -> int:
        raise self.exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


async def stall_writer(
    w: CsvStreamWriter, row: tuple[Any, ...] | None = None
) -> tuple[GatedFile, asyncio.Task[None]]:
    """Make the writer thread pick up one row and hang inside its file write."""
    gated = GatedFile(w.sink._file)
    w.sink._file = gated  # type: ignore[assignment]
    w.write_row(video_row(0) if row is None else row)
    pending_sync = asyncio.create_task(w.sync())  # wakes the thread now, not at the next tick
    assert await asyncio.to_thread(gated.entered.wait, 5)
    return gated, pending_sync


# ------------------------------------------------------------------ content


async def test_rows_read_back_equal_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "cam0" / "trial001_cam0_timing.csv"  # parents are created
    rows = [video_row(i) for i in range(2000)]
    async with CsvStreamWriter(path, COLS, flush_interval_s=0.5) as w:
        for r in rows:
            assert w.write_row(r)
        w.write_row({"frame_index": 2000, "t_wall_unix": 0.1 + 0.2})  # by name, gaps empty
        w.write_row([2001, 5, 1e-300, -1, math.inf, 'a,b "c"\nd'])
    got = read_rows(path)
    assert got[0] == COLS
    assert len(got) == 1 + 2002
    for r, line in zip(rows, got[1:], strict=False):
        assert [int(line[0]), int(line[1]), float(line[2]), int(line[3]), float(line[4])] == list(
            r[:5]
        )
        assert line[5] == ""  # None -> empty cell
    assert got[2001] == ["2000", "", "0.30000000000000004", "", "", ""]
    assert got[2002] == ["2001", "5", "1e-300", "-1", "inf", 'a,b "c"\nd']
    assert w.stats().written == 2002 and w.stats().accepted == 2002


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            st.floats(allow_nan=False),
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
            st.none() | st.integers(),
        ),
        max_size=30,
    )
)
def test_any_values_round_trip_exactly(tmp_path: Path, rows: list[tuple[Any, ...]]) -> None:
    path = tmp_path / "prop.csv"
    with CsvStreamWriter(path, ["i", "f", "s", "n"], append=False) as w:
        for r in rows:
            w.write_row(r)
    got = read_rows(path)[1:]
    assert len(got) == len(rows)
    for r, line in zip(rows, got, strict=True):
        assert int(line[0]) == r[0]
        assert float(line[1]) == r[1] and math.copysign(1, float(line[1])) == math.copysign(1, r[1])
        assert line[2] == r[2]  # commas, quotes, newlines and "\r" included
        assert line[3] == ("" if r[3] is None else str(r[3]))


def test_lone_surrogate_does_not_stop_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    with CsvStreamWriter(path, ["note_index", "text"]) as w:
        w.write_row((0, "bad \ud800 text"))
        w.write_row((1, "fine"))
    assert read_rows(path)[1:] == [["0", "bad \\ud800 text"], ["1", "fine"]]


def test_carriage_returns_stay_inside_the_field(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    crlf = "typed in a browser\r\nsecond line"
    cr = "old mac line\rnext"  # no "\n": the csv module alone would leave this unquoted
    with CsvStreamWriter(path, ["note_index", "text", "x"]) as w:
        w.write_row((0, crlf, 1.5))
        w.write_row((1, cr, None))
        w.write_row((2, "plain", None))
    assert read_rows(path)[1:] == [["0", crlf, "1.5"], ["1", cr, ""], ["2", "plain", ""]]


def test_append_keeps_header_and_refuses_a_different_one(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    with CsvStreamWriter(path, ["a", "b"]) as w:
        w.write_row((1, 2))
    with open(path, "a", encoding="utf-8") as f:
        f.write("3,")  # a crash left a partial last line
    with CsvStreamWriter(path, ["a", "b"]) as w:
        w.write_row((5, 6))
    assert read_rows(path) == [["a", "b"], ["1", "2"], ["3", ""], ["5", "6"]]
    with pytest.raises(ValueError, match="does not match"):
        CsvStreamWriter(path, ["a", "c"]).start()
    with CsvStreamWriter(path, ["x"], append=False) as w:
        w.write_row((1,))
    assert read_rows(path) == [["x"], ["1"]]


def test_header_is_on_disk_right_after_start(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    w = CsvStreamWriter(path, COLS)
    w.start()
    try:
        assert read_rows(path) == [COLS]
    finally:
        w.close()


def test_bad_rows_are_rejected_at_the_call(tmp_path: Path) -> None:
    w = CsvStreamWriter(tmp_path / "x.csv", ["a", "b"])
    with pytest.raises(ValueError, match="expected 2"):
        w.write_row((1, 2, 3))
    with pytest.raises(ValueError, match="unknown columns"):
        w.write_row({"a": 1, "zz": 2})
    with pytest.raises(TypeError):
        w.write_row("ab")
    with pytest.raises(ValueError):
        CsvStreamWriter(tmp_path / "y.csv", [])
    with pytest.raises(ValueError):
        CsvStreamWriter(tmp_path / "y.csv", ["a"], overflow="wait")  # type: ignore[arg-type]
    assert w.stats().accepted == 0


def test_caller_may_reuse_its_row_object(tmp_path: Path) -> None:
    path = tmp_path / "reuse.csv"
    with CsvStreamWriter(path, ["a", "b"]) as w:
        row = [0, 0]
        d = {"a": 0, "b": 0}
        for i in range(3):
            row[0] = d["a"] = i
            w.write_row(row)
            w.write_row(d)
    assert [r[0] for r in read_rows(path)[1:]] == ["0", "0", "1", "1", "2", "2"]


# ------------------------------------------------------------------ flushing and sync


@pytest.mark.parametrize(
    "max_queue",
    [
        10_000,  # rows wait in the queue and are written at the periodic tick
        4,  # rows are written at once (queue pressure) and then sit in the file buffer
    ],
)
async def test_rows_visible_to_other_readers_within_flush_interval_while_open(
    tmp_path: Path, max_queue: int
) -> None:
    # Another open() of the file sees exactly what the writer handed to the OS, as another
    # process would: rows still in the writer's memory or buffers are invisible to it.
    interval = 0.2
    path = tmp_path / "live.csv"
    async with CsvStreamWriter(path, COLS, flush_interval_s=interval, max_queue=max_queue) as w:
        for burst in range(2):
            await asyncio.sleep(0.05)
            t0 = time.monotonic()
            for i in range(burst * 10, burst * 10 + 10):
                assert await w.write_row_async(video_row(i))
            # ...then nothing more arrives: the idle writer must still flush on its own.
            while len(read_rows(path)) < 1 + 10 * (burst + 1):
                assert time.monotonic() - t0 < interval + 0.3, "rows not visible in time"
                await asyncio.sleep(0.01)
        assert [int(r[0]) for r in read_rows(path)[1:]] == list(range(20))
        assert w.stats().flushes >= 2 and w.stats().dropped == 0


async def test_sync_returns_only_after_rows_are_flushed_and_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notes.csv"
    fsynced: list[tuple[int, int]] = []  # (file size at fsync, inode)
    real_fsync = os.fsync

    def spy_fsync(fd: int) -> None:
        st_ = os.fstat(fd)
        if stat.S_ISREG(st_.st_mode):
            fsynced.append((st_.st_size, st_.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    # A long flush interval: only sync() can explain the data being on disk.
    async with CsvStreamWriter(path, ["note_index", "text"], flush_interval_s=60) as w:
        for i in range(5):
            w.write_row((i, f"note {i}"))
            await w.sync()
            size = path.stat().st_size
            assert read_rows(path)[-1] == [str(i), f"note {i}"]  # readable right after
            assert fsynced and fsynced[-1] == (size, path.stat().st_ino)  # durable too

        # While the writer thread is stuck in a write, sync() must not report success.
        gated, pending = await stall_writer(w, (98, "stuck"))
        w.write_row((99, "late"))
        s = asyncio.create_task(w.sync())
        await asyncio.sleep(0.2)
        assert not s.done() and not pending.done()
        gated.gate.set()
        await asyncio.wait_for(s, 5)
        await pending
        assert read_rows(path)[-1] == ["99", "late"]
        assert fsynced[-1][0] == path.stat().st_size


def test_flush_blocking_with_fsync_from_a_thread(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    with CsvStreamWriter(path, ["a"], flush_interval_s=60) as w:
        w.write_row((1,))
        w.flush_blocking(5, fsync=True)
        assert read_rows(path) == [["a"], ["1"]]


def test_flush_blocking_puts_rows_on_the_os_and_fsyncs_only_when_asked(tmp_path: Path) -> None:
    """What an encoder thread relies on before video bytes move: the rows so far are readable
    by any other process once `flush_blocking` returns (a long flush interval notwithstanding)."""
    w = CsvStreamWriter(tmp_path / "f.csv", COLS, flush_interval_s=3600, fsync_interval_s=3600)
    w.start()
    try:
        for i in range(5):
            w.write_row(video_row(i))
        fsyncs = w.stats().fsyncs
        w.flush_blocking(5.0)
        assert [int(r[0]) for r in read_rows(w.path)[1:]] == list(range(5))
        assert w.stats().fsyncs == fsyncs  # a flush, no fsync
        w.write_row(video_row(5))
        w.flush_blocking(5.0, fsync=True)
        assert w.stats().fsyncs == fsyncs + 1
        assert len(read_rows(w.path)) == 7
        w.flush_blocking(5.0)  # nothing new: returns at once
    finally:
        w.close()


def test_flush_blocking_raises_at_once_after_a_write_error(tmp_path: Path) -> None:
    w = CsvStreamWriter(tmp_path / "f.csv", COLS, flush_interval_s=3600)
    w.start()
    w.sink._file = FailingFile(w.sink._file)  # type: ignore[assignment]
    w.write_row(video_row(0))
    with pytest.raises(SinkError, match=r"^disk full: "):
        w.flush_blocking(5.0)
    t = time.monotonic()
    with pytest.raises(SinkError, match=r"^disk full: "):
        w.flush_blocking(5.0)
    assert time.monotonic() - t < 0.5
    with pytest.raises(SinkError):
        w.close()


def test_a_producer_blocked_on_a_full_queue_is_released_when_the_writer_fails(
    tmp_path: Path,
) -> None:
    """overflow="block" must not block forever once the writer has failed."""
    w = CsvStreamWriter(tmp_path / "f.csv", COLS, flush_interval_s=3600, max_queue=4)
    w.start()
    gated = GatedFile(FailingFile(w.sink._file))
    w.sink._file = gated  # type: ignore[assignment]
    results: list[bool] = []

    def produce() -> None:
        for i in range(50):
            results.append(w.write_row(video_row(i)))

    producer = threading.Thread(target=produce)
    producer.start()
    assert gated.entered.wait(5)  # the writer thread is inside a write that will fail
    time.sleep(0.2)  # the producer fills the queue and waits for room
    assert producer.is_alive() and len(results) < 50
    gated.gate.set()  # the write fails: the writer stops
    producer.join(5)
    assert not producer.is_alive(), "producer still blocked after the writer failed"
    assert len(results) == 50 and results[-1] is False
    assert w.stats().dropped == 50 - w.stats().written
    with pytest.raises(SinkError):
        w.close(timeout=5)


async def test_blocking_methods_refuse_to_run_on_the_loop(tmp_path: Path) -> None:
    w = CsvStreamWriter(tmp_path / "x.csv", ["a"])
    with pytest.raises(RuntimeError, match="astart"):
        w.start()
    await w.astart()
    with pytest.raises(RuntimeError, match="aclose"):
        w.close()
    with pytest.raises(RuntimeError, match="sync"):
        w.flush_blocking()
    await w.aclose()
    with pytest.raises(WriterClosedError):
        w.write_row((1,))
    await w.sync()  # closed cleanly: already durable


# ------------------------------------------------------------------ overflow


def test_drop_policy_counts_drops_exactly_when_full_before_start(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    w = CsvStreamWriter(path, COLS, max_queue=100, overflow="drop")
    accepted = [w.write_row(video_row(i)) for i in range(137)]
    assert accepted == [True] * 100 + [False] * 37
    stats = w.stats()
    assert (stats.accepted, stats.dropped_overflow, stats.max_queued) == (100, 37, 100)
    w.start()
    w.close()
    assert [int(r[0]) for r in read_rows(path)[1:]] == list(range(100))
    assert w.stats().written == 100 and w.stats().dropped == 37


async def test_drop_policy_counts_drops_exactly_while_writer_is_stalled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "d.csv"
    caplog.set_level(logging.WARNING, logger="rpi_logger.io.csv_writer")
    async with CsvStreamWriter(path, COLS, max_queue=50, overflow="drop") as w:
        gated, pending = await stall_writer(w)  # row 0 is inside the stuck write
        t0 = time.perf_counter()
        results = [w.write_row(video_row(i)) for i in range(1, 81)]
        assert time.perf_counter() - t0 < 0.5  # never waited for the stuck thread
        assert results == [True] * 50 + [False] * 30
        assert w.stats().dropped == 30 and w.stats().queued == 50
        gated.gate.set()
        await pending
    assert [int(r[0]) for r in read_rows(path)[1:]] == list(range(51))
    assert w.stats().written == 51 and w.stats().dropped == 30
    warnings = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not once per row


async def test_block_policy_on_the_loop_drops_instead_of_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rpi_logger.io.csv_writer")
    path = tmp_path / "b.csv"
    async with CsvStreamWriter(path, COLS, max_queue=20, overflow="block") as w:
        gated, pending = await stall_writer(w)
        # Safety net: if write_row blocked, the gate opens after 2 s and the timing fails below
        # (instead of hanging the suite).
        safety = threading.Timer(2.0, gated.gate.set)
        safety.start()
        t0 = time.perf_counter()
        results = [w.write_row(video_row(i)) for i in range(1, 31)]
        elapsed = time.perf_counter() - t0
        assert elapsed < 0.5, f"write_row blocked the event loop for {elapsed:.2f} s"
        assert results == [True] * 20 + [False] * 10
        assert w.stats().dropped == 10
        safety.cancel()
        gated.gate.set()
        await pending
    msgs = [r.getMessage() for r in caplog.records if "event-loop thread" in r.getMessage()]
    assert len(msgs) == 1 and "asubmit" in msgs[0]


async def test_write_row_async_waits_for_room_without_blocking_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    async with CsvStreamWriter(path, COLS, max_queue=10, overflow="block") as w:
        gated, pending = await stall_writer(w)
        for i in range(1, 11):
            assert await w.write_row_async(video_row(i))  # room: immediate
        waiting = asyncio.create_task(w.write_row_async(video_row(11)))
        ticks = 0
        for _ in range(10):  # the loop keeps running other tasks meanwhile
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 10 and not waiting.done()
        gated.gate.set()
        assert await asyncio.wait_for(waiting, 5) is True
        await pending
    assert [int(r[0]) for r in read_rows(path)[1:]] == list(range(12))
    assert w.stats().dropped == 0


def test_block_policy_threads_wait_and_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    n_threads, per_thread = 4, 20_000
    with CsvStreamWriter(path, ["thread", "seq"], max_queue=64, overflow="block") as w:

        def produce(k: int) -> None:
            for j in range(per_thread):
                assert w.write_row((k, j))

        threads = [threading.Thread(target=produce, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    rows = read_rows(path)[1:]
    assert len(rows) == n_threads * per_thread and w.stats().dropped == 0
    for k in range(n_threads):  # each producer's rows in its own order
        assert [int(s) for t, s in rows if int(t) == k] == list(range(per_thread))
    assert w.stats().max_queued <= 64


# ------------------------------------------------------------------ errors


async def test_write_error_surfaces_from_sync_and_aclose(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="rpi_logger.io.csv_writer")
    w = CsvStreamWriter(tmp_path / "e.csv", COLS)
    await w.astart()
    w.sink._file = FailingFile(w.sink._file)  # type: ignore[assignment]
    w.write_row(video_row(0))
    with pytest.raises(SinkError) as info:
        await w.sync()
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ENOSPC
    assert w.write_row(video_row(1)) is False  # stopped writer: counted, not raised
    # Row 0 never reached the file and row 1 was refused: both count as dropped.
    assert w.stats().dropped == 2 and w.stats().dropped_error == 2
    assert "ENOSPC" in repr(w.error) or "No space" in str(w.error)
    with pytest.raises(SinkError):
        await w.sync()
    with pytest.raises(SinkError, match=f"^disk full: {w.path}$"):
        await w.aclose()
    await w.aclose()  # reported once; a second close is quiet
    assert w._worker is not None and w._worker.done
    # Said once, in one line, without a traceback: an expected failure.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"disk full: {w.path}"]
    assert errors[0].exc_info is None


def test_write_error_surfaces_from_close_even_for_unexpected_errors(tmp_path: Path) -> None:
    w = CsvStreamWriter(tmp_path / "e.csv", COLS)
    w.start()
    bug = TypeError("bug in a row formatter")
    w.sink._file = FailingFile(w.sink._file, bug)  # type: ignore[assignment]
    w.write_row(video_row(0))
    with pytest.raises(SinkError) as info:
        w.close()
    assert isinstance(info.value.__cause__, TypeError)
    assert w.error is not None and "bug" in str(w.stats().error)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_at_start_raises_at_once() -> None:
    w = CsvStreamWriter("/dev/full", COLS)
    with pytest.raises(OSError) as info:
        w.start()
    assert info.value.errno == errno.ENOSPC
