"""The DRT module on the simulated sDRT: a 45 s trial against design.md §7's host schedule, settings
read back, the manual stimulus command, discovery."""

from __future__ import annotations

import asyncio
import csv
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from rpi_logger.config import load_settings
from rpi_logger.framework.base import COMMON_SETTINGS, ModuleContext, SessionInfo
from rpi_logger.framework.discovery import discover_modules
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.modules.drt.module import DrtModule
from rpi_logger.modules.drt.settings import SETTINGS
from rpi_logger.simulation.serial.sdrt import SimulatedSDRT, response_ms

# Timed against the clock with every frame or onset counted: alone on the cores (test.sh).
pytestmark = pytest.mark.exclusive

MODULE_DIR = Path(__file__).parents[3] / "src/rpi_logger/modules/drt"
S = 1_000_000_000


def defaults(**overrides: Any) -> dict[str, Any]:
    return {**load_settings(MODULE_DIR / "config.txt", (*COMMON_SETTINGS, *SETTINGS)), **overrides}


@asynccontextmanager
async def running(tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[DrtModule, Any]]:
    module = DrtModule(ModuleContext("DRT", MODULE_DIR))
    async with asyncio.TaskGroup() as tg:
        await module.configure(defaults(**overrides), simulate=True)
        sim = module.sim
        runner = tg.create_task(module.run())
        module.session = SessionInfo(tmp_path, tmp_path / "DRT", time.monotonic_ns())
        try:
            yield module, sim
        finally:
            await module.shutdown()
            runner.cancel()


