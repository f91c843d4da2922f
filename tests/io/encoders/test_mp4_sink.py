"""The PyAV video sink: every frame in the file once, in order, at its exact capture time, each
with its timing row."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from tests.io.encoders.camera_video_checks import (
    check_video,
    ffprobe_pts,
    irregular_frames,
    make_sink,
    read_rows,
    record_live,
    submit_all,
    timing_path,
    writing,
)

from rpi_logger.io.sinks import SinkError, set_blocking
from rpi_logger.io.sinks.video import TIMING_COLUMNS, Mp4Sink
from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource


@pytest.mark.exclusive  # the first frame's delay from the origin, on the clock: alone (test.sh)
async def test_live_720p_three_seconds_exact(tmp_path: Path) -> None:
    path = tmp_path / "live.mp4"
    frames, origin = await record_live("pyav", path, 3.0, 1280, 720, 30)
    assert 85 <= len(frames) <= 95
    # A device thread starved of CPU may skip a slot (a loaded test host); the file must hold
    # exactly the frames submitted either way.
    assert frames[-1].sequence - frames[0].sequence + 1 - len(frames) <= 2
    pts = check_video(path, frames, origin)
    assert 0.1 <= pts[0] <= 0.3  # the offset from the trial's origin is kept
    # Another reader agrees, to the microsecond ffprobe prints.
    probed = ffprobe_pts(path)
    assert len(probed) == len(frames)
    assert max(abs(a - b) for a, b in zip(probed, pts, strict=True)) < 2e-6


@pytest.mark.parametrize("pixel_format", ["rgb24", "yuv420p"])
async def test_variable_intervals_stay_variable(tmp_path: Path, pixel_format: str) -> None:
    src = SyntheticSource(width=640, height=480, pixel_format=pixel_format)
    origin = 5_000_000_000_000
    frames = irregular_frames(src, 60, origin + 180_000_000)
    path = tmp_path / f"vfr_{pixel_format}.mp4"
    sink = make_sink("pyav", path, 640, 480, origin)
    async with writing(sink, max_queue=100) as writer:
        assert all(await submit_all(writer, frames))
    assert sink.frames == 60 and writer.stats().dropped == 0
    pts = check_video(path, frames, origin)
    got = np.diff(pts)
    want = np.diff([f.t_mono_ns for f in frames]) / 1e9
    assert np.max(np.abs(got - want)) < 2e-6
    assert np.std(got) > 0.015  # not regularised to a nominal rate
    rows = read_rows(timing_path(path))
    assert tuple(rows[0]) == TIMING_COLUMNS
    assert all(r["t_device_ns"] == "" for r in rows)
    assert [int(r["pts_us"]) for r in rows] == [
        (f.t_mono_ns - origin + 500) // 1000 for f in frames
    ]


async def test_frames_closer_than_a_microsecond_keep_increasing_pts(tmp_path: Path) -> None:
    src = SyntheticSource(width=512, height=64)
    origin = 10**12
    times = [origin + 50_000_000, origin + 50_000_400, origin + 83_000_000]
    frames = [src.make_frame(k, t) for k, t in enumerate(times)]
    path = tmp_path / "close.mp4"
    async with writing(make_sink("pyav", path, 512, 64, origin)) as writer:
        assert all(writer.submit(f) for f in frames)
    assert [int(r["pts_us"]) for r in read_rows(timing_path(path))] == [50_000, 50_001, 83_000]


async def test_queue_overflow_drops_and_counts(tmp_path: Path) -> None:
    src = SyntheticSource(width=1280, height=720)
    origin = 10**12
    frames = [src.make_frame(k, origin + (k + 1) * 33_333_333) for k in range(40)]
    path = tmp_path / "overflow.mp4"
    async with writing(make_sink("pyav", path, 1280, 720, origin), max_queue=2) as writer:
        ok = [writer.submit(f) for f in frames]  # a burst far faster than the encoder
    stats = writer.stats()
    assert not all(ok) and ok[0]
    assert stats.dropped_overflow == ok.count(False) > 0
    assert stats.max_queued <= 2
    check_video(path, [f for f, k in zip(frames, ok, strict=True) if k], origin)


async def test_close_never_blocks_the_loop(tmp_path: Path) -> None:
    src = SyntheticSource(width=1280, height=720)
    origin = 10**12
    worst = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - t - 0.005)

    sink = make_sink("pyav", tmp_path / "lag.mp4", 1280, 720, origin)
    async with asyncio.TaskGroup() as tg:
        async with writing(sink, max_queue=40) as writer:
            for k in range(40):
                assert writer.submit(src.make_frame(k, origin + (k + 1) * 33_333_333))
            tg.create_task(ticker())
            await asyncio.sleep(0.02)
        # ~40 frames were still to encode when the close began, then the last fragment
        stop.set()
    assert sink.frames == 40
    assert worst < 0.05, f"loop stalled {worst * 1e3:.1f} ms while the sink finished"


async def test_a_file_that_cannot_be_created_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    sink = make_sink("pyav", tmp_path / "a_file" / "x.mp4", 640, 480, 0)
    with pytest.raises(SinkError) as info:
        async with writing(sink):
            pass
    assert "a_file" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="even"):
        Mp4Sink(
            tmp_path / "odd.mp4", tmp_path / "odd.csv", width=641, height=480, fps=30, origin_ns=0
        )


async def test_blocking_mode_writes_the_same_video(tmp_path: Path) -> None:
    """The benchmark's naive mode (the sink runs on the loop) makes the same file."""
    src = SyntheticSource(width=640, height=480)
    origin = 10**12
    frames = irregular_frames(src, 30, origin + 40_000_000)
    set_blocking(True)
    try:
        sink = make_sink("pyav", tmp_path / "blocking.mp4", 640, 480, origin)
        async with writing(sink) as writer:
            assert all(writer.submit(f) for f in frames)
    finally:
        set_blocking(False)
    check_video(sink.path, frames, origin)
