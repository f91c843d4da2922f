"""GPS: NMEA parsing (real receivers' sentences) and the module on the simulated receiver: one
row per second with design.md §7's positions, an unplug of 3 s mid-trial, stale fixes marked in
the CSV (a frozen fix, a lost fix) and a quiet receiver recorded as a gap."""

from __future__ import annotations

import asyncio
import csv
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from rpi_logger.config import load_settings
from rpi_logger.framework.base import COMMON_SETTINGS, ModuleContext, SessionInfo
from rpi_logger.framework.discovery import discover_modules
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.modules.gps.module import GpsModule
from rpi_logger.modules.gps.nmea import FixBuilder, NmeaError, parse
from rpi_logger.modules.gps.settings import SETTINGS
from rpi_logger.simulation.serial.gps import position, sentence

MODULE_DIR = Path(__file__).parents[3] / "src/rpi_logger/modules/gps"
S = 1_000_000_000

# u-blox M8 (GN talker) and MediaTek (GP) sentences, the first before a fix (empty fields).
UBLOX_NO_FIX = [
    "$GNRMC,235959.00,V,,,,,,,311224,,,N*6F",
    "$GNGGA,235959.00,,,,,0,00,99.99,,,,,,*7E",
]
UBLOX = [
    "$GNRMC,000000.00,A,4807.038000,N,01131.000000,E,0.022,,010125,,,A*74",
    "$GNGGA,000000.00,4807.038000,N,01131.000000,E,1,08,1.01,545.4,M,46.9,M,,*4B",
]
MEDIATEK = "$GPRMC,081836.000,A,3751.6500,S,14507.3600,E,0.00,360.0,130998,011.3,E*62"


def fixed(line: str) -> str:
    """The sentence with its checksum recomputed (the fixtures above are typed by hand)."""
    return sentence(line[1:].rpartition("*")[0])


def test_sentences_any_talker_checksums_and_midnight() -> None:
    assert parse(fixed(MEDIATEK))[:2] == ("GP", "RMC")
    with pytest.raises(NmeaError):
        parse(fixed(MEDIATEK)[:-2] + "00")  # bad checksum
    b = FixBuilder()
    for line in (*UBLOX_NO_FIX, *UBLOX):
        b.line(fixed(line), 1)
    for bad in ("$GPGGA,1*", "\x00\xff", "$GNRMC,12", fixed(MEDIATEK)[:-1] + "0"):
        b.line(bad, 2)
    assert b.malformed == 4
    fix = b.flush()
    assert fix is not None and fix.valid and fix.fix_quality == 1 and fix.satellites == 8
    assert fix.lat == pytest.approx(48 + 7.038 / 60) and fix.lon == pytest.approx(11 + 31 / 60)
    assert fix.t_fix_unix == 1735689600.0  # 2025-01-01 00:00:00 UTC: the day after 23:59:59
    south = FixBuilder()
    south.line(fixed(MEDIATEK), 1)
    got = south.flush()
    assert got is not None and got.lat == pytest.approx(-(37 + 51.65 / 60))


def test_discovered_and_off_by_default() -> None:
    spec = next(s for s in discover_modules() if s.name == "GPS")
    assert spec.valid
    config = load_settings(MODULE_DIR / "config.txt", (*COMMON_SETTINGS, *SETTINGS))
    assert config["enabled"] is False and config["port"] == "/dev/serial0"


