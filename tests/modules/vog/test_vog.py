"""The VOG module on the simulated sVOG and wVOG in its four modes: the CSV's lens rows against the
simulator's true lens changes, our totals (host clock) against the goggles' own, the settings
sent and read back, the ``lens`` command, an unplug mid-trial and malformed lines."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from rpi_logger.config import load_settings
from rpi_logger.framework.base import (
    COMMON_SETTINGS,
    CommandError,
    FileRecord,
    ModuleContext,
    SessionInfo,
)
from rpi_logger.framework.discovery import discover_modules
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.modules.vog.module import VogModule
from rpi_logger.modules.vog.settings import SETTINGS

MODULE_DIR = Path(__file__).parents[3] / "src/rpi_logger/modules/vog"
S = 1_000_000_000
MS = 1_000_000
# Each lens row is checked against its line's true time on the clock: alone on the cores
# (test.sh), as every such test.
pytestmark = pytest.mark.exclusive

LATENCY_NS = 60 * MS  # a line's way to a row: 0.5-3 ms simulated, the rest a busy machine
TOTALS_MS = 80  # our totals against the goggles': the commands' and lines' ways


@contextlib.asynccontextmanager
async def running(tmp_path: Path, kind: str, **overrides: Any) -> AsyncIterator[VogModule]:
    settings = load_settings(MODULE_DIR / "config.txt", (*COMMON_SETTINGS, *SETTINGS))
    settings.update(device_type=kind, **overrides)
    module = VogModule(ModuleContext("VOG", MODULE_DIR))
    async with asyncio.TaskGroup() as tg:
        await module.configure(settings, simulate=True)
        runner = tg.create_task(module.run())
        module.session = SessionInfo(tmp_path, tmp_path / "VOG", time.monotonic_ns())
        try:
            await module.require_connected()
            yield module
        finally:
            await module.shutdown()
            runner.cancel()


async def record_trial(
    module: VogModule,
    seconds: float,
    during: Callable[[TrialWindow], Awaitable[None]] | None = None,
    number: int = 1,
) -> tuple[list[dict[str, str]], FileRecord, TrialWindow]:
    """One trial of `seconds` from a start 200 ms ahead; its rows read back from the CSV."""
    window = TrialWindow(number, time.monotonic_ns() + S // 5)
    module.trial = window
    await module.start_trial(window)
    if during is not None:
        await during(window)
    await asyncio.sleep(max(0.0, (window.start_ns + int(seconds * S) - time.monotonic_ns()) / S))
    window.stop_ns = time.monotonic_ns()
    [record] = await module.stop_trial(window)
    module.trial = None
    assert module.session is not None
    with (module.session.module_dir / module.device_id / f"{window.stem}_vog.csv").open() as f:
        return list(csv.DictReader(f)), record, window


async def sleep_until(t_ns: int) -> None:
    await asyncio.sleep(max(0.0, (t_ns - time.monotonic_ns()) / S))


def lens_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if r["event"] in ("open", "close")]


def check_lens_rows(rows: list[dict[str, str]], sim: Any, window: TrialWindow) -> list[tuple]:
    """Every lens change the goggles made inside the trial is a row, in order, with its lens,
    at its host time plus the line's latency (the last may arrive after the stop)."""
    assert window.stop_ns is not None
    truth = [c for c in sim.changes if window.start_ns <= c[0] < window.stop_ns]
    events = lens_rows(rows)
    assert len(truth) - 1 <= len(events) <= len(truth), (events, truth)
    for r, (t, lens, is_open) in zip(events, truth, strict=False):
        assert (r["event"], r["lens"]) == ("open" if is_open else "close", lens)
        assert 0 < int(r["t_arrival_ns"]) - t < LATENCY_NS
        assert int(r["t_mono_ns"]) - int(r["t_arrival_ns"]) < MS  # 1 ns steps at most
    times = [int(r["t_mono_ns"]) for r in rows]
    assert times == sorted(set(times)) and all(window.accepts(t) for t in times)
    return truth


