"""The Cameras module end to end, on synthetic cameras: what a researcher gets on disk."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.helpers import run_cli
from tests.io.encoders.camera_video_checks import ffprobe_pts

from rpi_logger.core.master import Master, MasterConfig
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.modules.cameras.frames import CameraInfo, FrameSource
from rpi_logger.modules.cameras.pipeline import CameraPipeline
from rpi_logger.samples import Frame
from rpi_logger.simulation.barcode import ms_of, read_video_barcodes
from rpi_logger.tools.verify import verify_session

# Timed against the clock with every frame or onset counted: alone on the cores (test.sh).
pytestmark = pytest.mark.exclusive


def _timing(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@contextlib.contextmanager
def busy_cpus() -> Iterator[None]:
    """Every core kept busy by another process (spinning Python), for the block's duration."""
    spin = [sys.executable, "-c", "while True: pass"]
    procs = [subprocess.Popen(spin) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("encoder", ["pyav", "ffmpeg"])
def test_five_second_trial_two_cameras_every_frame_exact(tmp_path: Path, encoder: str) -> None:
    """Even with every core busy with another process, nothing is lost: the simulated cameras
    render on their own threads, on the host clock, whatever the event loop does."""
    with busy_cpus():
        result = run_cli(
            "record",
            "--modules",
            "cameras",
            "--duration",
            "5",
            "--simulate",
            "--data-dir",
            str(tmp_path),
            "--set",
            f"cameras.encoder={encoder}",
        )
    assert result.returncode == 0, result.stderr
    session = Path(result.stdout.strip().splitlines()[-1])
    manifest = json.loads((session / "session.json").read_text())
    [trial] = manifest["trials"]
    start = trial["start"]["mono_ns"]
    assert len(trial["files"]) == 2
    for entry in trial["files"]:
        assert entry["kind"] == "video" and entry["encoder"] == encoder
        assert (entry["width"], entry["height"]) == (1280, 720)
        rows = _timing(session / entry["timing"])
        scan = read_video_barcodes(session / entry["path"])
        assert scan.error is None
        frames = scan.frames
        # Every frame of the trial is in the file: 5 s at 30 fps (a 151st slot only fits when
        # one falls within 50 ns of the start), none dropped, none skipped.
        assert len(frames) == len(rows) == entry["frames"]
        assert 150 <= len(frames) <= 151, (len(frames), entry["dropped_by_cause"])
        assert entry["dropped"] == 0 and not any(entry["dropped_by_cause"].values()), entry
        counters = [f.counter for f in frames]
        assert counters == list(range(counters[0], counters[0] + len(counters)))
        for frame, row in zip(frames, rows, strict=True):
            t = int(row["t_mono_ns"])
            assert frame.ms == ms_of(t)  # the picture is the one captured at t_mono_ns
            assert abs(frame.pts_s - (t - start) / 1e9) <= 0.001
            assert int(row["sequence"]) == frame.counter
        assert [int(r["frame_index"]) for r in rows] == list(range(len(rows)))
        assert all(start <= int(r["t_mono_ns"]) < trial["stop"]["mono_ns"] for r in rows)
        if encoder == "ffmpeg":
            probed = ffprobe_pts(session / entry["path"])
            assert len(probed) == len(rows)
            assert all(abs(p - f.pts_s) < 1e-4 for p, f in zip(probed, frames, strict=True))
    check = run_cli("verify", str(session))
    assert check.returncode == 0, check.stdout


@pytest.mark.parametrize("encoder", ["pyav", "ffmpeg"])
async def test_kill9_mid_trial_leaves_a_decodable_video(tmp_path: Path, encoder: str) -> None:
    config = MasterConfig(
        data_dir=tmp_path,
        simulate=True,
        state_path=tmp_path / "s.json",
        overrides={"Cameras": {"encoder": encoder}},
    )
    async with Master(config) as master:
        await master.start_modules(["Cameras"])
        session = await master.start_session()
        trial = await master.start_trial()
        await asyncio.sleep(0.2 + 3.0)
        proc = master.modules["Cameras"].proc
        assert proc is not None and proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        killed_ns = time.monotonic_ns()
        # The restart rejoins the trial on its own (the master keeps trials on time meanwhile).
        entry = master.modules["Cameras"]
        async with asyncio.timeout(30):
            while True:
                if entry.part == 2 and entry.status == "ok":
                    break
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        trial = await master.stop_trial()
        await master.end_session()
    assert trial["status"] == "interrupted"
    first = [f for f in trial["files"] if "_part2_" not in f["path"]]
    rejoined = [f for f in trial["files"] if "_part2_" in f["path"]]
    assert len(first) == 2 and {f["status"] for f in first} == {"interrupted"}
    # Cameras restart on a crash (restart_on_crash = true) and rejoin the trial.
    assert len(rejoined) == 2 and {f["status"] for f in rejoined} == {"complete"}
    for entry in first:
        scan = read_video_barcodes(session.directory / entry["path"])
        assert len(scan.frames) > 30
        last_ms = scan.frames[-1].ms
        lost_ms = (ms_of(killed_ns) - last_ms) % 2**32
        # What a kill may take: the frames still queued for the encoder (up to a second's
        # worth, more of them on a busy machine) plus the last unflushed fragment and rows.
        assert lost_ms <= 2000, f"only frames up to {lost_ms} ms before the kill survived"
        # Intact and in order: frame i is the frame of timing row i (a starved simulated
        # camera may skip a capture slot; the recording path itself loses nothing).
        rows = _timing(session.directory / entry["timing"])
        counters = [f.counter for f in scan.frames]
        assert counters == [int(r["sequence"]) for r in rows[: len(counters)]]
        assert all(b > a for a, b in itertools.pairwise(counters))
    report = verify_session(session.directory)
    assert any("interrupted" in f.message for f in report.findings)


async def test_previews_are_small_jpegs(tmp_path: Path) -> None:
    config = MasterConfig(data_dir=tmp_path, simulate=True, state_path=tmp_path / "s.json")
    previews: list[dict] = []
    async with Master(config) as master:
        master.events.add_listener(
            lambda ev: previews.append(ev) if ev["event"] == "preview" else None
        )
        await master.start_modules(["Cameras"])
        await asyncio.sleep(1.5)
    cameras = {p["data"]["camera"] for p in previews}
    assert cameras == {"synthetic0", "synthetic1"}
    assert 4 <= len(previews) <= 2 * 1.5 * 5 + 2  # about 5 per second per camera
    data = previews[-1]["data"]
    image = cv2.imdecode(
        np.frombuffer(base64.b64decode(data["jpeg_base64"]), np.uint8), cv2.IMREAD_COLOR
    )
    assert image.shape == (180, 320, 3) == (data["height"], data["width"], 3)


def test_no_camera_found_offers_simulated_ones(tmp_path: Path) -> None:
    """This machine has no camera: `auto` says so and records simulated cameras, labelled."""
    result = run_cli(
        "record", "--modules", "cameras", "--duration", "0.5", "--data-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert "no camera found" in result.stderr and "offering simulated cameras" in result.stderr
    manifest = json.loads((Path(result.stdout.split()[-1]) / "session.json").read_text())
    assert manifest["simulated"] is True
    assert all(d["simulated"] for d in manifest["modules"]["Cameras"]["devices"])


def test_bad_camera_setting_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli(
        "record",
        "--modules",
        "cameras",
        "--duration",
        "1",
        "--simulate",
        "--data-dir",
        str(tmp_path),
        "--set",
        "cameras.fps=fast",
    )
    assert result.returncode != 0
    assert "'fps'" in result.stderr and "a number between 1 and 240" in result.stderr
    assert "Traceback" not in result.stderr


class _GappySource(FrameSource):
    """Delivers frames whose device sequence skips 3 and 4, as a camera that dropped two."""

    backend = "synthetic"

    def __init__(self) -> None:
        super().__init__(CameraInfo("gappy", "gappy", 64, 32, 30.0, "synthetic", True))

    def _device_open(self) -> CameraInfo:
        return self.info

    def _device_loop(self) -> None:
        image = np.zeros((32, 64, 3), np.uint8)
        for seq in (0, 1, 2, 5, 6):
            self._emit(Frame(image, 1_000_000 + seq * 33_333_333, 0.0, None, seq))

    def _device_close(self) -> None:
        return None


async def test_device_sequence_gaps_are_counted_as_drops(tmp_path: Path) -> None:
    source = _GappySource()
    pipeline = CameraPipeline(source, {"encoder": "pyav"})
    pipeline._opened.set()  # as capture() does once the source is open
    await pipeline.start_trial(TrialWindow(1, 0), tmp_path)
    async for frame in source.frames():
        pipeline._on_sample(frame)
    record = await pipeline.stop_trial()
    assert record is not None and record.timing is not None
    assert record.frames == 5
    assert record.extra["dropped_by_cause"]["device_sequence_gap"] == 2
    assert record.dropped == 2
    assert [r["sequence"] for r in _timing(record.timing)] == ["0", "1", "2", "5", "6"]
