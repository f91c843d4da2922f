"""`rpi-logger remux VIDEO [--timing CSV] [-o OUT]`: rewrite video timestamps from a timing CSV.

Packets are copied, never re-encoded. Frame *i* of the output is presented at
``(t_mono_ns[i] - trial_start) / 1e9`` s (design.md: Timing files), where ``t_mono_ns[i]`` is row
*i* of the
timing CSV and the trial start comes from ``--trial-start-ns``, else the session manifest
(``session.json`` two folders up, trial number from the ``trialNNN_`` file name), else the first
frame (which then starts at 0). Works for MP4/MKV/MOV inputs whose timestamps are wrong and for
raw ``.h264`` streams, which carry none.

Library use: `remux(...)` (blocking) or `await remux_async(...)` (runs it on a worker thread).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from tqdm import tqdm

TIME_BASE = Fraction(1, 1_000_000)
_MP4_OPTIONS = {
    "movflags": "frag_keyframe+delay_moov",
    "use_editlist": "1",
    "movie_timescale": "1000000",
    "frag_duration": "500000",
}
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_TRIAL_RE = re.compile(r"^trial(\d+)_")


class RemuxError(Exception):
    """An expected failure (missing file, bad CSV, count mismatch); the message says what."""


@dataclass(frozen=True, slots=True)
class RemuxResult:
    """What `remux` wrote."""

    video: Path
    timing: Path
    out: Path
    frames: int  # frames written
    video_frames: int  # frames found in the input
    timing_rows: int  # rows found in the timing CSV
    trial_start_mono_ns: int
    trial_start_source: str  # "argument", "manifest" or "first frame"
    first_pts_s: float
    last_pts_s: float
    mean_fps: float  # (N - 1) / (t_last - t_first); 0.0 for fewer than two frames
    elapsed_s: float
    truncated_last_row: bool  # the CSV ended in an incomplete line (crash), which was ignored


def default_timing_path(video: Path) -> Path:
    """``<video stem>_timing.csv`` beside the video."""
    return video.with_name(f"{video.stem}_timing.csv")


def default_output_path(video: Path) -> Path:
    """``<video stem>_remux.mp4`` beside the video."""
    return video.with_name(f"{video.stem}_remux.mp4")


def mean_rate(times_ns: list[int]) -> float:
    """The constant rate that best stands for these frame times: (N - 1) / (t_last - t_first)."""
    if len(times_ns) < 2 or times_ns[-1] <= times_ns[0]:
        return 0.0
    return (len(times_ns) - 1) / ((times_ns[-1] - times_ns[0]) / 1e9)


def read_timing(path: Path) -> tuple[list[int], bool]:
    """``t_mono_ns`` per frame, in ``frame_index`` order, and whether an incomplete last line
    (from a crash) was ignored. Raises `RemuxError` for anything else that is wrong."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise RemuxError(f"timing file not found: {path} (give one with --timing CSV)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RemuxError(f"cannot read timing file {path}: {exc}") from None
    lines = text.splitlines(keepends=True)
    if not lines:
        raise RemuxError(f"timing file {path} is empty")
    reader = csv.reader(lines)
    header = [h.strip() for h in next(reader)]
    missing = [c for c in ("frame_index", "t_mono_ns") if c not in header]
    if missing:
        raise RemuxError(
            f"timing file {path} has no column {', '.join(missing)} (found: {', '.join(header)})"
        )
    i_idx, i_t = header.index("frame_index"), header.index("t_mono_ns")
    rows: list[tuple[int, int]] = []
    truncated = False
    body = list(reader)
    for n, row in enumerate(body):
        line_no = n + 2
        last = n == len(body) - 1
        if not row or all(not c.strip() for c in row):
            continue
        try:
            if len(row) < len(header):
                raise ValueError("too few fields")
            rows.append((int(row[i_idx]), int(row[i_t])))
        except ValueError as exc:
            if last and not lines[-1].endswith(("\n", "\r")):
                truncated = True  # the writer was killed mid-line; the rest is good
                break
            raise RemuxError(f"{path}, line {line_no}: bad row ({exc}): {','.join(row)}") from None
    rows.sort()
    for expect, (idx, _) in enumerate(rows):
        if idx != expect:
            raise RemuxError(
                f"{path}: frame_index values are not 0..{len(rows) - 1} (index {expect} is {idx})"
            )
    times = [t for _, t in rows]
    for k in range(1, len(times)):
        if times[k] <= times[k - 1]:
            raise RemuxError(
                f"{path}: t_mono_ns does not increase at frame_index {k} "
                f"({times[k - 1]} then {times[k]})"
            )
    return times, truncated


