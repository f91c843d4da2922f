"""PyAV encoder: every frame in the file once, in order, at its exact capture time."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tests.io.encoders.camera_video_checks import (
    check_video,
    ffprobe_pts,
    irregular_frames,
    record_live,
    submit_all,
)

from rpi_logger.io.encoders import EncoderError, PyAVEncoder, WrittenFrame, make_encoder
from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource


async def test_live_720p_three_seconds_exact(tmp_path: Path) -> None:
    rows: list[WrittenFrame] = []
    threads: set[int] = set()

    def on_written(w: WrittenFrame) -> None:
        threads.add(threading.get_ident())
        rows.append(w)

    enc = PyAVEncoder(on_written=on_written)
    path = tmp_path / "live.mp4"
    frames, start, _ = await record_live(enc, path, 3.0, 1280, 720, 30)
    stats = enc.stats
    assert 85 <= len(frames) <= 95
    assert stats.frames_written == stats.frames_submitted == len(frames) and stats.dropped == 0
    # The simulated camera skips a slot only if the loop was late by a whole frame (a loaded
    # test host); the file must hold exactly the frames submitted either way (check_video).
    assert frames[-1].sequence - frames[0].sequence + 1 - len(frames) <= 2
    assert threads and threading.get_ident() not in threads  # callback ran on encoder thread
    pts = check_video(path, frames, start, rows)
    assert 0.1 <= pts[0] <= 0.3  # the offset from the trial start is kept
    # Another reader agrees, to the microsecond ffprobe prints.
    probed = ffprobe_pts(path)
    assert len(probed) == len(frames)
    assert max(abs(a - b) for a, b in zip(probed, pts, strict=True)) < 2e-6
    # How long submit() takes on the loop is measured in bench/bench_encoder.py, not here.


@pytest.mark.parametrize("pixel_format", ["rgb24", "yuv420p"])
async def test_variable_intervals_stay_variable(tmp_path: Path, pixel_format: str) -> None:
    src = SyntheticSource(width=640, height=480, pixel_format=pixel_format)
    start = 5_000_000_000_000
    frames = irregular_frames(src, 60, start + 180_000_000)
    rows: list[WrittenFrame] = []
    enc = PyAVEncoder(queue_size=100, on_written=rows.append)
    path = tmp_path / f"vfr_{pixel_format}.mp4"
    await enc.open(path, 640, 480, 30, start)
    assert all(await submit_all(enc, frames))
    stats = await enc.close()
    assert stats.frames_written == 60 and stats.dropped == 0
    pts = check_video(path, frames, start, rows)
    got = np.diff(pts)
    want = np.diff([f.t_mono_ns for f in frames]) / 1e9
    assert np.max(np.abs(got - want)) < 2e-6
    assert np.std(got) > 0.015  # not regularised to a nominal rate
    assert [r.pts_us for r in rows] == [(f.t_mono_ns - start + 500) // 1000 for f in frames]


async def test_out_of_order_and_early_frames_are_dropped_and_counted(tmp_path: Path) -> None:
    src = SyntheticSource(width=512, height=64)
    start = 10**12
    times = [start + 50_000_000, start + 83_000_000, start + 83_000_000,  # duplicate
             start + 60_000_000,  # goes back
             start - 1_000_000,  # before the trial start
             start + 120_000_000, start + 150_000_000]
    frames = [src.make_frame(k, t) for k, t in enumerate(times)]
    enc = PyAVEncoder(queue_size=50)
    path = tmp_path / "ts.mp4"
    await enc.open(path, 512, 64, 30, start)
    ok = [enc.submit(f) for f in frames]
    stats = await enc.close()
    assert ok == [True, True, False, False, False, True, True]
    assert stats.dropped_timestamp == 3 and stats.frames_written == 4
    kept = [f for f, k in zip(frames, ok, strict=True) if k]
    check_video(path, kept, start)


async def test_queue_overflow_drops_and_counts(tmp_path: Path) -> None:
    src = SyntheticSource(width=1280, height=720)
    start = 10**12
    frames = [src.make_frame(k, start + (k + 1) * 33_333_333) for k in range(40)]
    rows: list[WrittenFrame] = []
    enc = PyAVEncoder(queue_size=2, on_written=rows.append)
    path = tmp_path / "overflow.mp4"
    await enc.open(path, 1280, 720, 30, start)
    ok = [enc.submit(f) for f in frames]  # a burst far faster than the encoder
    stats = await enc.close()
    assert not all(ok) and ok[0]
    assert stats.dropped_queue_overflow == ok.count(False) > 0
    assert stats.frames_written == ok.count(True) == len(rows)
    assert stats.queue_depth_max <= 2
    kept = [f for f, k in zip(frames, ok, strict=True) if k]
    check_video(path, kept, start, rows)


async def test_close_never_blocks_the_loop(tmp_path: Path) -> None:
    src = SyntheticSource(width=1280, height=720)
    start = 10**12
    enc = make_encoder("pyav", queue_size=40)
    await enc.open(tmp_path / "lag.mp4", 1280, 720, 30, start)
    for k in range(40):
        assert enc.submit(src.make_frame(k, start + (k + 1) * 33_333_333))
    worst = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - t - 0.005)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(ticker())
        await asyncio.sleep(0.02)
        stats = await enc.close()  # ~40 frames still to encode, then the trailer
        stop.set()
    assert stats.frames_written == 40
    assert worst < 0.05, f"loop stalled {worst * 1e3:.1f} ms while the encoder flushed"


async def test_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    enc = PyAVEncoder()
    with pytest.raises(EncoderError, match="cannot open"):
        await enc.open(tmp_path / "no" / "such" / "dir" / "x.mp4", 640, 480, 30, 0)
    assert not enc.is_open
    src = SyntheticSource(width=640, height=480)
    assert enc.submit(src.make_frame(0, 1)) is False
    with pytest.raises(EncoderError, match="even"):
        await PyAVEncoder().open(tmp_path / "odd.mp4", 641, 480, 30, 0)


async def test_timing_rows_feed_the_csv_writer(tmp_path: Path) -> None:
    """The encoder thread's callback writes the timing CSV through the shared CSV writer."""
    import csv

    csv_writer = pytest.importorskip("rpi_logger.io.csv_writer")
    from rpi_logger.io.encoders import TIMING_COLUMNS

    src = SyntheticSource(width=512, height=64)
    start = 10**12
    frames = irregular_frames(src, 20, start + 100_000_000)
    timing = tmp_path / "trial001_cam_timing.csv"
    async with csv_writer.CsvStreamWriter(timing, TIMING_COLUMNS) as writer:
        enc = PyAVEncoder(queue_size=50, on_written=lambda w: writer.write_row(w.timing_values()))
        await enc.open(tmp_path / "trial001_cam.mp4", 512, 64, 30, start)
        for f in frames:
            enc.submit(f)
        await enc.close()
    with timing.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["frame_index"]) for r in rows] == list(range(20))
    assert [int(r["t_mono_ns"]) for r in rows] == [f.t_mono_ns for f in frames]
    assert all(r["t_device_ns"] == "" for r in rows)
    assert tuple(rows[0]) == TIMING_COLUMNS
