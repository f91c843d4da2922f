"""Shared checks for encoder tests: what a researcher needs from a recorded video."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from pathlib import Path

import av

from rpi_logger.io.encoders import Encoder, WrittenFrame
from rpi_logger.modules.cameras.barcode import ms_of, read_video_barcodes
from rpi_logger.modules.cameras.frames import Frame
from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource

PTS_TOLERANCE_S = 1e-3  # SPEC §5


async def record_live(
    encoder: Encoder, path: Path, seconds: float, width: int, height: int, fps: float,
    lead_s: float = 0.15,
) -> tuple[list[Frame], int, list[float]]:
    """Run the synthetic camera in real time into ``encoder``; returns the frames accepted,
    the trial start, and how long each submit() took (s)."""
    src = SyntheticSource(width=width, height=height, fps=fps)
    accepted: list[Frame] = []
    submit_s: list[float] = []
    await src.open()
    trial_start = time.monotonic_ns() - int(lead_s * 1e9)
    await encoder.open(path, width, height, fps, trial_start)
    end = time.monotonic_ns() + int(seconds * 1e9)
    try:
        async for frame in src:
            t = time.perf_counter()
            ok = encoder.submit(frame)
            submit_s.append(time.perf_counter() - t)
            assert ok, f"frame {frame.sequence} dropped: {encoder.stats}"
            accepted.append(frame)
            if frame.t_mono_ns >= end:
                break
    finally:
        await src.close()
        await encoder.close()
    return accepted, trial_start, submit_s


def check_video(path: Path, frames: list[Frame], trial_start_ns: int,
                rows: list[WrittenFrame] | None = None, barcodes: bool = True) -> list[float]:
    """Every submitted frame is in the file once, in order, at its exact time; returns the
    file's presentation times (s)."""
    scan = read_video_barcodes(path)
    assert scan.error is None, scan.error
    assert len(scan.frames) == len(frames), (len(scan.frames), len(frames))
    pts = [d.pts_s for d in scan.frames]
    for d, f in zip(scan.frames, frames, strict=True):
        if barcodes:
            assert d.counter == f.sequence % 2**32  # no drop, duplicate or reordering
            assert d.ms == ms_of(f.t_mono_ns)  # the frame is the one captured at t_mono_ns
        expected = (f.t_mono_ns - trial_start_ns) / 1e9
        assert abs(d.pts_s - expected) <= PTS_TOLERANCE_S, (f.sequence, d.pts_s, expected)
    if rows is not None:
        assert [r.frame_index for r in rows] == list(range(len(frames)))
        assert [r.frame.t_mono_ns for r in rows] == [f.t_mono_ns for f in frames]
        assert all(r.queue_delay_ns >= 0 and r.encode_ns > 0 for r in rows)
        assert all(r.timing_row()["frame_index"] == i for i, r in enumerate(rows))
    # Decode order = presentation order (no B-frames). A keyframe is forced at the first frame
    # ~1 s after the last one, so keyframes are at most 1 s + one frame interval apart.
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in c.demux(stream) if p.size]
        tb = stream.time_base
    p_pts = [p for p, _ in packets]
    assert all(b > a for a, b in itertools.pairwise(p_pts))
    keys = [float(p * tb) for p, k in packets if k]
    assert keys and abs(keys[0] - pts[0]) < 1e-6
    max_interval = max((b - a for a, b in itertools.pairwise(pts)), default=0.0)
    assert all(b - a <= 1.0 + max_interval + 1e-6 for a, b in itertools.pairwise(keys)), keys
    return pts


def ffprobe_pts(path: Path) -> list[float]:
    """Presentation times as ffprobe (another demuxer/decoder than PyAV's) reports them."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
         "-of", "default=nw=1:nk=1", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    return [float(x) for x in out.split()]


def irregular_frames(src: SyntheticSource, n: int, t0_ns: int, seed: int = 7) -> list[Frame]:
    """Frames with deliberately irregular intervals (5-90 ms, not multiples of anything)."""
    import random

    rnd = random.Random(seed)
    frames, t = [], t0_ns
    for k in range(n):
        frames.append(src.make_frame(k, t))
        t += rnd.randrange(5_000_000, 90_000_000) + rnd.randrange(0, 1000) * 1000 + 123
    return frames


async def submit_all(encoder: Encoder, frames: list[Frame]) -> list[bool]:
    """Submit frames from the loop, yielding now and then like a real producer."""
    results = []
    for i, f in enumerate(frames):
        results.append(encoder.submit(f))
        if i % 4 == 3:
            await asyncio.sleep(0.001)
    return results
