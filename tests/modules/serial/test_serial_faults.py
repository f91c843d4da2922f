"""The serial modules (DRT, VOG, GPS) under faults at the edges, through the real master and
real module processes: kill -9 mid-trial, SIGSTOP, the simulated devices unplugged exactly at
a trial's start and at its stop. One session holds them all (each trial one fault) to keep the
wall time down; each test asserts one thing a user cares about."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rpi_logger.config import load_settings
from rpi_logger.core.master import Master, MasterConfig
from rpi_logger.framework.base import COMMON_SETTINGS, CommandError, ModuleContext
from rpi_logger.modules.gps.module import GpsModule
from rpi_logger.modules.gps.settings import SETTINGS
from rpi_logger.tools.verify import verify_session

S = 1_000_000_000
SERIAL = ["DRT", "VOG", "GPS"]
GPS_FIELDS = 16  # design.md §5's columns, pdop, vdop, valid, age_s, stale
GPS_DIR = Path(__file__).parents[3] / "src/rpi_logger/modules/gps"
UNPLUGGED = "unplugged (the port returned no data)"  # the transport's reason for a closed pty


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@dataclass
class Session:
    """What the shared session did and saw."""

    directory: Path
    manifest: dict[str, Any]
    marks: dict[str, int] = field(default_factory=dict)  # host mono ns of each fault
    hung_after_s: float | None = None
    vog_status_after_stop: str = ""
    restarts_seen: dict[str, int] = field(default_factory=dict)

    def trial(self, number: int) -> dict[str, Any]:
        return self.manifest["trials"][number - 1]

    def files(self, number: int, module: str) -> list[dict[str, Any]]:
        return [f for f in self.trial(number)["files"] if f["module"] == module]


async def _wait(predicate: Any, timeout: float, period: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(period)
    return bool(predicate())


async def _sleep_until(t_mono_ns: int) -> None:
    await asyncio.sleep(max(0.0, (t_mono_ns - time.monotonic_ns()) / 1e9))


async def _record_faults(tmp_path: Path) -> Session:
    config = MasterConfig(data_dir=tmp_path / "data", simulate=True, state_path=tmp_path / "s")
    async with Master(config) as master:
        failed = await master.start_modules(SERIAL)
        assert failed == dict.fromkeys(SERIAL), failed
        session = await master.start_session("serial_faults")
        marks: dict[str, int] = {}
        result = Session(session.directory, {}, marks)

        # Trial 1: kill -9 of the GPS module 2.5 s in; the others go on, GPS comes back.
        trial = await master.start_trial()
        start = trial["start"]["mono_ns"]
        await _sleep_until(start + 5 * S // 2)
        gps = master.modules["GPS"].proc
        assert gps is not None and gps.pid is not None
        os.kill(gps.pid, signal.SIGKILL)
        marks["kill"] = time.monotonic_ns()
        await _sleep_until(start + 5 * S)
        await master.stop_trial()

        # Trial 2: SIGSTOP of the VOG module 1 s in: hung, failed, restarted.
        await master.registry.settle_restarts()
        trial = await master.start_trial()
        start = trial["start"]["mono_ns"]
        await _sleep_until(start + S)
        vog = master.modules["VOG"].proc
        assert vog is not None and vog.pid is not None
        os.kill(vog.pid, signal.SIGSTOP)
        marks["sigstop"] = time.monotonic_ns()
        if await _wait(lambda: master.modules["VOG"].status == "failed", 10):
            result.hung_after_s = (time.monotonic_ns() - marks["sigstop"]) / 1e9
        await _wait(lambda: master.modules["VOG"].status == "ok", 20)
        await _sleep_until(start + 5 * S)
        await master.stop_trial()
        result.restarts_seen = {name: master.modules[name].restarts for name in SERIAL}

        # Trial 3: every device unplugged at the trial's start (1.5 s) and again just before
        # its stop (until after it).
        await master.registry.settle_restarts()
        trial = await master.start_trial()
        start = trial["start"]["mono_ns"]
        await _sleep_until(start)
        marks["unplug_start"] = time.monotonic_ns()
        for name in SERIAL:
            await master.request(name, "sim_unplug", {"seconds": 1.5})
        await _sleep_until(start + 4 * S)
        for name in SERIAL:
            await master.request(name, "sim_unplug", {"seconds": 3})
        marks["unplug_stop"] = time.monotonic_ns()
        await master.stop_trial()
        await master.end_session()
    result.manifest = json.loads((session.directory / "session.json").read_text())
    return result


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """The shared session, recorded once for the tests below (about 25 s)."""
    return asyncio.run(_record_faults(tmp_path_factory.mktemp("serial_faults")))


def test_kill_9_of_gps_mid_trial(faults: Session) -> None:
    """The others keep recording, GPS is restarted into the same trial (part 2), its first
    part reads back to its last flush, and verify reports it interrupted."""
    trial = faults.trial(1)
    start, stop = trial["start"]["mono_ns"], trial["stop"]["mono_ns"]
    for name in ("DRT", "VOG"):
        assert {f["status"] for f in faults.files(1, name)} == {"complete"}, name
    parts = sorted(faults.files(1, "GPS"), key=lambda f: f["path"])
    assert [("part2" in f["path"], f["status"]) for f in parts] == [
        (False, "interrupted"),
        (True, "complete"),
    ], parts
    first = faults.directory / parts[0]["path"]
    rows = read_rows(first)
    # A fix is complete 0.8 s after its last sentence and the CSV is flushed at least every
    # second: fixes that arrived 1.9 s before the kill are on disk, whole; they come once a
    # second, so the last row on disk arrived less than 2.9 s (3.2 with slack) before the kill.
    assert rows and all(len(r) == GPS_FIELDS and None not in r.values() for r in rows)
    assert all(start <= int(r["t_mono_ns"]) < faults.marks["kill"] for r in rows)
    assert int(rows[-1]["t_mono_ns"]) > faults.marks["kill"] - 3.2 * S
    after = read_rows(faults.directory / parts[1]["path"])
    assert after and all(faults.marks["kill"] < int(r["t_mono_ns"]) < stop for r in after)
    assert faults.manifest["modules"]["GPS"]["restarts"] == 1
    report = verify_session(faults.directory)
    said = [f.message for f in report.findings if f.where == parts[0]["path"]]
    assert any("interrupted" in m for m in said), said


def test_sigstop_of_vog_is_hung_failed_and_restarted(faults: Session) -> None:
    assert faults.hung_after_s is not None and faults.hung_after_s <= 2.0, faults.hung_after_s
    assert faults.restarts_seen["VOG"] == 1
    later = faults.files(3, "VOG")
    assert later and all(f["status"] == "complete" for f in later), later


def test_gps_unplugged_at_start_and_at_stop_is_two_gaps(faults: Session) -> None:
    """Gaps clipped to the trial: the first from its start, the second up to its stop."""
    trial = faults.trial(3)
    start, stop = trial["start"]["mono_ns"], trial["stop"]["mono_ns"]
    [entry] = faults.files(3, "GPS")
    first, second = entry["gaps"]
    assert first["start_mono_ns"] == start and first["end_mono_ns"] > start + 3 * S // 2
    assert second["start_mono_ns"] < faults.marks["unplug_stop"] and second["end_mono_ns"] == stop
    assert first["reason"] == second["reason"] == f"disconnected: {UNPLUGGED}"
    rows = read_rows(faults.directory / entry["path"])
    assert rows and all(first["end_mono_ns"] < int(r["t_mono_ns"]) < stop for r in rows)


@pytest.mark.parametrize("module", ["DRT", "VOG"])
def test_drt_and_vog_unplugged_at_start_and_stop(faults: Session, module: str) -> None:
    """The trial still completes for them, each file's rows inside it, the gap listed."""
    trial = faults.trial(3)
    start, stop = trial["start"]["mono_ns"], trial["stop"]["mono_ns"]
    entries = faults.files(3, module)
    assert entries and all(f["status"] == "complete" for f in entries), entries
    main = entries[0]
    assert main.get("gaps"), main
    for entry in entries:
        for r in read_rows(faults.directory / entry["path"]):
            assert start <= int(r["t_mono_ns"]) < stop


