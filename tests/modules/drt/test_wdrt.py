"""The wDRT as its firmware speaks: settings round trip (one ``set>`` of pairs, ``dev>iso``) and
``set_rtc>`` through its simulator, the 20 ms command spacing, the block clock mapped onto the
host clock, and the DRT module recording a ~17 s trial on it."""

from __future__ import annotations

import asyncio
import csv
import time
from pathlib import Path

import pytest
from tests.modules.drt.test_drt_module import record, running, until

from rpi_logger.framework.serial import Line, SerialOptions, SerialSource
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.io.serial.ports import USB_IDS
from rpi_logger.modules.drt.wdrt import (
    WdrtTracker,
    device_values,
    parse_rtc,
    rtc_command,
    set_command,
)
from rpi_logger.simulation.serial.sdrt import response_ms
from rpi_logger.simulation.serial.wdrt import SimulatedWDRT

# Timed against the clock with every frame or onset counted: alone on the cores (test.sh).
pytestmark = pytest.mark.exclusive

MS = 1_000_000
S = 1_000_000_000


async def replies(sim: SimulatedWDRT, commands: list[bytes], gap_s: float, n: int) -> list[str]:
    """The first `n` lines the device sends after `commands`."""
    options = SerialOptions(usb_ids=[USB_IDS["wDRT"]], lister=sim.ports, command_gap_s=gap_s)
    source = SerialSource("wdrt", options)
    got: list[str] = []
    async with source, asyncio.timeout(10):
        events = aiter(source)
        await anext(events)  # connected
        for command in commands:
            source.send(command)
        async for ev in events:
            if isinstance(ev, Line):
                got.append(ev.text)
                if len(got) == n:
                    return got
    raise AssertionError(got)


async def test_settings_round_trip_rtc_and_command_spacing() -> None:
    values = device_values({"stimDur": 700, "lowerISI": 2500, "upperISI": 4500, "intensity": 153})
    assert set_command(values) == b"set>ONTM:700,ISIL:2500,ISIH:4500,SPCT:60\n"  # colons
    now = int(time.time())
    async with SimulatedWDRT() as sim:
        cmds = [b"set>DBNC,50\n", set_command(values), b"get_cfg>\n", rtc_command(now)]
        cfg_comma, cfg_set, cfg_get, rtc = await replies(sim, cmds, 0.025, 4)
        assert "DBNC:100" in cfg_comma  # set>K,V is replied but takes no effect
        tracker = WdrtTracker()
        tracker.line(cfg_get, 0)
        assert cfg_set == cfg_get  # set> replies the whole config, as get_cfg> does
        assert tracker.config == {
            "ONTM": "700", "ISIL": "2500", "ISIH": "4500", "DBNC": "100", "SPCT": "60",
        }  # fmt: skip
        assert rtc.startswith("rtc>") and abs(parse_rtc(rtc[4:]) - now) < 0.1
        assert sim.merged == 0  # 25 ms apart: every command read on its own
        [iso] = await replies(sim, [b"dev>iso\n"], 0.025, 1)
        assert iso == "cfg>ONTM:1000,ISIL:3000,ISIH:5000,DBNC:100,SPCT:100"
    async with SimulatedWDRT() as sim:  # back to back, as the peer logger sends them
        cmds = [b"set>ONTM:500\n", b"set>ISIH:4000\n", b"get_cfg>\n"]
        got = await replies(sim, cmds, 0.0, 1)
        assert sim.merged > 0 and "ISIH:4000" not in got[0]  # lost: read in one chunk


def test_block_clock_onsets_pairs_and_odd_lines() -> None:
    """Lines as the firmware sends them: stimulus k+1's onset is at dta k's block_ms."""
    tr, t0 = WdrtTracker(), 10**12
    seq = [
        (0, "stm>1"), (0, "trl>1"), (300, "rt>300000"), (300, "clk>1"), (300, "stm>0"),
        (4000, "dta>4000,1,1,300,87,1700000000"), (4000, "stm>1"), (4000, "trl>2"),
        (5000, "stm>0"), (8000, "dta>8000,2,0,-1,86,1700000004"), (8000, "stm>1"),
        (8000, "trl>3"), (8090, "rt>90000"), (8090, "clk>1"),
    ]  # fmt: skip
    got = [tr.line(text, t0 + ms * MS + MS) for ms, text in seq]  # each 1 ms late
    hit, miss = (s for s in got if s is not None)
    assert (hit.stimulus, hit.t_device_ms, hit.rt_ms, hit.result) == (1, 0, 300, "hit")
    assert (miss.stimulus, miss.t_device_ms, miss.rt_ms, miss.result) == (2, 4000, None, "miss")
    assert miss.device_unix == 1700000004 and tr.battery == 86
    assert tr.fit.points == 13  # every timed line is a pair (stm>0 of the miss: ONTM unknown)
    assert abs(tr.remap(miss).t_mono_ns - (t0 + 4000 * MS)) <= MS
    assert tr.pending_onset_ns == t0 + 8001 * MS and not tr.pending_settled(t0 + 9000 * MS)
    last = tr.close_pending()  # a trial stop before its dta>: from its own lines
    assert last is not None and (last.stimulus, last.rt_ms, last.result) == (3, 90, "premature")
    assert tr.line("dta>12000,3,1,90,86,1700000008", t0 + 12001 * MS) is None  # written already
    for bad in ("dta>1,2", "trl>x", "\x00garbage", "zzz>1", "stm>7"):
        assert tr.line(bad, t0) is None
    assert tr.malformed == 5
    tr.line("rtc>2024,1,1,1,0,0,10,127", t0, 1704067210.0)
    assert tr.rtc_minus_host_s is not None and abs(tr.rtc_minus_host_s - 0.5) < 0.01


