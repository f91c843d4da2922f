"""Shared checks for video sink tests: what a researcher needs from a recorded video."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import itertools
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av

from rpi_logger.io.sinks import SinkWriter
from rpi_logger.io.sinks.video import VideoSettings, VideoSink, sink_class
from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource
from rpi_logger.samples import Frame
from rpi_logger.simulation.barcode import ms_of, read_video_barcodes

PTS_TOLERANCE_S = 1e-3  # design.md: Timing files


def make_sink(
    kind: str,
    path: Path,
    width: int,
    height: int,
    origin_ns: int,
    fps: float = 30,
    **settings: Any,
) -> VideoSink:
    """A video sink of `kind` writing `path` and `<stem>_timing.csv` beside it."""
    return sink_class(kind)(
        path,
        timing_path(path),
        width=width,
        height=height,
        fps=fps,
        origin_ns=origin_ns,
        settings=VideoSettings(encoder=kind, **settings),
    )


def timing_path(video: Path) -> Path:
    return video.with_name(f"{video.stem}_timing.csv")


@contextlib.asynccontextmanager
async def writing(sink: VideoSink, max_queue: int = 64) -> AsyncIterator[SinkWriter[Frame]]:
    """The sink run by a `SinkWriter` (ffmpeg's process started and ended around it), closed
    on exit: `SinkError` from the writer or ffmpeg propagates."""
    astart, astop = getattr(sink, "astart", None), getattr(sink, "astop", None)
    if astart is not None:
        await astart()
    writer = SinkWriter(sink, max_queue=max_queue, overflow="drop", name=sink.path.name)
    try:
        await writer.astart()
        yield writer
        await writer.aclose()
    finally:
        if not writer.closed:
            with contextlib.suppress(Exception):
                await writer.aclose()
        if astop is not None:
            await astop()


async def record_live(
    kind: str,
    path: Path,
    seconds: float,
    width: int,
    height: int,
    fps: float,
    lead_s: float = 0.15,
) -> tuple[list[Frame], int]:
    """Run the synthetic camera in real time into a sink of `kind`; returns the frames
    accepted and the origin (lead_s before the first frame)."""
    src = SyntheticSource(width=width, height=height, fps=fps)
    accepted: list[Frame] = []
    origin = time.monotonic_ns() - int(lead_s * 1e9)  # before the camera's first frame
    await src.open()
    end = time.monotonic_ns() + int(seconds * 1e9)
    try:
        async with writing(make_sink(kind, path, width, height, origin, fps)) as writer:
            async for frame in src:
                assert writer.submit(frame), f"frame {frame.sequence} dropped: {writer.stats()}"
                accepted.append(frame)
                if frame.t_mono_ns >= end:
                    break
    finally:
        await src.close()
    return accepted, origin


def read_rows(path: Path) -> list[dict[str, str]]:
    """The timing CSV's whole rows (a line cut by a kill is not a row)."""
    text = path.read_text(encoding="utf-8")
    return list(csv.DictReader(text[: text.rfind("\n") + 1].splitlines()))


def check_video(
    path: Path, frames: list[Frame], origin_ns: int, barcodes: bool = True
) -> list[float]:
    """Every frame is in the file once, in order, at its exact time, with its timing row;
    returns the file's presentation times (s)."""
    scan = read_video_barcodes(path)
    assert scan.error is None, scan.error
    assert len(scan.frames) == len(frames), (len(scan.frames), len(frames))
    pts = [d.pts_s for d in scan.frames]
    for d, f in zip(scan.frames, frames, strict=True):
        if barcodes:
            assert d.counter == f.sequence % 2**32  # no drop, duplicate or reordering
            assert d.ms == ms_of(f.t_mono_ns)  # the frame is the one captured at t_mono_ns
        expected = (f.t_mono_ns - origin_ns) / 1e9
        assert abs(d.pts_s - expected) <= PTS_TOLERANCE_S, (f.sequence, d.pts_s, expected)
    rows = read_rows(timing_path(path))
    assert [int(r["frame_index"]) for r in rows] == list(range(len(frames)))
    assert [int(r["t_mono_ns"]) for r in rows] == [f.t_mono_ns for f in frames]
    assert [int(r["sequence"]) for r in rows] == [f.sequence for f in frames]
    assert [int(r["pts_us"]) for r in rows] == [round(p * 1e6) for p in pts]
    assert all(int(r["encode_ns"]) > 0 and int(r["queue_delay_ns"]) >= 0 for r in rows)
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
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "default=nw=1:nk=1",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
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


async def submit_all(writer: SinkWriter[Frame], frames: list[Frame]) -> list[bool]:
    """Submit frames from the loop, yielding now and then like a real producer."""
    results = []
    for i, f in enumerate(frames):
        results.append(writer.submit(f))
        if i % 4 == 3:
            await asyncio.sleep(0.001)
    return results
