"""Encoder pipeline benchmark (not a test).

Two figures at one resolution (default 1280x720), same libx264 settings, same pre-generated
synthetic frames:

1. **PyAV alone**: encode + mux into a fragmented MP4 as fast as possible, on one thread, no
   queue, no event loop (frames/s).
2. **Our pipeline**: an asyncio loop paces frames at a target rate and `submit()`s them to a
   `SinkWriter` running an `Mp4Sink` (bounded bridge -> writer thread -> fragmented MP4 and its
   timing CSV). The highest rate it sustains with zero drops (binary search). "Sustains" uses a
   short queue (8 frames) so an encoder that is slower than the rate overflows within the run
   instead of hiding the backlog in a long queue.

Usage: .venv/bin/python bench/bench_encoder.py [--width W --height H --seconds S --json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from rpi_logger.io.sinks import SinkWriter
from rpi_logger.io.sinks.video import Mp4Sink, VideoSettings, mp4_muxer_options
from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource
from rpi_logger.samples import Frame

QUEUE = 8


def make_frames(width: int, height: int, n: int) -> list[Frame]:
    """Distinct synthetic frames (scrolling picture, changing barcodes), generated up front."""
    src = SyntheticSource(width=width, height=height)
    return [src.make_frame(k, 10**12 + k * 33_333_333) for k in range(n)]


def pyav_alone(frames: list[Frame], settings: VideoSettings, path: Path, count: int) -> float:
    """Frames/s of PyAV encoding + muxing alone, same options as `Mp4Sink`."""
    width, height = frames[0].width, frames[0].height
    with open(path, "wb", buffering=0) as fh:
        out = av.open(fh, "w", format="mp4", options=mp4_muxer_options(settings.fragment_s))
        options = {"crf": str(settings.crf), "preset": settings.preset, "forced-idr": "1"}
        if settings.tune:
            options["tune"] = settings.tune
        s = out.add_stream(settings.codec, options=options)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 1_000_000)
        s.codec_context.framerate = Fraction(30)
        s.codec_context.gop_size = 30
        s.codec_context.max_b_frames = 0
        s.codec_context.thread_count = settings.threads
        t0 = time.perf_counter()
        for i in range(count):
            vf = av.VideoFrame.from_ndarray(frames[i % len(frames)].image, format="rgb24")
            vf.pts = i * 33_333
            vf.time_base = s.codec_context.time_base
            out.mux(s.encode(vf))
        out.mux(s.encode(None))
        out.close()
        return count / (time.perf_counter() - t0)


async def pipeline_run(
    frames: list[Frame], settings: VideoSettings, path: Path, fps: float, seconds: float
) -> dict[str, float]:
    """Submit frames paced at ``fps`` from the loop for ``seconds``; drops and loop lateness."""
    period = 1e9 / fps
    start = time.monotonic_ns()
    sink = Mp4Sink(
        path,
        path.with_suffix(".csv"),
        width=frames[0].width,
        height=frames[0].height,
        fps=fps,
        origin_ns=start,
        settings=settings,
    )
    writer = SinkWriter(sink, max_queue=QUEUE, overflow="drop", name="bench")
    await writer.astart()
    n = int(fps * seconds)
    late_max = 0
    for k in range(n):
        due = start + int(k * period) + 1_000_000
        now = time.monotonic_ns()
        if due > now:
            await asyncio.sleep((due - now) / 1e9)
            now = time.monotonic_ns()
        late_max = max(late_max, now - due)
        f = frames[k % len(frames)]
        writer.submit(Frame(f.image, now, 0.0, None, k))
    t_close = time.perf_counter()
    stats = await writer.aclose()
    return {
        "fps": fps,
        "submitted": stats.accepted + stats.dropped,
        "written": sink.frames,
        "dropped": stats.dropped,
        "loop_late_max_ms": late_max / 1e6,
        "close_s": time.perf_counter() - t_close,
        "encode_ms_mean": sink.encode_ns_total / max(1, sink.frames) / 1e6,
    }


async def highest_sustained(
    frames: list[Frame], settings: VideoSettings, path: Path, ceiling: float, seconds: float
) -> tuple[float, list[dict]]:
    """Binary search for the highest rate with zero drops."""
    lo, hi = 0.0, ceiling * 1.2
    runs = []
    probe = 30.0
    while hi - lo > max(2.0, 0.03 * hi):
        r = await pipeline_run(frames, settings, path, probe, seconds)
        runs.append(r)
        print(
            f"  pipeline at {probe:6.1f} fps: {r['dropped']:.0f} dropped, "
            f"loop late max {r['loop_late_max_ms']:.1f} ms",
            file=sys.stderr,
        )
        if r["dropped"] == 0:
            lo = probe
        else:
            hi = probe
        probe = (lo + hi) / 2
    return lo, runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--seconds", type=float, default=3.0, help="length of each pipeline run")
    p.add_argument("--preset", default=VideoSettings().preset)
    p.add_argument("--tune", default=VideoSettings().tune)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    settings = VideoSettings(preset=args.preset, tune=args.tune or None)
    frames = make_frames(args.width, args.height, 60)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.mp4"
        before = pyav_alone(frames, settings, path, 300)
        print(f"PyAV alone: {before:.1f} frames/s", file=sys.stderr)
        best, runs = asyncio.run(highest_sustained(frames, settings, path, before, args.seconds))
        # Measured again afterwards: on a shared host the two figures show how noisy it is.
        after = pyav_alone(frames, settings, path, 300)
        print(f"PyAV alone (again): {after:.1f} frames/s", file=sys.stderr)
        alone = (before + after) / 2
    result = {
        "resolution": f"{args.width}x{args.height}",
        "preset": settings.preset,
        "tune": settings.tune,
        "cpus": os.cpu_count(),
        "pyav_alone_fps": round(alone, 1),
        "pyav_alone_fps_before_after": [round(before, 1), round(after, 1)],
        "pipeline_sustained_fps": round(best, 1),
        "ratio": round(best / alone, 3) if alone else None,
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['resolution']} {settings.preset}/{settings.tune}, {os.cpu_count()} CPUs")
        print(
            f"  PyAV encoder alone        : {alone:7.1f} frames/s "
            f"(before {before:.1f}, after {after:.1f})"
        )
        print(f"  pipeline, zero drops, max : {best:7.1f} frames/s")
        print(f"  ratio                     : {best / alone:7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