async def test_one_row_per_second_and_an_unplug_mid_trial(tmp_path: Path) -> None:
    """Must-show: 1 Hz rows whose positions are design.md §7's function of each fix's own UTC time;
    the pty closed for 3 s mid-trial: reconnected, the gap recorded, rows on either side."""
    settings = load_settings(MODULE_DIR / "config.txt", (*COMMON_SETTINGS, *SETTINGS))
    module = GpsModule(ModuleContext("GPS", MODULE_DIR))
    async with asyncio.TaskGroup() as tg:
        await module.configure(settings, simulate=True)
        sim = module.sim
        assert sim is not None
        runner = tg.create_task(module.run())
        module.session = SessionInfo(tmp_path, tmp_path / "GPS", time.monotonic_ns())
        window = TrialWindow(1, time.monotonic_ns())
        module.trial = window
        try:
            await module.start_trial(window)
            await asyncio.sleep(5)
            unplugged = time.monotonic_ns()
            sim.unplug(3)
            await asyncio.sleep(8)
            window.stop_ns = time.monotonic_ns()
            [record] = await module.stop_trial(window)
            status = module.status()["devices"][0]
        finally:
            await module.shutdown()
            runner.cancel()
    assert status["connected"] and status["disconnects"] == 1 and not status["stale"]
    with (tmp_path / "GPS/gps/trial001_gps.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert record.frames == len(rows)
    [gap] = record.extra["gaps"]
    assert gap["reason"].startswith("disconnected")
    assert gap["start_mono_ns"] < unplugged + S // 2 and gap["end_mono_ns"] > unplugged + 3 * S
    fix_times = [float(r["t_fix_unix"]) for r in rows]
    steps = [round(b - a) for a, b in itertools.pairwise(fix_times)]
    before = [r for r in rows if int(r["t_mono_ns"]) < gap["start_mono_ns"] + 1]
    after = [r for r in rows if int(r["t_mono_ns"]) > gap["end_mono_ns"]]
    assert len(before) >= 3 and len(after) >= 3 and len(before) + len(after) == len(rows)
    assert steps.count(1) == len(steps) - 1 and 3 <= max(steps) <= 5, steps  # one jump: the gap
    for r in rows:
        lat, lon = position(float(r["t_fix_unix"]))
        assert float(r["lat"]) == pytest.approx(lat, abs=1e-7)
        assert float(r["lon"]) == pytest.approx(lon, abs=1e-7)
        assert (r["fix_quality"], r["satellites"], r["valid"]) == ("1", "9", "1")
        # The first sentence of a fix arrives 120-300 ms (+ line latency) after its UTC second.
        late = float(r["t_wall_unix"]) - float(r["t_fix_unix"])
        assert 0.1 < late < 0.8, late


@asynccontextmanager
async def recording(tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[GpsModule, Any]]:
    """The GPS module on its simulated receiver, a session open, reading (no trial yet)."""
    settings = load_settings(MODULE_DIR / "config.txt", (*COMMON_SETTINGS, *SETTINGS))
    module = GpsModule(ModuleContext("GPS", MODULE_DIR))
    async with asyncio.TaskGroup() as tg:
        await module.configure({**settings, **overrides}, simulate=True)
        runner = tg.create_task(module.run())
        module.session = SessionInfo(tmp_path, tmp_path / "GPS", time.monotonic_ns())
        try:
            yield module, module.sim
        finally:
            await module.shutdown()
            runner.cancel()


async def trial(module: GpsModule, *steps: tuple[float, Any]) -> tuple[TrialWindow, Any]:
    """One trial: for each step, wait its seconds, then call its action (None: nothing)."""
    window = TrialWindow(1, time.monotonic_ns())
    module.trial = window
    await module.start_trial(window)
    for seconds, action in steps:
        await asyncio.sleep(seconds)
        if action is not None:
            action()
    window.stop_ns = time.monotonic_ns()
    [record] = await module.stop_trial(window)
    module.trial = None
    return window, record


def gps_rows(tmp_path: Path) -> list[dict[str, str]]:
    with (tmp_path / "GPS/gps/trial001_gps.csv").open() as f:
        return list(csv.DictReader(f))


def test_a_receiver_without_a_time_still_gives_one_row_per_epoch() -> None:
    """Cold start: RMC status V and GGA quality 0 with empty time fields, once a second."""
    cold = [fixed("$GNRMC,,V,,,,,,,,,,N*53"), fixed("$GNGGA,,,,,,0,00,99.99,,,,,,*56")]
    b = FixBuilder()
    fixes = [b.line(line, i) for i in range(3) for line in cold]
    done = [f for f in (*fixes, b.flush()) if f is not None]
    assert len(done) == 3
    assert all(not f.valid and f.lat is None and f.t_fix_unix is None for f in done)


async def test_a_frozen_fix_and_a_lost_fix_read_back_from_the_csv(tmp_path: Path) -> None:
    """The receiver repeats its last fix for 4 s, then reports no fix for 2 s: each row says how
    old its fix was at arrival, `stale` = 1 once that passes `stale_s`, and the no-fix seconds
    are one row each, valid = 0, without a position."""
    frozen_status: list[dict[str, Any]] = []

    def lose_fix() -> None:
        frozen_status.append(module.status()["devices"][0])  # the live view agrees
        sim.lose_fix(2)

    async with recording(tmp_path, stale_s=2) as (module, sim):
        _, record = await trial(
            module,
            (2.5, lambda: sim.freeze(4)),
            (4.5, lose_fix),
            (3.0, None),
        )
    assert frozen_status[0]["stale"] and frozen_status[0]["fix"]["age_s"] > 2
    rows = gps_rows(tmp_path)
    assert record.frames == len(rows)
    ages = [float(r["age_s"]) for r in rows]
    arrivals = [int(r["t_mono_ns"]) for r in rows]
    for i, r in enumerate(rows):
        after_silence = i > 0 and arrivals[i] - arrivals[i - 1] > 2 * S
        assert r["stale"] == str(int(ages[i] > 2 or after_silence)), (i, r)
    fix_times = [r["t_fix_unix"] for r in rows]
    frozen = max(set(fix_times), key=fix_times.count)
    repeats = [float(r["age_s"]) for r in rows if r["t_fix_unix"] == frozen]
    assert len(repeats) >= 3, fix_times
    assert all(0.8 < b - a < 1.2 for a, b in itertools.pairwise(repeats)), repeats
    assert sum(r["stale"] == "1" for r in rows) >= 2
    fresh = [r for r in rows if r["t_fix_unix"] != frozen and r["valid"] == "1"]
    assert len(fresh) >= 2 and all(0.1 < float(r["age_s"]) < 0.8 for r in fresh)
    no_fix = [r for r in rows if r["valid"] == "0"]
    assert 1 <= len(no_fix) <= 3, no_fix
    seconds = [float(r["t_fix_unix"]) for r in no_fix]
    assert seconds == [seconds[0] + k for k in range(len(no_fix))]  # one row per second
    for r in no_fix:
        assert (r["lat"], r["lon"], r["fix_quality"], r["stale"]) == ("", "", "0", "0")


async def test_a_quiet_receiver_is_a_gap_in_the_record(tmp_path: Path) -> None:
    """No sentence for 2.5 s mid-trial (the port stays open), then quiet again until the stop:
    two gaps, the second ending at the stop; the first row after the silence is stale. (The
    link's own silence timeout is raised so that only the quiet, not a reconnection, shows.)"""
    async with recording(tmp_path, stale_s=2, silent_timeout_s=10) as (module, sim):
        marks: dict[str, int] = {}

        def quiet(name: str, seconds: float) -> None:
            marks[name] = time.monotonic_ns()
            sim.quiet(seconds)

        window, record = await trial(
            module,
            (2.5, lambda: quiet("first", 2.5)),
            (4.5, lambda: quiet("second", 30)),
            (3.0, None),
        )
        status = module.status()["devices"][0]
    rows = gps_rows(tmp_path)
    first, second = record.extra["gaps"]
    assert record.extra["quiet_gaps"] == 2 and record.extra["disconnects"] == 0
    assert first["reason"].startswith("receiver quiet") and second["reason"].startswith("receiver")
    assert marks["first"] - 1.5 * S < first["start_mono_ns"] < marks["first"]
    assert marks["first"] + 2.5 * S < first["end_mono_ns"] < marks["first"] + 4 * S
    assert marks["second"] - 1.5 * S < second["start_mono_ns"] < marks["second"]
    assert second["end_mono_ns"] == window.stop_ns
    [resumed] = [r for r in rows if int(r["t_mono_ns"]) >= first["end_mono_ns"]][:1]
    assert resumed["stale"] == "1"
    assert all(r["stale"] == "0" for r in rows if r is not resumed)
    assert status["connected"] and status["stale"]


async def test_unplugged_just_before_a_trial_starts(tmp_path: Path) -> None:
    """The receiver is pulled (and seen gone) before the trial's start instant and is back
    later: the trial waits for it, and its file records the gap from the trial's start."""
    async with recording(tmp_path) as (module, sim):
        await asyncio.sleep(1.5)  # connected, a fix or so
        sim.unplug(1.5)
        async with asyncio.timeout(5):
            while module.connected:  # noqa: ASYNC110  (the link's state: polled)
                await asyncio.sleep(0.01)
        window = TrialWindow(1, time.monotonic_ns() + S // 5)
        module.trial = window
        await module.start_trial(window)  # waits for the reconnection
        back = time.monotonic_ns()
        await asyncio.sleep(3)
        window.stop_ns = time.monotonic_ns()
        [record] = await module.stop_trial(window)
    [gap] = record.extra["gaps"]
    assert gap["start_mono_ns"] == window.start_ns and gap["reason"].startswith("disconnected")
    assert window.start_ns + S // 2 < gap["end_mono_ns"] <= back
    rows = gps_rows(tmp_path)
    assert rows and all(int(r["t_mono_ns"]) > gap["end_mono_ns"] for r in rows)