@pytest.mark.parametrize("module", ["DRT", "VOG"])
def test_drt_and_vog_list_an_unplug_still_on_at_the_stop(faults: Session, module: str) -> None:
    stop = faults.trial(3)["stop"]["mono_ns"]
    main = faults.files(3, module)[0]
    assert any(g["end_mono_ns"] == stop for g in main.get("gaps", [])), main.get("gaps")


def test_verify_lists_every_fault(faults: Session) -> None:
    report = verify_session(faults.directory)
    text = "\n".join(f"{f.level} {f.where}: {f.message}" for f in report.findings)
    assert not [f for f in report.findings if f.level == "error"], text
    assert "interrupted" in text and "gap (disconnected" in text, text


async def test_sim_unplug_is_refused_for_a_real_device_and_bad_durations(tmp_path: Path) -> None:
    module = GpsModule(ModuleContext("GPS", GPS_DIR))
    settings = load_settings(GPS_DIR / "config.txt", (*COMMON_SETTINGS, *SETTINGS))
    await module.configure({**settings, "port": str(tmp_path / "no-such-tty")}, simulate=False)
    with pytest.raises(CommandError, match="not simulated"):
        await module.cmd_sim_unplug(1)
    await module.configure(settings, simulate=True)
    try:
        for bad in (0, -1, 601, True):
            with pytest.raises(CommandError, match="seconds"):
                await module.cmd_sim_unplug(bad)
    finally:
        await module.shutdown()
