"""Video checks for `rpi-logger verify`: decodable to the end, one timing row per frame, PTS
equal to the timing file's capture times (design.md: Timing files, within 1 ms), strictly
increasing. For
simulated cameras the barcodes are read too: each frame shows the capture time its row claims.

Frame counts: a complete file has exactly one timing row per frame. A file whose entry or trial
was interrupted (kill -9, power cut) may hold fewer frames than rows, because frames that were
encoded but whose fragment never reached the disk are lost; that is a warning, as long as row *i*
matches frame *i* for every frame present. A frame without a timing row is always an error.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rpi_logger.simulation.barcode import ms_of, read_video_barcodes

if TYPE_CHECKING:
    from rpi_logger.tools.verify import FileContext, Report

PTS_TOLERANCE_S = 1e-3


@dataclass(frozen=True, slots=True)
class _Frame:
    pts_s: float  # nan when the frame has no presentation time
    ms: int | None  # the simulated barcode's capture time, when read


def _decode(path: Path) -> tuple[list[_Frame], str | None]:
    """Presentation times of every decodable frame, and why decoding stopped early (or None)."""
    import av  # local: PyAV loads only when a video is checked

    frames: list[_Frame] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return frames, "no video stream"
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                t = float(frame.pts * frame.time_base) if frame.pts is not None else math.nan
                frames.append(_Frame(t, None))
    except (av.error.FFmpegError, OSError, ValueError, IndexError, EOFError) as exc:
        return frames, f"{type(exc).__name__}: {exc}"
    return frames, None


def _scan(report: Report, ctx: FileContext) -> tuple[list[_Frame], str | None]:
    """Decode the video; for simulated cameras read the barcodes too."""
    from rpi_logger.tools.verify import ERROR

    if ctx.simulated:
        try:
            scan = read_video_barcodes(ctx.path)
        except ValueError as exc:  # e.g. frames narrower than the 512-pixel barcode
            report.add(ERROR, ctx.rel, f"simulated frames carry no readable barcodes: {exc}")
        else:
            return [_Frame(f.pts_s, f.ms) for f in scan.frames], scan.error
    return _decode(ctx.path)


def check_video(report: Report, ctx: FileContext) -> None:
    """Append findings about one video file entry of the manifest to `report`."""
    from rpi_logger.tools.verify import ERROR, INFO, WARNING

    rel = ctx.rel
    interrupted = ctx.interrupted or ctx.trial_interrupted
    timing = ctx.timing
    n_rows = len(timing.rows) if timing is not None else 0
    if ctx.path.stat().st_size == 0:
        if n_rows:
            report.add(
                WARNING if interrupted else ERROR, rel, f"empty file but {n_rows} timing rows"
            )
        else:
            report.add(INFO, rel, "no frames in this trial")
        return
    frames, error = _scan(report, ctx)
    if error:
        report.add(
            WARNING if interrupted else ERROR,
            rel,
            f"decodes {len(frames)} frames, then fails: {error}",
        )
    if timing is None:
        if ctx.timing_rel is None:
            report.add(ERROR, rel, "no timing file to check the frames against")
        return  # an unusable timing file has its own finding
    n_frames = len(frames)
    if n_frames > n_rows:
        report.add(
            ERROR,
            rel,
            f"{n_frames} frames decoded, {n_rows} timing rows: "
            f"{n_frames - n_rows} frames have no timing row",
        )
    elif n_frames < n_rows:
        if interrupted:
            # Frames encoded but never flushed to disk before the crash: their rows remain.
            report.add(
                WARNING,
                rel,
                f"{n_rows - n_frames} timing rows have no frame: interrupted "
                f"({n_frames} frames decoded, {n_rows} timing rows)",
            )
        else:
            report.add(
                ERROR,
                rel,
                f"{n_frames} frames decoded, {n_rows} timing rows "
                "(a complete file has one row per frame)",
            )
    if ctx.frames is not None and not interrupted and ctx.frames != n_rows:
        report.add(ERROR, rel, f"manifest says {ctx.frames} frames, timing has {n_rows}")
    pts = [f.pts_s for f in frames]
    no_pts = sum(1 for p in pts if math.isnan(p))
    if no_pts:
        report.add(ERROR, rel, f"{no_pts} frames have no presentation time")
    if any(b <= a for a, b in itertools.pairwise(pts)):
        report.add(ERROR, rel, "presentation times do not strictly increase")
    start, times = ctx.start_ns, ctx.times
    if start is None or not times:
        return
    # Row i belongs to frame i: compare every frame present with its row.
    worst = 0.0
    off = 0
    barcode_bad = 0
    for decoded, t in zip(frames, times, strict=False):
        if math.isnan(decoded.pts_s):
            continue
        err = abs(decoded.pts_s - (t - start) / 1e9)
        worst = max(worst, err)
        off += err > PTS_TOLERANCE_S
        if decoded.ms is not None and decoded.ms != ms_of(t):
            barcode_bad += 1
    if off:
        report.add(
            ERROR,
            rel,
            f"{off} frames presented more than 1 ms from their capture time "
            f"(worst {worst * 1000:.1f} ms)",
        )
    if barcode_bad:
        report.add(
            ERROR,
            rel,
            f"{barcode_bad} simulated frames show another capture time than their timing row",
        )
    report.add(INFO, rel, f"{n_frames} frames, PTS within {worst * 1e6:.0f} µs of capture time")
