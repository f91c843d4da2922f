"""The wDRT: settings round trip (``set>KEY:VAL`` then ``get_cfg>``) through its simulator, the
20 ms command spacing, and the DRT module recording a short trial on it."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

from tests.modules.drt.test_drt_module import record, running, until

from rpi_logger.framework.serial import Line, SerialOptions, SerialSource
from rpi_logger.io.serial.ports import USB_IDS
from rpi_logger.modules.drt.wdrt import WdrtTracker, set_commands
from rpi_logger.simulation.serial.wdrt import SimulatedWDRT


async def cfg_after(sim: SimulatedWDRT, commands: list[bytes], gap_s: float) -> str:
    options = SerialOptions(usb_ids=[USB_IDS["wDRT"]], lister=sim.ports, command_gap_s=gap_s)
    source = SerialSource("wdrt", options)
    async with source, asyncio.timeout(10):
        events = aiter(source)
        await anext(events)  # connected
        for command in commands:
            source.send(command)
        await asyncio.sleep(0.2)
        source.send(b"get_cfg>\n")
        async for ev in events:
            if isinstance(ev, Line) and ev.text.startswith("cfg>"):
                return ev.text
    raise AssertionError("no cfg> reply")


async def test_settings_round_trip_and_command_spacing() -> None:
    wanted = {"stimDur": 700, "lowerISI": 2500, "upperISI": 4500, "intensity": 60}
    assert set_commands(wanted)[0] == b"set>ONTM:700\n"  # a colon: the firmware's form
    async with SimulatedWDRT() as sim:
        cfg = await cfg_after(sim, [b"set>DBNC,50\n", *set_commands(wanted)], 0.025)
        tracker = WdrtTracker()
        tracker.line(cfg, 0)
        assert tracker.config == {
            "ONTM": "700", "ISIL": "2500", "ISIH": "4500", "DBNC": "100", "SPCT": "60",
        }  # fmt: skip
        assert sim.merged == 0  # 25 ms apart: every command read on its own
    async with SimulatedWDRT() as sim:  # back to back, as the peer logger sends them
        wanted = {"stimDur": 500, "lowerISI": 2000, "upperISI": 4000}
        cfg = await cfg_after(sim, set_commands(wanted), 0.0)
        assert sim.merged > 0 and "ISIH:4000" not in cfg  # lost: read in one chunk


async def test_module_records_a_short_trial_on_the_wdrt(tmp_path: Path) -> None:
    """Two stimuli (about 12 s); onsets, classification and battery through the module."""
    async with running(tmp_path, device_type="wDRT", iso_preset=False, stim_dur_ms=800) as (
        module,
        sim,
    ):
        assert isinstance(sim, SimulatedWDRT)
        await until(lambda: module.tracker.config.get("ONTM") == "800")
        _, (_, live) = await record(module, 11.5)
        onsets = list(sim.onsets)
        assert module.status()["devices"][0]["battery_percent"] == 87
    with (tmp_path / "DRT/wDRT/trial001_drt.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["result"] for r in rows] == ["hit", "hit"]
    for r, true in zip(rows, onsets, strict=False):
        # Two stimuli only: as good as one line's latency (tight bounds need a trial's worth).
        assert abs(int(r["t_mono_ns"]) - true) < 10_000_000
    assert live is not None and live["hit_rate"] == 1.0
