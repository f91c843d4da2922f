"""The VOG module on the simulated sVOG in cycle mode: lens changes on the host clock, the
settings sent and read back, the trial's totals (TSOT, TTT)."""

from __future__ import annotations

import asyncio
import csv
import time
from pathlib import Path

import pytest

from rpi_logger.config import load_settings
from rpi_logger.framework.base import COMMON_SETTINGS, ModuleContext, SessionInfo
from rpi_logger.framework.discovery import discover_modules
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.modules.vog.module import VogModule
from rpi_logger.modules.vog.settings import SETTINGS

MODULE_DIR = Path(__file__).parents[3] / "src/rpi_logger/modules/vog"
S = 1_000_000_000
MS = 1_000_000


def test_discovered_and_off_by_default() -> None:
    spec = next(s for s in discover_modules() if s.name == "VOG")
    assert spec.valid
    assert load_settings(MODULE_DIR / "config.txt", COMMON_SETTINGS)["enabled"] is False


@pytest.mark.parametrize("kind", ["sVOG", "wVOG"])
async def test_cycle_trial_lens_changes_and_totals(tmp_path: Path, kind: str) -> None:
    """Also the wVOG's settings round trip: ``set>OPN:1200`` then ``get_cfg>`` reads it back."""
    settings = load_settings(MODULE_DIR / "config.txt", (*COMMON_SETTINGS, *SETTINGS))
    settings.update(open_ms=1200, closed_ms=1000, device_type=kind)
    module = VogModule(ModuleContext("VOG", MODULE_DIR))
    async with asyncio.TaskGroup() as tg:
        await module.configure(settings, simulate=True)
        sim = module.sim
        assert sim is not None
        runner = tg.create_task(module.run())
        module.session = SessionInfo(tmp_path, tmp_path / "VOG", time.monotonic_ns())
        try:
            window = TrialWindow(1, time.monotonic_ns() + S // 5)
            module.trial = window
            await module.start_trial(window)
            await asyncio.sleep(5.0)
            key = "OPN" if kind == "wVOG" else "MaxOpen"
            assert module.device_config[key] == "1200"  # sent and read back
            window.stop_ns = time.monotonic_ns()
            [record] = await module.stop_trial(window)
            changes = list(sim.changes)
        finally:
            await module.shutdown()
            runner.cancel()
    if kind == "wVOG":
        assert sim.merged == 0  # commands 25 ms apart: none lost in a 10 ms chunk
    with (tmp_path / f"VOG/{kind}/trial001_vog.csv").open() as f:
        rows = list(csv.DictReader(f))
    events = [r for r in rows if r["event"] != "trial_end"]
    # Open at the start, then closed 1200 ms later, open 1000 ms after that, ...
    assert [r["event"] for r in events] == ["open", "close", "open", "close", "open"][: len(events)]
    assert len(events) >= 4
    start = changes[0][0]
    assert 0 <= start - window.start_ns < 100 * MS  # do_trialStart at the trial's start
    for r, (true, is_open) in zip(events, changes, strict=False):
        assert (r["event"] == "open") == is_open and r["device_trial"] == "1"
        assert 0 < int(r["t_mono_ns"]) - true < 50 * MS  # the line's latency, host clock
    [end] = [r for r in rows if r["event"] == "trial_end"]
    open_ms, closed_ms, total = int(end["open_ms"]), int(end["closed_ms"]), int(end["total_ms"])
    assert total == open_ms + closed_ms and record.extra["totals"]["total_ms"] == total
    assert end["device_trial"] == "1" and 4500 < total < 7000
    assert open_ms >= 2 * 1200 and closed_ms >= 1000