async def record(module: DrtModule, seconds: float) -> tuple[TrialWindow, list]:
    window = TrialWindow(1, time.monotonic_ns() + S // 5)
    module.trial = window
    await module.start_trial(window)
    live = None
    stop = window.start_ns + round(seconds * S)
    while time.monotonic_ns() < stop:
        await asyncio.sleep(0.5)
        live = module.status()["devices"][0]["trial"] or live
    window.stop_ns = stop
    records = await module.stop_trial(window)
    module.trial = None
    return window, [records, live]


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_discovered_and_off_by_default() -> None:
    spec = next(s for s in discover_modules() if s.name == "DRT")
    assert spec.valid
    assert defaults()["enabled"] is False


async def test_45s_trial_onsets_on_the_host_schedule(tmp_path: Path) -> None:
    """The DRT must-show, in full: 45 s on the simulated sDRT."""
    async with running(tmp_path) as (module, sim):
        assert isinstance(sim, SimulatedSDRT)
        window, (records, live) = await record(module, 45)
        onsets = list(sim.onsets)
    folder = tmp_path / "DRT" / "sDRT"
    drt = rows(folder / "trial001_drt.csv")
    sync = rows(folder / "trial001_time_sync.csv")
    assert [r["stimulus"] for r in drt] == [str(k) for k in range(1, len(drt) + 1)]
    assert len(drt) >= 9  # the 10th's onset may fall after 45 s when the start is late
    mapped_err, arrival_err, rt_err = [], [], []
    for r in drt:
        k = int(r["stimulus"])
        true = onsets[k - 1]
        assert window.start_ns <= true < window.stop_ns
        mapped_err.append(int(r["t_mono_ns"]) - true)
        arrival_err.append(int(r["t_arrival_ns"]) - true)
        expected = response_ms(k)
        if expected is None:
            assert (r["result"], r["rt_ms"], r["clicks"]) == ("miss", "", "0"), r
        else:
            assert (r["result"], r["clicks"]) == ("hit", "1"), r
            rt_err.append(int(r["rt_ms"]) - expected)
    worst = max(mapped_err, key=abs)
    print(
        f"\nDRT 45 s, {len(drt)} stimuli: largest onset error mapped {worst / 1e6:+.3f} ms, "
        f"arrival times {max(arrival_err) / 1e6:+.3f} ms (smallest {min(arrival_err) / 1e6:+.3f}"
        f" ms); largest RT error {max(rt_err, key=abs)} ms; fit {sync[-1]['source']}"
    )
    # The target: within 2 ms (offline, onset_accuracy.py, 300 ideal 45 s runs: worst onset per
    # run median 0.96 ms, max 1.98 ms, none over 2 ms). The envelope sits at the smallest
    # latency of any line, which the simulator makes 0.5 ms but a busy host's late reads make
    # more (seen in the smallest arrival error): only that excess is allowed on top.
    host_excess = max(0, min(arrival_err) - 500_000)
    assert abs(worst) <= 2_000_000 + host_excess, (mapped_err, host_excess)
    assert all(abs(e) <= 1 for e in rt_err), rt_err
    assert min(arrival_err) >= 500_000  # arrival times are always late: what the fit removes
    assert len(sync) >= len(drt)  # the fit at each pair
    by_path = {Path(rec.path).name: rec for rec in records}
    assert by_path["trial001_drt.csv"].frames == len(drt)
    assert live is not None and live["stimuli"] >= 1  # hit rate and mean RT while recording
    hits = [r for r in drt if r["result"] == "hit"]
    assert live["hit_rate"] is not None and live["mean_rt_ms"] is not None
    assert len(hits) == len(drt) - sum(1 for r in drt if int(r["stimulus"]) % 7 == 0)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 (polling the module's state, as the UI does)
            await asyncio.sleep(0.05)


async def test_settings_read_back_and_manual_stimulus(tmp_path: Path) -> None:
    async with running(tmp_path, iso_preset=False, stim_dur_ms=700, intensity=128) as (m, sim):
        await until(lambda: m.tracker.config.get("stimDur") == "700")  # the cfg> reply
        assert m.tracker.config["intensity"] == "128"
        await m.cmd_stim_on()
        await until(lambda: m.status()["devices"][0]["stimulus_on"])
        await m.cmd_stim_off()
        await until(lambda: not m.status()["devices"][0]["stimulus_on"])
        assert sim.config["stimDur"] == 700


async def test_unplug_and_malformed_lines_mid_trial(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """About 19 s on the sDRT: after the first stimulus, binary noise, a truncated ``trl>`` and
    a flood of junk lines (counted, logged a few times, never fatal), then the pty closed for
    3 s: reconnected, the gap in the manifest record, the experiment restarted (``run`` 2, its
    counter from 1 again), rows on both sides mapped onto the host schedule."""
    caplog.set_level(logging.WARNING)
    async with running(tmp_path) as (module, sim):
        window = TrialWindow(1, time.monotonic_ns() + S // 5)
        module.trial = window
        await module.start_trial(window)
        await until(lambda: module.figures.as_dict()["stimuli"] >= 1, timeout=12)
        sim.send_raw(b"\xff\xfe\x00\x81garbage\r\n")
        sim.send_raw(b"trl>12,3\r\n" + b"zzz>junk\r\n" * 300)
        await asyncio.sleep(0.3)
        unplugged = time.monotonic_ns()
        sim.unplug(3.0)
        await until(lambda: any(s.run == 2 for s in module._waiting), timeout=14)
        window.stop_ns = time.monotonic_ns()
        records = await module.stop_trial(window)
        module.trial = None
        status = module.status()["devices"][0]
        onsets = list(sim.onsets)
        starts = sim.commands.count("exp_start")
    assert status["connected"] and status["disconnects"] == 1 and status["error"] is None
    assert status["malformed"] >= 100  # a flood may also lose lines in the hand-off
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) <= 4
    drt_record = next(r for r in records if Path(r.path).name == "trial001_drt.csv")
    [gap] = drt_record.extra["gaps"]
    assert gap["reason"].startswith("disconnected") and drt_record.extra["disconnects"] == 1
    assert gap["start_mono_ns"] < unplugged + S and gap["end_mono_ns"] > unplugged + 3 * S
    drt = rows(tmp_path / "DRT/sDRT/trial001_drt.csv")
    assert starts == 2  # exp_start again after the re-plug: the device back in the trial
    # The stimulus lit as the cable was pulled may still come (its trl> line was on its way).
    assert [(r["run"], r["stimulus"]) for r in drt] in (
        [("1", "1"), ("2", "1")],
        [("1", "1"), ("1", "2"), ("2", "1")],
    )
    first, last = drt[0], drt[-1]
    assert int(first["t_mono_ns"]) < gap["start_mono_ns"] < gap["end_mono_ns"]
    assert int(last["t_mono_ns"]) > gap["end_mono_ns"]
    times = [int(r["t_mono_ns"]) for r in drt]
    assert times == sorted(times)
    for row, true in zip((first, last), (onsets[0], onsets[-1]), strict=True):
        assert abs(int(row["t_mono_ns"]) - true) < 5_000_000  # a few pairs only
        assert row["result"] == "hit" and int(row["rt_ms"]) == response_ms(1)