async def test_module_records_a_17s_trial_on_the_wdrt(tmp_path: Path) -> None:
    """About 20 s: the participant's schedule from its 5th stimulus, so the 7th (a miss) comes
    third. Onsets within 2 ms of the simulator's host onsets, RTs within 1 ms, the wDRT's clock
    set on connection, no command lost."""
    async with running(tmp_path, device_type="wDRT") as (module, sim):
        assert isinstance(sim, SimulatedWDRT)
        sim.first_k = 5
        await until(lambda: module.status()["devices"][0]["device_time"] is not None)
        assert module.tracker.config.get("ONTM") == "1000"  # dev>iso, confirmed by cfg>
        clock = module.status()["devices"][0]["device_time"]
        _, (_, live) = await record(module, 17)
        onsets = list(sim.onsets)
        status = module.status()["devices"][0]
        assert sim.merged == 0
        assert b"dev>iso\n" in [c.encode() + b"\n" for c in sim.commands]
    assert abs(clock["minus_host_s"]) < 0.05, clock  # set on a whole second
    assert status["battery_percent"] == 87
    with (tmp_path / "DRT/wDRT/trial001_drt.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["stimulus"] for r in rows] == [str(k) for k in range(1, len(rows) + 1)]
    assert len(rows) >= 4 and len(rows) == len(onsets)  # the last: written at the stop
    errors = []
    onsets = onsets[: len(rows)]
    for r in rows:
        n = int(r["stimulus"])
        expected = response_ms(n + 4)
        errors.append(int(r["t_mono_ns"]) - onsets[n - 1])
        if expected is None:
            assert (r["result"], r["rt_ms"], r["clicks"]) == ("miss", "", "0"), r
        else:
            assert r["result"] == "hit" and abs(int(r["rt_ms"]) - expected) <= 1, r
        assert r["run"] == "1"
    assert [r["result"] for r in rows][2] == "miss"
    assert rows[-1]["device_unix"] == "" and abs(int(rows[0]["device_unix"]) - time.time()) < 30
    print(f"\nwDRT 17 s: onset errors (ms) {[round(e / 1e6, 3) for e in errors]}")
    # Reachable: 2.5 ms, not 2 (offline, 300 ideal 17 s runs, onset_accuracy.py: worst onset per
    # run median 1.13 ms, 3.7 % of runs 2.0-2.35 ms): a trial of ~4 stimuli gives ~25 pairs, and
    # the onset of stimulus k+1 is known only to the ms the firmware rounds dta k's block_ms
    # to. A busy host's late reads (seen in the smallest arrival error) come on top.
    late = min(int(r["t_arrival_ns"]) - t for r, t in zip(rows, onsets, strict=True))
    host_excess = max(0, late - MS // 2)
    assert all(abs(e) <= 5 * MS // 2 + host_excess for e in errors), (errors, host_excess)
    assert live is not None and live["miss"] == 1


async def test_wdrt_unplugged_mid_trial_is_a_gap_and_its_block_restarts(tmp_path: Path) -> None:
    """About 15 s on the wDRT: pulled for 3 s after its first stimulus, then back: reconnected,
    the gap in the record, its clock set and its block restarted (``trl>1`` again: ``run`` 2),
    rows on both sides inside the trial, nothing fatal."""
    async with running(tmp_path, device_type="wDRT") as (module, sim):
        assert isinstance(sim, SimulatedWDRT)
        await until(lambda: module.status()["devices"][0]["device_time"] is not None)
        window = TrialWindow(1, time.monotonic_ns() + S // 5)
        module.trial = window
        await module.start_trial(window)
        await until(lambda: module.figures.as_dict()["stimuli"] >= 1, timeout=15)
        before = module.figures.as_dict()["stimuli"]
        unplugged = time.monotonic_ns()
        sim.unplug(3.0)
        await until(lambda: sim.commands.count("trl>1") == 2, timeout=15)
        await until(lambda: module.figures.as_dict()["stimuli"] > before, timeout=15)
        window.stop_ns = time.monotonic_ns()
        records = await module.stop_trial(window)
        module.trial = None
        status = module.status()["devices"][0]
    assert status["connected"] and status["disconnects"] == 1 and status["error"] is None
    drt_record = next(r for r in records if Path(r.path).name == "trial001_drt.csv")
    [gap] = drt_record.extra["gaps"]
    assert gap["reason"].startswith("disconnected")
    assert gap["start_mono_ns"] < unplugged + S and gap["end_mono_ns"] > unplugged + 3 * S
    with (tmp_path / "DRT/wDRT/trial001_drt.csv").open() as f:
        rows = list(csv.DictReader(f))
    runs = [r["run"] for r in rows]
    assert runs[0] == "1" and runs[-1] == "2", runs
    times = [int(r["t_mono_ns"]) for r in rows]
    assert times == sorted(times) and all(window.start_ns <= t < window.stop_ns for t in times)
    assert int(rows[0]["t_mono_ns"]) < gap["start_mono_ns"] < gap["end_mono_ns"] < times[-1]