def trial_start_from_manifest(video: Path) -> int | None:
    """The trial's ``start.mono_ns`` from ``<session>/session.json``, if the video sits in a
    session (``<session>/<Module>/<device>/trialNNN_*``)."""
    m = _TRIAL_RE.match(video.name)
    if not m:
        return None
    manifest = video.resolve().parent.parent.parent / "session.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    number = int(m.group(1))
    trials = data.get("trials") if isinstance(data, dict) else None
    for trial in trials if isinstance(trials, list) else []:
        if not isinstance(trial, dict) or trial.get("number") != number:
            continue
        start = trial.get("start")
        mono = start.get("mono_ns") if isinstance(start, dict) else None
        # A manifest edited by hand may hold anything; only an integer is a start time.
        return mono if isinstance(mono, int) and not isinstance(mono, bool) else None
    return None


def _open_input(video: Path) -> Any:
    if not video.is_file():
        raise RemuxError(f"video not found: {video}")
    fmt = "h264" if video.suffix.lower() in (".h264", ".264") else None
    try:
        container = av.open(str(video), format=fmt)
    except av.error.FFmpegError as exc:
        raise RemuxError(f"cannot read video {video}: {exc}") from None
    if not container.streams.video:
        container.close()
        raise RemuxError(f"{video} has no video stream")
    return container


def _count_packets(video: Path) -> int:
    """Frames in the first video stream (demux only), checking decode order = presentation."""
    container = _open_input(video)
    try:
        stream = container.streams.video[0]
        n = 0
        last_pts: int | None = None
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is not None:
                if last_pts is not None and packet.pts <= last_pts:
                    raise RemuxError(
                        f"{video} stores frames out of presentation order (B-frames?); "
                        "remux needs decode order = presentation order"
                    )
                last_pts = packet.pts
            n += 1
        return n
    except av.error.FFmpegError as exc:
        raise RemuxError(f"cannot read video {video}: {exc}") from None
    finally:
        container.close()


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _prepare_output(out: Path) -> Path:
    """Check that `out` can be written (its folder made if missing) and return the temporary
    ``<out>.part`` the remux writes first. Raises RemuxError naming the path and the cause."""
    if out.is_dir():
        raise RemuxError(f"output {out} is a folder; name a file (e.g. {out / 'video.mp4'})")
    part = out.with_name(out.name + ".part")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with part.open("wb"):
            pass  # PyAV's own error for an unwritable file says less than this
    except FileExistsError:
        raise RemuxError(f"cannot write {out}: {out.parent} is a file, not a folder") from None
    except OSError as exc:
        raise RemuxError(f"cannot write {out}: {_why(exc)}") from None
    return part


