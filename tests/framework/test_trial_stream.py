"""A trial stream keeps exactly the trial's samples, counts every loss by its cause, and ends
with the file's manifest record, whatever the sink: here a plain CSV, read back as a user would."""

from __future__ import annotations

import asyncio
import csv
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from rpi_logger.framework.base import FileRecord
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.framework.trial_stream import DROP_CAUSES, TrialStream
from rpi_logger.io.sinks import CsvSink, SinkError

MS = 1_000_000


class Tick(NamedTuple):
    """A sample as a CSV sink takes it: a row that carries its own time and sequence."""

    t_mono_ns: int
    sequence: int


def _stream(window: TrialWindow, sink: CsvSink, **kwargs: Any) -> TrialStream[Tick]:
    record = FileRecord("dev", "csv", sink.path)
    kwargs.setdefault("max_items", 100)
    return TrialStream(
        window, sink, record, name="ticks", sequence_of=lambda s: s.sequence, **kwargs
    )


def _rows(path: Path) -> list[tuple[int, int]]:
    with path.open(newline="") as f:
        return [(int(r["t_mono_ns"]), int(r["sequence"])) for r in csv.DictReader(f)]


def _ticks(times: Sequence[int], first_seq: int = 0) -> list[Tick]:
    return [Tick(t, first_seq + i) for i, t in enumerate(times)]


