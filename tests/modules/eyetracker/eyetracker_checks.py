"""Shared checks of the EyeTracker's files: a master recording the simulated Neon, and readers
of what it wrote."""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from rpi_logger.core.master import Master, MasterConfig
from rpi_logger.modules.eyetracker.backends.simulated import gaze_xy

#: A small scene for the tests that do not check it (1600x1200 H.264 is costly on 2 cores).
SMALL_SCENE = {"sim_scene_width": 640, "sim_scene_height": 480, "preview_fps": 0}


@asynccontextmanager
async def eyetracker_master(tmp_path: Path, **settings: Any) -> AsyncIterator[Master]:
    config = MasterConfig(
        data_dir=tmp_path,
        simulate=True,
        state_path=tmp_path / "state.json",
        overrides={"EyeTracker": settings},
    )
    async with Master(config) as master:
        failed = await master.start_modules(["EyeTracker"])
        assert not any(failed.values()), failed
        yield master


async def record_trial(master: Master, seconds: float) -> tuple[Path, dict[str, Any]]:
    """One session with one trial of `seconds`; returns the session folder and the trial."""
    session = await master.start_session()
    started = await master.start_trial()
    stop_ns = started["start"]["mono_ns"] + round(seconds * 1e9)
    await asyncio.sleep(max(0.0, (stop_ns - time.monotonic_ns()) / 1e9 - 0.5))
    trial = await master.stop_trial(at_mono_ns=stop_ns)
    await master.end_session()
    return session.directory, trial


def rows(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):  # a line cut by a kill is not a row
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(text.splitlines()))


def by_stream(trial: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["stream"]: f for f in trial["files"]}


def gaze_error_px(gaze_rows: list[dict[str, str]]) -> float:
    """The largest distance of a row's x, y from design.md §7's gaze at the row's own t_mono_ns."""
    worst = 0.0
    for row in gaze_rows:
        x, y = gaze_xy(int(row["t_mono_ns"]))
        worst = max(worst, abs(float(row["x"]) - x), abs(float(row["y"]) - y))
    return worst
