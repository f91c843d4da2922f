"""Cameras under hostile conditions: encoders that cannot start or die, a full disk, a module
restarted mid-trial, a stop that arrives late, a capture hand-off that overflows.

Every check reads back what a researcher gets: the manifest record, the decoded video, the rows.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import run_cli
from tests.io.small_fs import fill, small_tmpfs
from tests.modules.cameras.module_process import assert_healthy, running_module

from rpi_logger.core.supervisor import ModuleError
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.modules.cameras.frames import CameraInfo, FrameSource
from rpi_logger.modules.cameras.pipeline import CameraPipeline
from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource
from rpi_logger.samples import Frame
from rpi_logger.simulation.barcode import ms_of, read_video_barcodes

PERIOD_NS = 33_333_333


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _window(trial: int, start_ns: int, origin_ns: int | None = None, part: int = 1) -> TrialWindow:
    """A trial window; with `origin_ns`, the window of a module that rejoined mid-trial."""
    if origin_ns is None:
        return TrialWindow(trial, start_ns, part=part)
    return TrialWindow(trial, start_ns, part=part, origin_ns=origin_ns)


async def _synthetic(width: int = 640, height: int = 480) -> SyntheticSource:
    src = SyntheticSource(width=width, height=height, fps=30)
    await asyncio.to_thread(src.prepare)
    return src


async def _feed(pipeline: CameraPipeline, frames: list[Frame]) -> None:
    for i, f in enumerate(frames):
        pipeline._on_sample(f)
        if i % 4 == 3:
            await asyncio.sleep(0.001)  # like a real camera: the encoder keeps up


# ------------------------------------------------------------------ B: encoders that fail


def test_unknown_ffmpeg_codec_fails_at_configure_in_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "record",
        "--simulate",
        "--modules",
        "cameras",
        "--duration",
        "2",
        "--data-dir",
        str(tmp_path),
        "--set",
        "cameras.encoder=ffmpeg",
        "--set",
        "cameras.ffmpeg_codec=nonexistent_codec",
    )
    assert result.returncode != 0
    assert "ffmpeg has no encoder 'nonexistent_codec'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("session_*/Cameras/**/*.mp4"))


def test_encoder_dying_at_run_time_marks_the_file_interrupted(tmp_path: Path) -> None:
    """h264_nvenc is listed by ffmpeg but cannot open without an NVIDIA GPU: ffmpeg exits."""
    result = run_cli(
        "record",
        "--simulate",
        "--modules",
        "cameras",
        "--duration",
        "2",
        "--data-dir",
        str(tmp_path),
        "--set",
        "cameras.synthetic_count=1",
        "--set",
        "cameras.encoder=ffmpeg",
        "--set",
        "cameras.ffmpeg_codec=h264_nvenc",
    )
    if "ffmpeg has no encoder 'h264_nvenc'" in result.stderr:
        pytest.skip("this ffmpeg has no h264_nvenc to fail with")
    session = Path(result.stdout.strip().splitlines()[-1])
    manifest = json.loads((session / "session.json").read_text())
    [trial] = manifest["trials"]
    [entry] = trial["files"]
    if not entry.get("error") and entry["frames"] >= 30:
        pytest.skip("h264_nvenc works on this machine")
    assert result.returncode == 1, result.stderr
    assert trial["status"] == "interrupted"
    assert entry["status"] == "interrupted"
    assert entry["error"].startswith("ffmpeg exited with status")
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ D: timeline and stop


@pytest.mark.parametrize("kind", ["pyav", "ffmpeg"])
async def test_rejoined_part_is_timed_from_the_trial_origin(tmp_path: Path, kind: str) -> None:
    src = await _synthetic()
    pipeline = CameraPipeline(src, {"encoder": kind, "queue_size": 200})
    pipeline._opened.set()  # as capture() does once the source is open
    origin = time.monotonic_ns() - 6_000_000_000  # the trial began 6 s ago
    start = origin + 4_321_000_000  # this part (after a restart) keeps frames from here on
    window = _window(1, start, origin, part=2)
    await pipeline.start_trial(window, tmp_path)
    frames = [src.make_frame(k, start + 1_000_000 + k * PERIOD_NS) for k in range(45)]
    await _feed(pipeline, frames)
    window.stop_ns = frames[-1].t_mono_ns + 1
    record = await pipeline.stop_trial()
    assert record is not None and record.extra.get("status") is None, record.extra
    assert record.path.name == "trial001_part2_synthetic0.mp4"
    scan = read_video_barcodes(record.path)
    assert scan.error is None and len(scan.frames) == 45
    for decoded, frame in zip(scan.frames, frames, strict=True):
        assert decoded.ms == ms_of(frame.t_mono_ns)
        # On the trial's timeline: lines up with part 1 and with every other module.
        assert abs(decoded.pts_s - (frame.t_mono_ns - origin) / 1e9) <= 0.001


async def test_frames_queued_before_a_late_stop_are_not_written(tmp_path: Path) -> None:
    """The stop instant becomes known after frames captured after it were queued."""
    src = await _synthetic()
    pipeline = CameraPipeline(src, {"encoder": "pyav", "queue_size": 200})
    pipeline._opened.set()
    start = time.monotonic_ns()
    window = _window(1, start)
    await pipeline.start_trial(window, tmp_path)
    stream = pipeline._stream
    assert stream is not None
    sink = stream.sink
    busy, release = threading.Event(), threading.Event()
    real_write = sink.write

    def slow_write(batch: Any) -> None:  # the writer thread is busy (a slow machine)
        busy.set()
        release.wait(10)
        real_write(batch)

    sink.write = slow_write  # type: ignore[method-assign]
    frames = [src.make_frame(k, start + 1_000_000 + k * PERIOD_NS) for k in range(20)]
    pipeline._on_sample(frames[0])
    assert await asyncio.to_thread(busy.wait, 10)  # the writer holds frame 0...
    for f in frames[1:]:  # ...while the rest queue up
        pipeline._on_sample(f)
    stop = frames[8].t_mono_ns  # the trial stopped before frame 8 was captured
    window.stop_ns = stop
    pipeline._on_sample(src.make_frame(20, start + 1_000_000 + 20 * PERIOD_NS))
    release.set()
    record = await pipeline.stop_trial()
    assert record is not None and record.timing is not None
    scan = read_video_barcodes(record.path)
    assert [d.ms for d in scan.frames] == [ms_of(f.t_mono_ns) for f in frames[:8]]
    rows = _rows(record.timing)
    assert [int(r["t_mono_ns"]) for r in rows] == [f.t_mono_ns for f in frames[:8]]
    assert all(int(r["t_mono_ns"]) < stop for r in rows)
    assert record.frames == 8 and record.dropped == 0


@pytest.mark.parametrize("kind", ["pyav", "ffmpeg"])
async def test_a_stop_before_the_start_is_an_empty_window_closed_cleanly(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    src = await _synthetic()
    pipeline = CameraPipeline(src, {"encoder": kind, "queue_size": 200})
    pipeline._opened.set()
    origin = time.monotonic_ns() - 3_000_000_000
    start = origin + 2_000_000_000
    window = _window(1, start, origin, part=2)
    await pipeline.start_trial(window, tmp_path)
    window.stop_ns = start - 500_000_000  # the trial stopped while this part was starting
    await _feed(pipeline, [src.make_frame(k, start + k * PERIOD_NS) for k in range(10)])
    record = await asyncio.wait_for(pipeline.stop_trial(), 30)
    assert record is not None and record.timing is not None
    assert record.frames == 0 and record.dropped == 0
    assert "status" not in record.extra and "error" not in record.extra
    assert _rows(record.timing) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


# ------------------------------------------------------------------ E: capture overflow


class _HandOffSource(FrameSource):
    """A FrameSource whose hand-off the test drives directly (the device thread idles)."""

    backend = "synthetic"

    def __init__(self) -> None:
        super().__init__(
            CameraInfo("handoff", "handoff", 640, 480, 30.0, "synthetic", True), queue_size=2
        )

    def _device_open(self) -> CameraInfo:
        return self.info

    def _device_loop(self) -> None:
        self._stop.wait()

    def _device_close(self) -> None:
        return None


async def test_capture_hand_off_drops_are_counted_not_taken_for_device_gaps(
    tmp_path: Path,
) -> None:
    source = _HandOffSource()
    await source.open()
    synth = await _synthetic()
    pipeline = CameraPipeline(source, {"encoder": "pyav"})
    pipeline._opened.set()
    start = time.monotonic_ns()
    await pipeline.start_trial(_window(1, start), tmp_path)
    frames = [synth.make_frame(k, start + 1_000_000 + k * PERIOD_NS) for k in range(12)]
    delivered = aiter(source.frames())

    async def consume(n: int) -> None:
        for _ in range(n):
            pipeline._on_sample(await anext(delivered))

    for f in frames[:10]:  # the loop is busy: the hand-off holds 2, loses 8 (seq 2..9)
        assert source._emit(f)
    assert source.stats.dropped_queue_overflow == 8
    await consume(2)
    for f in frames[10:]:  # the next frame through tells the loop which ones were lost
        source._emit(f)
        await consume(1)
    status = pipeline.status()
    assert status["dropped_capture_overflow"] == 8 and status["dropped"] == 8
    assert status["dropped_device_gap"] == 0
    record = await pipeline.stop_trial()
    await source.close()
    assert record is not None
    assert record.frames == 4
    causes = record.extra["dropped_by_cause"]
    assert causes["capture_overflow"] == 8
    assert causes["device_sequence_gap"] == 0
    assert record.dropped == 8


def _stall(seconds: float) -> None:
    """Block the calling thread: called from the loop, a stalled event loop."""
    time.sleep(seconds)


async def test_a_stalled_loop_loses_frames_in_the_hand_off_not_at_the_camera(
    tmp_path: Path,
) -> None:
    """The loop stops for half a second: the camera thread keeps its pace, the full hand-off
    loses the frames the loop did not take, and they are counted as capture overflow (in the
    status and in the manifest record), not as frames the camera skipped."""
    src = SyntheticSource(width=640, height=480, fps=30, queue_size=2)
    pipeline = CameraPipeline(src, {"encoder": "pyav"})
    async with asyncio.TaskGroup() as tg:
        capture = tg.create_task(pipeline.capture())
        await pipeline.wait_open()
        window = _window(1, time.monotonic_ns())
        await pipeline.start_trial(window, tmp_path)
        await asyncio.sleep(0.5)
        _stall(0.5)
        await asyncio.sleep(0.5)
        status = pipeline.status()
        window.stop_ns = time.monotonic_ns()
        record = await pipeline.stop_trial()
        capture.cancel()
    assert record is not None and record.timing is not None
    causes = record.extra["dropped_by_cause"]
    assert causes["capture_overflow"] >= 8, causes  # ~15 slots in 0.5 s, the hand-off holds 2
    assert causes["device_sequence_gap"] <= 2, causes  # the camera's thread was never stalled
    assert record.dropped == sum(causes.values())
    assert status["dropped_capture_overflow"] >= 8
    assert status["dropped_capture_overflow"] <= causes["capture_overflow"]
    # What is in the file, plus what was lost, is every capture slot of the trial.
    counters = [d.counter for d in read_video_barcodes(record.path).frames]
    assert len(counters) == record.frames == len(_rows(record.timing))
    holes = counters[-1] - counters[0] + 1 - len(counters)
    assert holes == causes["capture_overflow"] + causes["device_sequence_gap"]


# ------------------------------------------------------------------ C: a full disk


@pytest.mark.parametrize("kind", ["pyav", "ffmpeg"])
async def test_full_disk_during_a_trial_keeps_cameras_alive_and_marks_files(
    tmp_path: Path, kind: str
) -> None:
    with small_tmpfs(tmp_path / "disk", "8m") as disk:
        settings = {"encoder": kind, "synthetic_count": 1, "width": 640, "height": 480}
        async with running_module("Cameras", settings) as (proc, beats):
            since = time.monotonic()
            await proc.request("start_session", {"session_dir": str(disk / "s")})
            at = time.monotonic_ns() + 200_000_000
            await proc.request("start_trial", {"at_mono_ns": at, "trial": 1})
            await asyncio.sleep(1.2)
            await asyncio.to_thread(fill, disk)
            await asyncio.sleep(2.0)
            stop = time.monotonic_ns() + 200_000_000
            t = time.monotonic()
            result = await proc.request("stop_trial", {"at_mono_ns": stop}, timeout=30)
            took = time.monotonic() - t
            await proc.request("end_session")
            assert_healthy(proc, beats, since)
        assert proc.exit_reason == "exited with status 0"
    assert took < 10, f"stop_trial took {took:.1f} s on a full disk"
    [entry] = result["files"]
    assert entry["status"] == "interrupted", entry
    assert entry["error"].startswith("disk full: ") or "disk full: " in entry["error"], entry


async def test_timing_file_failure_stops_the_video_and_marks_it(tmp_path: Path) -> None:
    """Only the timing CSV fails (injected): the video stops there and the record says why."""
    src = await _synthetic()
    pipeline = CameraPipeline(src, {"encoder": "pyav", "queue_size": 200})
    pipeline._opened.set()
    start = time.monotonic_ns()
    window = _window(1, start)
    await pipeline.start_trial(window, tmp_path)
    stream = pipeline._stream
    assert stream is not None
    sink = stream.sink
    frames = [src.make_frame(k, start + 1_000_000 + k * PERIOD_NS) for k in range(90)]
    await _feed(pipeline, frames[:40])
    async with asyncio.timeout(20):  # the first second is encoded (one fragment in the file)
        while True:
            if stream.written >= 40:
                break
            await asyncio.sleep(0.02)
    timing = sink._timing  # type: ignore[attr-defined]

    class Full:
        def __init__(self, f: Any) -> None:
            self._f = f

        def write(self, s: str) -> int:
            raise OSError(28, "No space left on device")

        def __getattr__(self, name: str) -> Any:
            return getattr(self._f, name)

    timing._file = Full(timing._file)
    await _feed(pipeline, frames[40:])
    window.stop_ns = frames[-1].t_mono_ns + 1
    record = await asyncio.wait_for(pipeline.stop_trial(), 30)
    assert record is not None and record.timing is not None
    assert record.extra["status"] == "interrupted"
    assert record.extra["error"] == f"disk full: {record.timing}"
    rows = _rows(record.timing)
    scan = read_video_barcodes(record.path)
    assert 0 < len(scan.frames) <= len(rows) < 90  # the video never got ahead of its rows
    for decoded, row in zip(scan.frames, rows, strict=False):
        assert decoded.ms == ms_of(int(row["t_mono_ns"]))


async def test_camera_that_cannot_open_its_files_is_one_clear_error(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        src = await _synthetic()
        pipeline = CameraPipeline(src, {"encoder": "pyav", "queue_size": 200})
        pipeline._opened.set()
        (disk / "m").mkdir()
        await asyncio.to_thread(fill, disk)
        with pytest.raises(Exception, match=r"^camera synthetic0: disk full: ") as info:
            await pipeline.start_trial(_window(1, time.monotonic_ns()), disk / "m")
        assert "\n" not in str(info.value)
        assert not isinstance(info.value, ModuleError)
