"""Video checks for `rpi-logger verify`: decodable to the end, one timing row per frame, PTS
equal to the timing file's capture times (SPEC §5, within 1 ms), strictly increasing. For
simulated cameras the barcodes are read too: each frame shows the capture time its row claims.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from rpi_logger.modules.cameras.barcode import ms_of, read_video_barcodes

PTS_TOLERANCE_S = 1e-3


def check_video(
    report: Any, session_dir: Path, entry: dict[str, Any], trial: dict[str, Any] | None, timing: Any
) -> None:
    """Append findings about one video file entry of the manifest to `report`."""
    from rpi_logger.tools.verify import ERROR, INFO, WARNING

    rel = entry["path"]
    path = session_dir / rel
    interrupted = entry.get("status") in ("interrupted", "recording")
    rows = timing.rows if timing is not None else []
    if path.stat().st_size == 0:
        if rows:
            report.add(
                WARNING if interrupted else ERROR, rel, f"empty file but {len(rows)} timing rows"
            )
        else:
            report.add(INFO, rel, "no frames in this trial")
        return
    scan = read_video_barcodes(path)
    frames = scan.frames
    if scan.error:
        report.add(
            WARNING if interrupted else ERROR,
            rel,
            f"decodes {len(frames)} frames, then fails: {scan.error}",
        )
    if timing is None:
        report.add(ERROR, rel, "no timing file to check the frames against")
        return
    n_rows = len(rows)
    if len(frames) != n_rows:
        # After a crash the file ends at its last complete fragment; rows may run further.
        level = WARNING if interrupted and len(frames) <= n_rows else ERROR
        report.add(level, rel, f"{len(frames)} frames decoded, {n_rows} timing rows")
    if entry.get("frames") is not None and not interrupted and entry["frames"] != n_rows:
        report.add(ERROR, rel, f"manifest says {entry['frames']} frames, timing has {n_rows}")
    pts = [f.pts_s for f in frames]
    if any(b <= a for a, b in itertools.pairwise(pts)):
        report.add(ERROR, rel, "presentation times do not strictly increase")
    times = timing.column("t_mono_ns") or []
    start = trial["start"]["mono_ns"] if trial else None
    if start is None or not times:
        return
    worst = 0.0
    off = 0
    barcode_bad = 0
    simulated = bool(entry.get("simulated"))
    for decoded, t in zip(frames, times, strict=False):
        err = abs(decoded.pts_s - (int(t) - start) / 1e9)
        worst = max(worst, err)
        off += err > PTS_TOLERANCE_S
        if simulated and decoded.ms != ms_of(int(t)):
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
    report.add(INFO, rel, f"{len(frames)} frames, PTS within {worst * 1e6:.0f} µs of capture time")