async def test_keeps_exactly_the_window_and_announces_its_file(tmp_path: Path) -> None:
    window = TrialWindow(1, 100 * MS)
    sink = CsvSink(tmp_path / "t.csv", Tick._fields)
    stream = _stream(window, sink)
    announced: list[FileRecord] = []

    async def announce(record: FileRecord) -> None:
        announced.append(record)

    await stream.open(announce)
    assert announced == [stream.record]
    for tick in _ticks(range(0, 300 * MS, 10 * MS)):
        if tick.t_mono_ns == 200 * MS:
            window.stop_ns = 200 * MS  # the stop becomes known while samples flow
        stream.offer(tick)
    record = await stream.close()
    assert _rows(sink.path) == [(t, t // (10 * MS)) for t in range(100 * MS, 200 * MS, 10 * MS)]
    assert record.frames == 10 and record.dropped == 0
    assert record.extra["dropped_by_cause"] == dict.fromkeys(DROP_CAUSES, 0)
    assert "status" not in record.extra and "error" not in record.extra


class _HeldCsv(CsvSink):
    """A CSV sink whose writes wait until the test lets them go (a slow disk)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, Tick._fields)
        self.busy, self.release = threading.Event(), threading.Event()

    def write(self, batch: Sequence[Any]) -> None:
        self.busy.set()
        assert self.release.wait(10)
        super().write(batch)


async def test_samples_queued_past_a_late_stop_never_reach_the_file(tmp_path: Path) -> None:
    window = TrialWindow(1, 0)
    sink = _HeldCsv(tmp_path / "t.csv")
    stream = _stream(window, sink)
    await stream.open()
    ticks = _ticks(range(MS, 21 * MS, MS))
    stream.offer(ticks[0])
    assert await asyncio.to_thread(sink.busy.wait, 10)  # the writer holds the first one...
    for tick in ticks[1:]:  # ...while the rest queue up, then the stop turns out to be earlier
        assert stream.offer(tick)
    window.stop_ns = ticks[8].t_mono_ns
    sink.release.set()
    record = await stream.close()
    assert _rows(sink.path) == [(t.t_mono_ns, t.sequence) for t in ticks[:8]]
    assert record.frames == 8 and record.dropped == 0  # discarded at the stop: not drops


async def test_every_loss_is_counted_by_its_cause(tmp_path: Path) -> None:
    window = TrialWindow(1, 0)
    sink = _HeldCsv(tmp_path / "t.csv")
    stream = _stream(window, sink, max_items=3)
    await stream.open()
    stream.offer(Tick(1 * MS, 0))
    assert await asyncio.to_thread(sink.busy.wait, 10)
    stream.offer(Tick(2 * MS, 1))
    stream.offer(Tick(2 * MS, 2))  # the same time again: out of order
    stream.offer(Tick(1 * MS, 3))  # back in time
    stream.lost(3 * MS, 2)  # the hand-off to the loop lost sequence 2: not a device gap
    stream.offer(Tick(4 * MS, 5))  # the device skipped sequence 3 and 4
    stream.lost(-5 * MS, 99)  # lost before the trial: none of its business
    for i in range(6, 10):  # the writer's queue (3) holds 1 and 5 already: room for one more
        stream.offer(Tick(i * MS, i))
    status = stream.status()
    sink.release.set()
    record = await stream.close()
    expected = {
        "device_sequence_gap": 2,
        "capture_overflow": 1,
        "queue_overflow": 3,
        "timestamp": 2,
        "encoder_error": 0,
    }
    assert record.extra["dropped_by_cause"] == expected
    assert record.dropped == 8 == status["dropped"]
    assert status["dropped_capture_overflow"] == 1 and status["dropped_device_gap"] == 2
    assert _rows(sink.path) == [(1 * MS, 0), (2 * MS, 1), (4 * MS, 5), (6 * MS, 6)]
    assert record.frames == 4


class _FullCsv(CsvSink):
    """A CSV sink on a disk that fills up after `rows` rows."""

    def __init__(self, path: Path, rows: int) -> None:
        super().__init__(path, Tick._fields)
        self.left = rows

    def write(self, batch: Sequence[Any]) -> None:
        if len(batch) > self.left:
            raise OSError(28, "No space left on device")
        self.left -= len(batch)
        super().write(batch)


async def test_a_failed_sink_ends_as_an_interrupted_record_never_an_exception(
    tmp_path: Path,
) -> None:
    window = TrialWindow(1, 0)
    sink = _FullCsv(tmp_path / "t.csv", rows=0)
    stream = _stream(window, sink)
    await stream.open()
    stream.offer(Tick(MS, 0))
    async with asyncio.timeout(10):  # the writer fails on the first row...
        while True:
            if stream.status()["recording_error"]:
                break
            await asyncio.sleep(0.01)
    for i in range(1, 5):  # ...and refuses the rest at once
        assert not stream.offer(Tick((i + 1) * MS, i))
    record = await stream.close()
    assert record.extra["status"] == "interrupted"
    assert record.extra["error"] == f"disk full: {sink.path}"
    assert record.extra["dropped_by_cause"]["encoder_error"] == 5 == record.dropped
    assert _rows(sink.path) == []  # the header, and no torn row


async def test_a_file_that_cannot_be_created_fails_open_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    path = tmp_path / "f" / "t.csv"
    stream = _stream(TrialWindow(1, 0), CsvSink(path, Tick._fields))
    announced: list[FileRecord] = []

    async def announce(record: FileRecord) -> None:
        announced.append(record)

    with pytest.raises(SinkError) as info:
        await stream.open(announce)
    assert str(info.value).startswith(f"writing {path} failed: ")
    assert "\n" not in str(info.value) and not announced


class _Piped(CsvSink):
    """A sink with a loop side (like ffmpeg's process) that fails when it ends."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, Tick._fields)
        self.calls: list[str] = []

    async def astart(self) -> None:
        self.calls.append("astart")

    def open(self) -> None:
        self.calls.append("open")
        super().open()

    def close(self) -> None:
        self.calls.append("close")
        super().close()

    async def astop(self) -> None:
        self.calls.append("astop")
        raise SinkError("helper exited with status 1: boom")


async def test_a_sinks_loop_side_brackets_it_and_its_failure_is_recorded(tmp_path: Path) -> None:
    sink = _Piped(tmp_path / "t.csv")
    stream = _stream(TrialWindow(1, 0), sink)
    await stream.open()
    stream.offer(Tick(MS, 0))
    record = await stream.close()
    assert sink.calls == ["astart", "open", "close", "astop"]
    assert record.extra["status"] == "interrupted"
    assert record.extra["error"] == "helper exited with status 1: boom"
    assert record.frames == 1 and _rows(sink.path) == [(MS, 0)]


async def test_a_gap_is_clipped_to_the_window_and_listed_by_verify(tmp_path: Path) -> None:
    from rpi_logger.tools.verify import WARNING, Report, _check_gaps

    window = TrialWindow(1, 100 * MS)
    sink = CsvSink(tmp_path / "t.csv", Tick._fields)
    stream = _stream(window, sink)
    await stream.open()
    stream.gap(50 * MS, 150 * MS, missing=10, reason="disconnected")  # starts before the window
    stream.gap(10 * MS, 90 * MS)  # wholly before it: not this trial's
    window.stop_ns = 300 * MS
    stream.gap(250 * MS, 400 * MS, reason="stalled")  # runs past the stop
    record = await stream.close()
    assert record.extra["gaps"] == [
        {
            "start_mono_ns": 100 * MS,
            "end_mono_ns": 150 * MS,
            "samples_missing": 10,
            "reason": "disconnected",
        },
        {
            "start_mono_ns": 250 * MS,
            "end_mono_ns": 300 * MS,
            "samples_missing": None,
            "reason": "stalled",
        },
    ]
    report = Report(tmp_path)
    _check_gaps(report, "t.csv", record.extra["gaps"], window.start_ns)
    _check_gaps(report, "t.csv", [{"start_mono_ns": "x"}], window.start_ns)
    messages = [(f.level, f.message) for f in report.findings]
    assert messages[0] == (
        WARNING,
        "gap (disconnected) from 0.000 s to 0.050 s of the trial (0.050 s, 10 samples missing)",
    )
    assert messages[1] == (WARNING, "gap (stalled) from 0.150 s to 0.200 s of the trial (0.050 s)")
    assert messages[2][0] == "error" and "malformed gap" in messages[2][1]