def check_settings(module: VogModule, sim: Any) -> None:
    """Every setting sent was taken (the simulator has it) and read back (the status)."""
    assert module.wanted and module.config_ok is True
    for key, value in module.wanted.items():
        assert module.device_config[key] == value and str(sim.config[key]) == value
    status = module.status()["devices"][0]
    assert status["config_ok"] and status["experiment_started"]
    if module.proto.kind == "wVOG":
        assert sim.merged == 0  # commands 25 ms apart: none lost in a 10 ms chunk


def check_totals(record: FileRecord, tolerance_ms: int = TOTALS_MS) -> dict[str, Any]:
    """Our totals agree with the goggles' report: TSOT (open) and TTT (total)."""
    totals = record.extra["totals"]
    device, host = totals["device"], totals["host"]
    assert device["total_ms"] == device["open_ms"] + device["closed_ms"]
    assert host["total_ms"] == host["open_ms"] + host["closed_ms"]
    assert abs(host["open_ms"] - device["open_ms"]) < tolerance_ms, totals
    assert abs(host["total_ms"] - device["total_ms"]) < tolerance_ms, totals
    return totals


def test_discovered_and_off_by_default() -> None:
    spec = next(s for s in discover_modules() if s.name == "VOG")
    assert spec.valid
    assert load_settings(MODULE_DIR / "config.txt", COMMON_SETTINGS)["enabled"] is False


@pytest.mark.parametrize("kind", ["sVOG", "wVOG"])
async def test_cycle(tmp_path: Path, kind: str) -> None:
    """Open 400 ms, closed 500 ms from the trial's start; the settings read back; totals."""
    async with running(tmp_path, kind, open_ms=400, closed_ms=500) as module:
        sim = module.sim
        rows, record, window = await record_trial(module, 2.6)
        check_settings(module, sim)
        status = module.status()["devices"][0]
    truth = check_lens_rows(rows, sim, window)
    start = truth[0][0]
    assert 0 <= start - window.start_ns < 100 * MS  # the goggles' trial at the trial's start
    opened = [t - start for t, _, is_open in truth if is_open]
    closed = [t - start for t, _, is_open in truth[1:] if not is_open]
    assert opened[:3] == [0, 900 * MS, 1800 * MS] and closed[:2] == [400 * MS, 1300 * MS]
    [end] = [r for r in rows if r["event"] == "trial_end"]
    assert end["device_trial"] == "1" and end["lens"] == "X"
    totals = check_totals(record)
    assert totals["device"]["total_ms"] == int(end["total_ms"]) and totals["device"]["reports"] == 1
    assert 2400 < totals["host"]["total_ms"] < 2800 and totals["host"]["unknown_ms"] < 50
    assert status["last_trial_totals"] == totals and record.extra["mode"] == "cycle"


# First press 800 ms after the trial's start, then every 1200 ms; open 400, lockout 1000.
PEEK = {"open_ms": 400, "closed_ms": 1000}


def peek_opens(presses_ms: list[int], first_waits: bool, until_ms: int) -> list[int]:
    """When the lenses open: at the press, or when the lockout after the last close ends."""
    opens: list[int] = []
    last_close = 0 if first_waits else None
    for press in presses_ms:
        at = press if last_close is None else max(press, last_close + PEEK["closed_ms"])
        if at < until_ms:
            opens.append(at)
        last_close = at + PEEK["open_ms"]
    return opens


