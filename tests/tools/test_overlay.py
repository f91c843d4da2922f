"""`rpi-logger overlay`: a gaze-overlay copy of each scene video, frame for frame, same PTS."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import av
import numpy as np
from tests.helpers import run_cli

from rpi_logger.io.clock import mono_to_wall
from rpi_logger.io.sinks.video import Mp4Sink, VideoSettings
from rpi_logger.modules.eyetracker.backends.simulated import gaze_xy
from rpi_logger.modules.eyetracker.streams.gaze import COLUMNS as GAZE_COLUMNS
from rpi_logger.samples import Frame
from rpi_logger.simulation.barcode import ms_of, read_video_barcodes
from rpi_logger.simulation.scene import SceneRenderer
from rpi_logger.tools import overlay

W, H = 640, 480


def _session(tmp_path: Path, frames: int = 30) -> Path:
    """A session folder holding one raw scene video (variable frame intervals) and its gaze."""
    folder = tmp_path / "session_x" / "EyeTracker" / "neon"
    folder.mkdir(parents=True)
    t0 = 50_000_000_000_000
    renderer = SceneRenderer(W, H, "yuv420p")
    sink = Mp4Sink(
        folder / "trial001_scene.mp4",
        folder / "trial001_scene_timing.csv",
        width=W,
        height=H,
        fps=30,
        origin_ns=t0,
        settings=VideoSettings(preset="ultrafast"),
    )
    sink.open()
    t = t0 + 500_000
    for k in range(frames):
        sink.write([Frame(renderer.render(k, t), t, mono_to_wall(t), None, k, "yuv420p")])
        t += (33 if k % 3 else 34) * 1_000_000
    sink.close()
    with open(folder / "trial001_gaze.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(GAZE_COLUMNS)
        for g in range(t0, t + 5_000_000, 5_000_000):
            x, y = gaze_xy(g)
            writer.writerow([g, mono_to_wall(g), g + 7, x, y, 1] + [""] * (len(GAZE_COLUMNS) - 6))
    return tmp_path / "session_x"


def _pts_and_images(path: Path) -> tuple[list[int], list[np.ndarray]]:
    pts, images = [], []
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            pts.append(frame.pts)
            images.append(frame.to_ndarray(format="rgb24"))
    return pts, images


def test_overlay_copies_every_frame_with_its_pts_and_the_gaze_drawn(tmp_path: Path) -> None:
    session = _session(tmp_path)
    args = argparse.Namespace(session=session, force=False)
    assert overlay.run(args) == 0
    folder = session / "EyeTracker" / "neon"
    raw, out = folder / "trial001_scene.mp4", folder / "trial001_scene_overlay.mp4"
    raw_pts, raw_images = _pts_and_images(raw)
    out_pts, out_images = _pts_and_images(out)
    assert len(out_pts) == len(raw_pts) == 30
    with av.open(str(raw)) as a, av.open(str(out)) as b:
        ta, tb = a.streams.video[0].time_base, b.streams.video[0].time_base
    assert [p * ta for p in raw_pts] == [p * tb for p in out_pts]  # the same PTS, exactly
    # The barcodes (the capture times) survive; a red ring sits on the gaze of each frame.
    scan = read_video_barcodes(out)
    with open(folder / "trial001_scene_timing.csv") as f:
        times = [int(r["t_mono_ns"]) for r in csv.DictReader(f)]
    assert [fr.ms for fr in scan.frames] == [ms_of(t) for t in times]
    for image, raw_image, t in zip(out_images, raw_images, times, strict=True):
        x, y = gaze_xy(t)
        cx, cy = round(x * W / 1600), round(y * H / 1200)
        r = overlay.RING_RADIUS * W / 1600
        changed = np.abs(image.astype(int) - raw_image.astype(int)).sum(axis=2) > 120
        ys, xs = np.nonzero(changed)
        assert len(xs) > 20, "no ring drawn"
        dist = np.hypot(xs - cx, ys - cy)
        assert abs(np.median(dist) - r) <= 4, (np.median(dist), r)  # a ring round the gaze
        assert dist.max() <= r + 8

    # Made once: a second run leaves it, --force replaces it (here through the CLI).
    mtime = out.stat().st_mtime_ns
    assert overlay.run(args) == 0 and out.stat().st_mtime_ns == mtime
    result = run_cli("overlay", str(session), "--force")
    assert result.returncode == 0, result.stderr
    assert out.stat().st_mtime_ns != mtime
    assert "30 frames" in result.stdout


def test_overlay_of_a_folder_without_scene_video_fails_in_one_line(tmp_path: Path) -> None:
    result = run_cli("overlay", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no EyeTracker scene video" in result.stderr
