"""`kill -9` of the EyeTracker mid-trial: every file it left is readable and `verify` says the
files were interrupted (the master restarts the module, which rejoins the trial as part 2)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from tests.modules.eyetracker.eyetracker_checks import SMALL_SCENE, eyetracker_master, rows

from rpi_logger.core.master import Master
from rpi_logger.simulation.barcode import ms_of, read_video_barcodes
from rpi_logger.tools.verify import verify_session


async def _wait_rejoined(master: Master, part: int, timeout: float = 30.0) -> None:
    entry = master.modules["EyeTracker"]
    async with asyncio.timeout(timeout):
        while True:
            if entry.part == part and entry.status == "ok" and entry.proc is not None:
                return
            await asyncio.sleep(0.05)


async def test_kill9_mid_trial_leaves_readable_files_reported_interrupted(tmp_path: Path) -> None:
    async with eyetracker_master(tmp_path, **SMALL_SCENE) as master:
        session = await master.start_session()
        await master.start_trial()
        await asyncio.sleep(0.2 + 2.3)
        proc = master.modules["EyeTracker"].proc
        assert proc is not None and proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        await _wait_rejoined(master, 2)
        await asyncio.sleep(1.5)
        trial = await master.stop_trial()
        await master.end_session()

    root = session.directory
    part1 = [f for f in trial["files"] if "_part" not in f["path"]]
    part2 = [f for f in trial["files"] if "_part2" in f["path"]]
    assert {Path(f["path"]).name for f in part1} >= {
        "trial001_scene.mp4",
        "trial001_gaze.csv",
        "trial001_imu.csv",
        "trial001_events.csv",
        "trial001_time_sync.csv",
    }
    assert part2, "the restarted module rejoined the trial"
    assert all(f["status"] == "interrupted" for f in part1)

    for entry in part1:
        path = root / entry["path"]
        if entry["kind"] == "csv":
            table = rows(path)  # readable up to its last flush (at most a second old)
            assert all(int(r["t_mono_ns"]) > 0 for r in table)
            if entry["stream"] in ("gaze", "imu", "time_sync"):
                assert table, entry["path"]
        else:
            timing = rows(root / entry["timing"])
            scan = await asyncio.to_thread(read_video_barcodes, path)
            assert 0 < len(scan.frames) <= len(timing)
            for frame, row in zip(scan.frames, timing, strict=False):
                assert frame.ms == ms_of(int(row["t_mono_ns"]))

    report = await asyncio.to_thread(verify_session, root)
    assert report.ok, [f for f in report.findings if f.level == "error"]
    interrupted = {
        Path(f.where).name for f in report.findings if f.message.startswith("interrupted")
    }
    assert interrupted >= {Path(f["path"]).name for f in part1}