@pytest.mark.parametrize("kind", ["sVOG", "wVOG"])
async def test_peek(tmp_path: Path, kind: str) -> None:
    """Closed at the start; each press opens for 400 ms, after the 1000 ms lockout (the wVOG
    counts the first lockout from the trial's start); the sVOG reports its presses."""
    async with running(tmp_path, kind, mode="peek", **PEEK) as module:
        sim = module.sim
        sim.first_press_ms, sim.press_every_ms = 800, 1200
        rows, record, window = await record_trial(module, 4.3)
        check_settings(module, sim)
    truth = check_lens_rows(rows, sim, window)
    start = truth[0][0]
    assert truth[0][1:] == ("X", False)  # closed at the start
    presses = [(p - start) // MS for p in sim.presses if window.accepts(p)]
    assert presses[:3] == [800, 2000, 3200]
    opens = [(t - start) // MS for t, _, is_open in truth if is_open]
    expected = peek_opens(presses, kind == "wVOG", (window.stop_ns - start) // MS)
    assert opens == expected and len(opens) >= 3
    assert expected[:2] == ([1000, 2400] if kind == "wVOG" else [800, 2200])
    buttons = [r for r in rows if r["event"] == "button"]
    if kind == "sVOG":  # a ``Click`` line per press
        assert len(buttons) == len(presses)
        for r, p in zip(buttons, sim.presses, strict=False):
            assert 0 < int(r["t_arrival_ns"]) - p < LATENCY_NS
    else:
        assert buttons == []  # the wVOG does not report its button
    totals = check_totals(record)
    assert abs(totals["device"]["open_ms"] - 400 * len(opens)) < 10


@pytest.mark.parametrize("kind", ["sVOG", "wVOG"])
async def test_eblindfold(tmp_path: Path, kind: str) -> None:
    """Open from the start until the participant finds the target (1500 ms) and presses: the
    press closes the lenses and ends the goggles' trial; TSOT is the search time."""
    async with running(tmp_path, kind, mode="eBlindfold") as module:
        sim = module.sim
        sim.search_ms = 1500
        rows, record, window = await record_trial(module, 2.4)
        check_settings(module, sim)
        assert module.wanted.get("MaxOpen", module.wanted.get("opn")) == "65535"
    truth = check_lens_rows(rows, sim, window)
    start = truth[0][0]
    states = [(t - start, is_open) for t, _, is_open in truth]
    assert states[-2:] == [(0, True), (1500 * MS, False)]
    [end] = [r for r in rows if r["event"] == "trial_end"]
    assert int(end["t_arrival_ns"]) - truth[-1][0] < LATENCY_NS  # at the press, mid-trial
    assert 0 <= int(end["t_mono_ns"]) - int(end["t_arrival_ns"]) < MS  # not moved to the stop
    assert (int(end["open_ms"]), int(end["closed_ms"])) == (1500, 0)
    totals = check_totals(record)
    assert abs(totals["host"]["open_ms"] - 1500) < TOTALS_MS  # counted until the press only
    if kind == "sVOG":
        [press] = [r for r in rows if r["event"] == "button"]
        assert int(press["t_mono_ns"]) > int(end["t_mono_ns"])  # ``Click`` after the report


@pytest.mark.parametrize("kind", ["sVOG", "wVOG"])
async def test_direct_and_the_lens_command(tmp_path: Path, kind: str) -> None:
    """Direct: the lenses follow the ``lens`` command; the goggles keep no timing (their report
    counts a directly opened lens as closed), our totals do. Bad input: one clear error."""
    async with running(tmp_path, kind, mode="direct") as module:
        sim = module.sim
        with pytest.raises(CommandError, match="state must be open or close"):
            await module.cmd_lens("ajar")
        if kind == "sVOG":
            with pytest.raises(CommandError, match="sVOG has lens x, got 'a'"):
                await module.cmd_lens("open", "a")

        async def hands(window: TrialWindow) -> None:
            await sleep_until(window.start_ns + 500 * MS)
            assert await module.cmd_lens("open") == {"lens": "X", "state": "open"}
            await sleep_until(window.start_ns + 1200 * MS)
            await module.cmd_lens("close x")
            if kind == "wVOG":  # one lens: the left
                await sleep_until(window.start_ns + 1500 * MS)
                assert await module.cmd_lens("open a") == {"lens": "A", "state": "open"}
                await asyncio.sleep(0.3)
                assert module.lens_state == {"A": True, "B": False} and module.lens_open
                await module.cmd_lens("close", "a")

        rows, record, window = await record_trial(module, 2.5, hands)
        check_settings(module, sim)
    truth = check_lens_rows(rows, sim, window)
    assert [c[1:] for c in truth] == [("X", False), ("X", True), ("X", False)] + (
        [("A", True), ("A", False)] if kind == "wVOG" else []
    )
    opened = (truth[2][0] - truth[1][0]) + (truth[4][0] - truth[3][0] if kind == "wVOG" else 0)
    totals = record.extra["totals"]
    assert abs(totals["host"]["open_ms"] - opened / MS) < 20  # ours: from the lens rows
    assert totals["device"]["open_ms"] == 0  # theirs: no timing in direct mode
    assert abs(totals["host"]["total_ms"] - totals["device"]["total_ms"]) < TOTALS_MS


async def test_unplug_mid_trial(tmp_path: Path) -> None:
    """The pty closed for 3 s mid-trial: reconnected, the gap in the file's record, rows before
    and after, the experiment started again (the goggles' count restarts) and their trial too."""
    async with running(tmp_path, "sVOG", open_ms=400, closed_ms=500) as module:
        sim = module.sim
        unplugged = 0

        async def unplug(window: TrialWindow) -> None:
            nonlocal unplugged
            await sleep_until(window.start_ns + int(1.5 * S))
            unplugged = time.monotonic_ns()
            sim.unplug(3.0)

        rows, record, _ = await record_trial(module, 7.0, unplug)
        assert sim.experiments == 2 and module.status()["devices"][0]["disconnects"] == 1
    [gap] = record.extra["gaps"]
    assert gap["reason"].startswith("disconnected")
    assert gap["start_mono_ns"] < unplugged + S // 2 and gap["end_mono_ns"] > unplugged + 3 * S
    events = lens_rows(rows)
    before = [r for r in events if int(r["t_mono_ns"]) <= gap["start_mono_ns"]]
    after = [r for r in events if int(r["t_mono_ns"]) >= gap["end_mono_ns"]]
    assert len(before) >= 3 and len(after) >= 4 and len(before) + len(after) == len(events)
    restart = [c for c in sim.changes if c[0] > gap["end_mono_ns"]]
    assert restart[0][2] is False and restart[1][2] is True  # the trial started again: open
    assert {r["device_trial"] for r in after} == {"1"}  # a new experiment counts from 1
    totals = record.extra["totals"]
    assert totals["host"]["unknown_ms"] > 3000  # the lenses' state was not known
    assert totals["device"]["total_ms"] < 4000  # the goggles' report: after the re-plug only


async def test_malformed_lines_are_counted_never_fatal(tmp_path: Path) -> None:
    """Binary noise, a truncated ``data|1,2``, an unknown line and a flood of junk mid-trial:
    counted in the status; the rows go on."""
    async with running(tmp_path, "sVOG", open_ms=400, closed_ms=500) as module:
        sim = module.sim

        async def noise(window: TrialWindow) -> None:
            await sleep_until(window.start_ns + 700 * MS)
            sim.send_raw(b"\xff\xfe\x80\x81 noise\r\n")
            sim.send_raw(b"data|1,2\r\n")
            sim.send_raw(b"stm|7\r\n")
            sim.send_raw(b"junk junk junk\r\n" * 400)
            sim.send_raw(b"x" * 3000)  # no terminator: truncated
            sim.send_raw(b"\r\n")

        rows, record, window = await record_trial(module, 2.6, noise)
        status = module.status()["devices"][0]
    assert status["malformed"] >= 5 and status["connected"]
    truth = check_lens_rows(rows, sim, window)
    assert sum(1 for t, _, _ in truth if t > window.start_ns + S) >= 2  # rows after the noise
    assert not [r for r in rows if r["event"] == "trial_end" and r["closed_ms"] == "2"]
    check_totals(record)
