"""GPS: NMEA parsing (real receivers' sentences) and the module on the simulated receiver: one
row per second with design.md §7's positions, and an unplug of 3 s mid-trial."""

from __future__ import annotations

import asyncio
import csv
import itertools
import time
from pathlib import Path

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
