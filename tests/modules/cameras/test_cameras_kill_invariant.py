"""After `kill -9` of Cameras, the timing CSV on disk covers every frame of the MP4 on disk.

Real module processes under the master: the trial runs, Cameras is killed at several moments
(each restart rejoins the trial as the next part), and every part is read back as a researcher
would: decoded with PyAV, its timing CSV read with the csv module. Row i must describe frame i
(the barcode in the picture is the time in the row, and the frame's PTS is the row's `pts_us`);
there may be rows for frames that never reached the file, never a frame without its row.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from rpi_logger.core.master import Master, MasterConfig
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.simulation.barcode import ms_of, read_video_barcodes

# The runtime tells a rejoining module the trial's origin (TrialWindow.origin_ns).
ON_TRIAL_TIMELINE = "origin_ns" in {f.name for f in dataclasses.fields(TrialWindow)}

# Seconds of recording in each part before the kill: different phases against the timing CSV's
# 1 s flush tick and the MP4's 0.5 s fragments.
KILL_AFTER_S = (1.35, 1.05, 2.15)


def _rows(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):  # a line cut by the kill is not a row
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(text.splitlines()))


async def _wait_rejoined(master: Master, part: int, timeout: float = 30.0) -> None:
    entry = master.modules["Cameras"]
    async with asyncio.timeout(timeout):
        while True:
            if entry.part == part and entry.status == "ok" and entry.proc is not None:
                return
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("encoder", ["pyav", "ffmpeg"])
async def test_kill9_never_leaves_a_frame_without_its_timing_row(
    tmp_path: Path, encoder: str
) -> None:
    config = MasterConfig(
        data_dir=tmp_path,
        simulate=True,
        state_path=tmp_path / "s.json",
        overrides={
            "Cameras": {"encoder": encoder, "synthetic_count": 1, "width": 640, "height": 480}
        },
    )
    async with Master(config) as master:
        await master.start_modules(["Cameras"])
        session = await master.start_session()
        await master.start_trial()
        await asyncio.sleep(0.2)  # the lead time: recording starts now
        for part, after_s in enumerate(KILL_AFTER_S, start=1):
            if part > 1:
                await _wait_rejoined(master, part)
                await asyncio.sleep(0.2)  # its lead time
            await asyncio.sleep(after_s)
            proc = master.modules["Cameras"].proc
            assert proc is not None and proc.pid is not None
            os.kill(proc.pid, signal.SIGKILL)
        await _wait_rejoined(master, len(KILL_AFTER_S) + 1)
        await asyncio.sleep(1.5)
        trial = await master.stop_trial()
        await master.end_session()

    videos = sorted(trial["files"], key=lambda f: f["path"])
    assert len(videos) == len(KILL_AFTER_S) + 1, [f["path"] for f in videos]
    checked = 0
    for entry in videos:
        path = session.directory / entry["path"]
        rows = _rows(session.directory / entry["timing"])
        await _wait_writers_gone(path)
        scan = await asyncio.to_thread(read_video_barcodes, path)
        frames = scan.frames  # a busy machine may have got no fragment out before a kill
        checked += len(frames)
        assert len(frames) <= len(rows), (
            f"{entry['path']}: {len(frames)} frames in the video but {len(rows)} timing rows"
        )
        for i, (frame, row) in enumerate(zip(frames, rows, strict=False)):
            assert int(row["frame_index"]) == i
            assert frame.ms == ms_of(int(row["t_mono_ns"])), (entry["path"], i)
            assert abs(frame.pts_s - int(row["pts_us"]) / 1e6) < 2e-6, (entry["path"], i)
            if ON_TRIAL_TIMELINE:  # every part, rejoined or not, is timed from the trial start
                expected = (int(row["t_mono_ns"]) - trial["start"]["mono_ns"]) / 1e9
                assert abs(frame.pts_s - expected) <= 0.001, (entry["path"], i)
        if entry["status"] == "complete":  # the last part closed normally: exactly equal
            assert len(frames) == len(rows) == entry["frames"] > 0
    assert checked >= 60, f"only {checked} frames to check"


async def _wait_writers_gone(path: Path, timeout: float = 20.0) -> None:
    """A killed module's ffmpeg sees EOF and finishes the file on its own: wait for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not await asyncio.to_thread(_writing, str(path)):
            return
        await asyncio.sleep(0.2)


def _writing(path: str) -> bool:
    for p in psutil.process_iter(["cmdline"]):
        if path in (p.info["cmdline"] or []):
            return True
    return False
