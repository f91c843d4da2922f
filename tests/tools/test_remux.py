"""`rpi-logger remux`: timestamps rebuilt from the timing CSV, packets copied untouched."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from tests.tools.readonly import read_only_dir

from rpi_logger.modules.cameras.frames import Frame
from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource
from rpi_logger.simulation.barcode import ms_of, read_video_barcodes
from rpi_logger.tools import remux as rm


def _frames(n: int, t0: int) -> list[Frame]:
    src = SyntheticSource(width=640, height=480)
    rng = np.random.default_rng(3)
    t, out = t0, []
    for k in range(n):
        out.append(src.make_frame(k, t))
        t += int(rng.integers(15, 70)) * 1_000_000 + int(rng.integers(0, 999)) * 1000
    return out


def _encode(path: Path, frames: list[Frame], fmt: str) -> None:
    """A video with the wrong times: nominal 25 fps (mp4) or none at all (raw h264)."""
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "bf": "0"})
        s.width, s.height, s.pix_fmt = 640, 480, "yuv420p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f.image, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 25)
            out.mux(s.encode(vf))
        out.mux(s.encode(None))


def _write_timing(path: Path, frames: list[Frame], truncate: bool = False) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["frame_index", "t_mono_ns", "t_wall_unix", "t_device_ns"])
        for i, f in enumerate(frames):
            w.writerow([i, f.t_mono_ns, f"{f.t_wall_unix:.6f}", ""])
        if truncate:
            fh.write(f"{len(frames)},12345")  # a writer killed mid-line


def _check(out: Path, frames: list[Frame], start: int) -> None:
    scan = read_video_barcodes(out)
    assert scan.error is None and len(scan.frames) == len(frames)
    for d, f in zip(scan.frames, frames, strict=True):
        assert (d.counter, d.ms) == (f.sequence, ms_of(f.t_mono_ns))  # same pictures
        assert abs(d.pts_s - (f.t_mono_ns - start) / 1e9) <= 1e-3


@pytest.mark.parametrize("kind", ["h264", "mp4"])
def test_remux_restores_exact_times(tmp_path: Path, kind: str) -> None:
    start = 3_000_000_000_000
    frames = _frames(40, start + 170_000_000)
    video = tmp_path / f"cam.{kind}"
    _encode(video, frames, kind)
    _write_timing(tmp_path / "cam_timing.csv", frames)
    res = rm.remux(video, progress=False, trial_start_mono_ns=start)  # default CSV and output
    assert res.out == tmp_path / "cam_remux.mp4" and res.frames == 40
    assert res.trial_start_source == "argument"
    _check(res.out, frames, start)
    span = (frames[-1].t_mono_ns - frames[0].t_mono_ns) / 1e9
    assert res.mean_fps == pytest.approx(39 / span)  # (N - 1) / (t_last - t_first)


def test_trial_start_from_session_manifest(tmp_path: Path) -> None:
    start = 4_000_000_000_000
    frames = _frames(20, start + 200_000_000)
    cam_dir = tmp_path / "session_x" / "Cameras" / "cam0"
    cam_dir.mkdir(parents=True)
    manifest = {
        "trials": [
            {"number": 1, "start": {"mono_ns": 1, "wall_unix": 0.0}},
            {"number": 2, "start": {"mono_ns": start, "wall_unix": 0.0}},
        ]
    }
    (tmp_path / "session_x" / "session.json").write_text(json.dumps(manifest))
    video = cam_dir / "trial002_cam0.mp4"
    _encode(video, frames, "mp4")
    _write_timing(cam_dir / "trial002_cam0_timing.csv", frames, truncate=True)
    out = tmp_path / "fixed.mp4"
    res = rm.remux(video, out=out, progress=False)
    assert res.trial_start_source == "manifest" and res.truncated_last_row
    _check(out, frames, start)


def test_without_manifest_first_frame_is_zero(tmp_path: Path) -> None:
    frames = _frames(10, 9_000_000_000)
    video = tmp_path / "v.h264"
    _encode(video, frames, "h264")
    _write_timing(tmp_path / "v_timing.csv", frames)
    res = rm.remux(video, progress=False)
    assert res.trial_start_source == "first frame" and res.first_pts_s == 0.0
    _check(res.out, frames, frames[0].t_mono_ns)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    rm.add_arguments(parser)
    return rm.run(parser.parse_args(argv))


def test_cli_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = _frames(12, 10**12)
    video = tmp_path / "v.mp4"
    _encode(video, frames, "mp4")

    assert _cli([str(tmp_path / "missing.mp4"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "video not found" in err and "Traceback" not in err

    assert _cli([str(video), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "timing file not found" in err and "v_timing.csv" in err

    _write_timing(tmp_path / "short.csv", frames[:10])
    assert _cli([str(video), "--timing", str(tmp_path / "short.csv"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "row count mismatch" in err and "12 frames" in err and "10 rows" in err
    assert "Traceback" not in err

    # A crash-shortened pairing can be asked for explicitly.
    out = tmp_path / "ok.mp4"
    assert (
        _cli(
            [
                str(video),
                "--timing",
                str(tmp_path / "short.csv"),
                "-o",
                str(out),
                "--allow-mismatch",
                "--no-progress",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "wrote" in captured.out and len(read_video_barcodes(out).frames) == 10

    (tmp_path / "bad.csv").write_text("frame_index,t_wall_unix\n0,1.0\n")
    assert _cli([str(video), "--timing", str(tmp_path / "bad.csv"), "--no-progress"]) == 1
    assert "no column t_mono_ns" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["read-only folder", "below a file", "a folder"])
def test_an_unwritable_output_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    frames = _frames(5, 10**12)
    video = tmp_path / "v.mp4"
    _encode(video, frames, "mp4")
    _write_timing(tmp_path / "v_timing.csv", frames)
    with contextlib.ExitStack() as stack:
        if where == "read-only folder":
            folder = stack.enter_context(read_only_dir(tmp_path / "ro"))
            out, expected = folder / "out.mp4", f"cannot write {folder / 'out.mp4'}: "
        elif where == "below a file":
            (tmp_path / "plain").write_text("x")
            out = tmp_path / "plain" / "out.mp4"
            expected = f"cannot write {out}: "
        else:
            out = tmp_path / "folder.mp4"
            out.mkdir()
            expected = f"output {out} is a folder"
        code = _cli([str(video), "-o", str(out), "--no-progress"])
        err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith(f"rpi-logger remux: error: {expected}"), line
    assert not list(tmp_path.glob("**/*.part"))


def test_a_hand_edited_manifest_never_breaks_remux(tmp_path: Path) -> None:
    frames = _frames(5, 10**12)
    cam_dir = tmp_path / "session_x" / "Cameras" / "cam0"
    cam_dir.mkdir(parents=True)
    video = cam_dir / "trial001_cam0.mp4"
    _encode(video, frames, "mp4")
    _write_timing(cam_dir / "trial001_cam0_timing.csv", frames)
    manifest = tmp_path / "session_x" / "session.json"
    for trials in (
        '["x"]',
        '[{"number": 1, "start": [1]}]',
        '{"1": 2}',
        '[{"number": 1, "start": {"mono_ns": 1e400}}]',
        "[" * 100_000,
    ):
        manifest.write_text(f'{{"trials": {trials}}}')
        assert rm.trial_start_from_manifest(video) is None


async def test_remux_async_keeps_the_loop_running(tmp_path: Path) -> None:
    frames = _frames(60, 10**12)
    video = tmp_path / "a.mp4"
    _encode(video, frames, "mp4")
    _write_timing(tmp_path / "a_timing.csv", frames)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(ticker())
        t = time.perf_counter()
        res = await rm.remux_async(video, trial_start_mono_ns=10**12 - 50_000_000)
        elapsed = time.perf_counter() - t
        task.cancel()
    assert res.frames == 60
    # The loop kept ticking while remuxing (a blocked loop gets no tick in at all). A tick
    # takes at least 1 ms, often ~1.1 ms: allow for that and for the rounding of short runs.
    assert ticks >= int(0.3 * elapsed / 0.001) - 1
    _check(res.out, frames, 10**12 - 50_000_000)