def remux(
    video: str | Path,
    timing: str | Path | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    *,
    trial_start_mono_ns: int | None = None,
    allow_mismatch: bool = False,
) -> RemuxResult:
    """Copy ``video`` to ``out`` with each frame's PTS taken from ``timing`` (blocking).

    ``allow_mismatch`` pairs the first min(frames, rows) (e.g. a video cut short by a crash has
    fewer frames than its CSV has rows); otherwise a count mismatch is a `RemuxError`.
    """
    t0 = time.monotonic()
    video = Path(video)
    timing = Path(timing) if timing is not None else default_timing_path(video)
    out = Path(out) if out is not None else default_output_path(video)
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise RemuxError(
            f"output {out}: unsupported extension (use one of {', '.join(sorted(_FORMATS))})"
        )
    if not video.is_file():
        raise RemuxError(f"video not found: {video}")
    if out.resolve() == video.resolve():
        raise RemuxError("output must differ from the input video")
    times, truncated = read_timing(timing)
    n_rows = len(times)
    n_video = _count_packets(video)
    if n_video != len(times) and not allow_mismatch:
        raise RemuxError(
            f"row count mismatch: {video.name} has {n_video} frames but "
            f"{timing.name} has {len(times)} rows (use --allow-mismatch to pair "
            "the first frames with the first rows)"
        )
    n = min(n_video, len(times))
    if n == 0:
        raise RemuxError(f"nothing to remux: {n_video} frames, {len(times)} timing rows")
    times = times[:n]

    if trial_start_mono_ns is not None:
        start, source = int(trial_start_mono_ns), "argument"
    else:
        found = trial_start_from_manifest(video)
        start, source = (found, "manifest") if found is not None else (times[0], "first frame")
    pts = [(t - start + 500) // 1000 for t in times]
    if pts[0] < 0:
        raise RemuxError(f"first frame ({times[0]} ns) is before the trial start ({start} ns)")
    for k in range(1, n):  # µs rounding could merge two frames closer than 1 µs
        if pts[k] <= pts[k - 1]:
            pts[k] = pts[k - 1] + 1
    fallback_dur = max(1, round(1e6 / mean_rate(times))) if n > 1 else 33_333

    src = _open_input(video)
    try:
        part = _prepare_output(out)
    except RemuxError:
        src.close()
        raise
    written = 0
    try:
        in_stream = src.streams.video[0]
        options = _MP4_OPTIONS if fmt in ("mp4", "mov") else {}
        dst = av.open(str(part), mode="w", format=fmt, options=options)
        try:
            out_stream = dst.add_stream_from_template(in_stream)
            out_stream.time_base = TIME_BASE
            rate = mean_rate(times)
            if rate > 0:  # only a hint for formats that store one constant rate
                out_stream.codec_context.framerate = Fraction(rate).limit_denominator(1_000_000)
            with tqdm(
                total=n, unit="frame", desc=video.name, disable=not progress, file=sys.stderr
            ) as bar:
                for packet in src.demux(in_stream):
                    if packet.size == 0:
                        continue
                    if written >= n:
                        break
                    p = pts[written]
                    packet.stream = out_stream
                    packet.time_base = TIME_BASE
                    packet.pts = p
                    packet.dts = p
                    packet.duration = (pts[written + 1] - p) if written + 1 < n else fallback_dur
                    dst.mux(packet)
                    written += 1
                    bar.update(1)
        finally:
            dst.close()
    except av.error.FFmpegError as exc:
        part.unlink(missing_ok=True)
        raise RemuxError(f"remuxing {video} failed: {exc}") from None
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise RemuxError(f"cannot write {out}: {_why(exc)}") from None
    finally:
        src.close()
    try:
        os.replace(part, out)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise RemuxError(f"cannot write {out}: {_why(exc)}") from None
    return RemuxResult(
        video=video,
        timing=timing,
        out=out,
        frames=written,
        video_frames=n_video,
        timing_rows=n_rows,
        trial_start_mono_ns=start,
        trial_start_source=source,
        first_pts_s=pts[0] / 1e6,
        last_pts_s=pts[written - 1] / 1e6,
        mean_fps=mean_rate(times),
        elapsed_s=time.monotonic() - t0,
        truncated_last_row=truncated,
    )


async def remux_async(
    video: str | Path,
    timing: str | Path | None = None,
    out: str | Path | None = None,
    progress: bool = False,
    *,
    trial_start_mono_ns: int | None = None,
    allow_mismatch: bool = False,
) -> RemuxResult:
    """`remux` on a worker thread, so the event loop keeps running."""
    return await asyncio.to_thread(
        remux,
        video,
        timing,
        out,
        progress,
        trial_start_mono_ns=trial_start_mono_ns,
        allow_mismatch=allow_mismatch,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rpi-logger remux``."""
    parser.add_argument("video", help="video file (.mp4, .mkv, .mov or raw .h264)")
    parser.add_argument(
        "--timing",
        metavar="CSV",
        help="timing CSV (default: <video stem>_timing.csv beside the video)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file (default: <video stem>_remux.mp4 beside the video)",
    )
    parser.add_argument(
        "--trial-start-ns",
        type=int,
        metavar="NS",
        help="trial start on the host monotonic clock (default: from the "
        "session manifest, else the first frame)",
    )
    parser.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="pair the first frames with the first rows when counts differ",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``rpi-logger remux``; returns the exit status (errors are one line, no traceback)."""
    try:
        result = remux(
            args.video,
            args.timing,
            args.output,
            progress=not args.no_progress,
            trial_start_mono_ns=args.trial_start_ns,
            allow_mismatch=args.allow_mismatch,
        )
    except RemuxError as exc:
        print(f"rpi-logger remux: error: {exc}", file=sys.stderr)
        return 1
    if result.truncated_last_row:
        print("note: the timing file's last line was incomplete and was ignored", file=sys.stderr)
    if result.video_frames != result.timing_rows:
        print(
            f"note: {result.video_frames} frames, {result.timing_rows} timing rows; "
            f"wrote the first {result.frames}",
            file=sys.stderr,
        )
    print(
        f"wrote {result.out}: {result.frames} frames, {result.first_pts_s:.6f}-"
        f"{result.last_pts_s:.6f} s, mean {result.mean_fps:.3f} fps "
        f"(trial start from {result.trial_start_source})"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m rpi_logger.tools.remux``)."""
    parser = argparse.ArgumentParser(prog="rpi-logger remux", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
