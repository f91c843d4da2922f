"""`rpi-logger overlay SESSION [--force]`: gaze-overlay copies of the eye tracker's scene videos.

For every `EyeTracker/<device>/trialNNN_scene.mp4` of a session, the raw video is decoded, each
frame gets the gaze point in force at its capture time (its timing row's `t_mono_ns`, the
nearest row of `trialNNN_gaze.csv` within `MAX_GAZE_AGE_NS`) drawn as a red ring, and the frame
is encoded into `trialNNN_scene_overlay.mp4` with the raw frame's own PTS: the copy lines up
with every other video of the trial as the raw one does. The raw files are never touched; the
copy is written to a temporary name and renamed when complete. A progress bar shows the frames.

`draw_gaze` is also what the module's live overlay worker draws with.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from rpi_logger.io.sinks.video import mp4_muxer_options

#: Gaze coordinates are scene-camera pixels of the Neon's 1600x1200 scene camera.
GAZE_SPACE = (1600, 1200)
#: A gaze point further than this from a frame's time is not drawn on it.
MAX_GAZE_AGE_NS = 50_000_000
US = Fraction(1, 1_000_000)
RING_RADIUS = 40  # at 1600 px width
RING_THICKNESS = 6
_RED_YUV = (81, 90, 240)  # BT.601 video range
_RED_RGB = (255, 0, 0)


def draw_gaze(image: np.ndarray, pixel_format: str, x: float, y: float) -> np.ndarray:
    """A copy of `image` (rgb24 ``(H, W, 3)`` or packed yuv420p ``(H*3/2, W)``) with a red
    ring at gaze point (x, y) in `GAZE_SPACE` pixels, scaled to the image's size."""
    out = image.copy()
    if pixel_format == "yuv420p":
        h, w = out.shape[0] * 2 // 3, out.shape[1]
    else:
        h, w = out.shape[:2]
    sx, sy = w / GAZE_SPACE[0], h / GAZE_SPACE[1]
    if not (np.isfinite(x) and np.isfinite(y)):
        return out
    cx, cy = round(x * sx), round(y * sy)
    radius = max(4, round(RING_RADIUS * sx))
    thick = max(2, round(RING_THICKNESS * sx))
    if pixel_format != "yuv420p":
        cv2.circle(out, (cx, cy), radius, _RED_RGB, thick)
        return out
    luma = out[:h]
    cv2.circle(luma, (cx, cy), radius, _RED_YUV[0], thick)
    chroma = out[h:].reshape(-1)
    cw, ch = w // 2, h // 2
    for plane, value in enumerate(_RED_YUV[1:]):
        p = chroma[plane * ch * cw : (plane + 1) * ch * cw].reshape(ch, cw)
        cv2.circle(p, (cx // 2, cy // 2), max(2, radius // 2), value, max(1, thick // 2))
    return out


class GazeTable:
    """A gaze CSV's `t_mono_ns`, `x`, `y` as arrays, for the gaze in force at a time."""

    def __init__(self, t: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        self.t, self.x, self.y = t, x, y

    @classmethod
    def read(cls, path: Path) -> GazeTable:
        ts: list[int] = []
        xs: list[float] = []
        ys: list[float] = []
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                try:
                    t, x, y = int(row["t_mono_ns"]), float(row["x"]), float(row["y"])
                except (KeyError, TypeError, ValueError):  # a line cut by a crash
                    continue
                ts.append(t)
                xs.append(x)
                ys.append(y)
        return cls(np.array(ts, dtype=np.int64), np.array(xs), np.array(ys))

    def at(self, t_mono_ns: int) -> tuple[float, float] | None:
        """The nearest gaze point to `t_mono_ns`, if one lies within `MAX_GAZE_AGE_NS`."""
        if not len(self.t):
            return None
        i = int(np.searchsorted(self.t, t_mono_ns))
        best = min(
            (j for j in (i - 1, i) if 0 <= j < len(self.t)),
            key=lambda j: abs(self.t[j] - t_mono_ns),
        )
        if abs(int(self.t[best]) - t_mono_ns) > MAX_GAZE_AGE_NS:
            return None
        return float(self.x[best]), float(self.y[best])


def _frame_times(timing: Path) -> list[int]:
    times: list[int] = []
    with open(timing, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            try:
                times.append(int(row["t_mono_ns"]))
            except (KeyError, TypeError, ValueError):
                break
    return times


def overlay_video(video: Path, timing: Path, gaze: Path, out: Path, progress: bool = True) -> int:
    """Write the overlay copy of one scene video; returns the frames written. Blocking."""
    import av
    from tqdm import tqdm

    times = _frame_times(timing)
    table = GazeTable.read(gaze)
    tmp = out.with_name(out.name + ".part")
    written = 0
    # The raw files' muxer options (µs timescale, edit list): the copy keeps their exact PTS.
    options = mp4_muxer_options(1.0)
    with av.open(str(video)) as src, av.open(str(tmp), "w", format="mp4", options=options) as dst:
        ins = src.streams.video[0]
        outs = dst.add_stream("libx264", rate=round(ins.average_rate or 30))
        outs.width, outs.height = ins.codec_context.width, ins.codec_context.height
        outs.pix_fmt = "yuv420p"
        outs.time_base = US
        outs.codec_context.time_base = US
        outs.options = {"preset": "superfast", "crf": "23", "bf": "0"}
        bar = tqdm(
            total=ins.frames or len(times) or None,
            unit="frame",
            desc=video.name,
            disable=not progress,
        )
        with bar:
            for index, frame in enumerate(src.decode(ins)):
                image = frame.to_ndarray(format="yuv420p")
                point = table.at(times[index]) if index < len(times) else None
                if point is not None:
                    image = draw_gaze(image, "yuv420p", *point)
                new = av.VideoFrame.from_ndarray(image, format="yuv420p")
                new.pts = round(frame.pts * frame.time_base / US)
                new.time_base = US
                for packet in outs.encode(new):
                    dst.mux(packet)
                written += 1
                bar.update(1)
            for packet in outs.encode():
                dst.mux(packet)
    os.replace(tmp, out)
    return written


def scene_videos(session: Path) -> list[Path]:
    """The raw scene videos of a session's eye tracker."""
    return sorted(
        p
        for p in (session / "EyeTracker").glob("*/*_scene.mp4")
        if not p.name.endswith("_overlay.mp4")
    )


def run(args: argparse.Namespace) -> int:
    """The `overlay` command: 0 when every scene video has its overlay copy."""
    session = Path(args.session)
    if not session.is_dir():
        print(f"rpi-logger overlay: {session} is not a session folder", file=sys.stderr)
        return 2
    videos = scene_videos(session)
    if not videos:
        print(f"rpi-logger overlay: no EyeTracker scene video in {session}", file=sys.stderr)
        return 1
    failed = 0
    for video in videos:
        stem = video.name.removesuffix("_scene.mp4")
        timing = video.with_name(f"{stem}_scene_timing.csv")
        gaze = video.with_name(f"{stem}_gaze.csv")
        out = video.with_name(f"{stem}_scene_overlay.mp4")
        if out.exists() and not getattr(args, "force", False):
            print(f"{out}: exists (--force replaces it)")
            continue
        missing = [p.name for p in (timing, gaze) if not p.exists()]
        if missing:
            print(f"{video}: skipped, missing {', '.join(missing)}", file=sys.stderr)
            failed += 1
            continue
        try:
            frames = overlay_video(video, timing, gaze, out, progress=sys.stderr.isatty())
        except Exception as exc:  # a damaged video: say so in one line, go on with the next
            print(f"{video}: overlay failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{out}: {frames} frames")
    return 1 if failed else 0
