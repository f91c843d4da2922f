"""The master with real module processes: synchronized trials, crashes, restarts, state."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import statistics
import time
from pathlib import Path

import psutil
import pytest
from tests.helpers import make_ticker

from rpi_logger.core.master import Master, MasterConfig, MasterError
from rpi_logger.core.supervisor import ModuleProcess
from rpi_logger.framework.discovery import discover_modules, lookup
from rpi_logger.tools.verify import verify_session


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _manifest(session: Path) -> dict:
    return json.loads((session / "session.json").read_text())


async def note(master: Master, text: str) -> dict:
    """Add a note as the UI does: the Notes module is told which modules record meanwhile."""
    modules = [name for name in master.recording() if name != "Notes"]
    return await master.request("Notes", "add_note", {"text": text, "modules": modules})


def config(tmp_path: Path, module_dir: Path, **kw: object) -> MasterConfig:
    return MasterConfig(
        data_dir=tmp_path / "data",
        module_dirs=[module_dir],
        simulate=True,
        state_path=tmp_path / "state.json",
        **kw,
    )  # type: ignore[arg-type]


@pytest.mark.exclusive  # start skew measured on the clock: alone on the cores (test.sh)
async def test_start_skew_over_a_dozen_trials(tmp_path: Path, module_dir: Path) -> None:
    """Every module's first kept sample lies within one sample period after `at_mono_ns`."""
    async with Master(config(tmp_path, module_dir)) as master:
        assert await master.start_modules(["Ticker", "TickerB"]) == {
            "Ticker": None,
            "TickerB": None,
        }
        session = await master.start_session("skew")
        for _ in range(12):
            await master.start_trial()
            await asyncio.sleep(0.4)
            await master.stop_trial()
        await master.end_session()
    skews = []
    for trial in _manifest(session.directory)["trials"]:
        start, stop = trial["start"]["mono_ns"], trial["stop"]["mono_ns"]
        assert trial["status"] == "complete"
        assert {f["module"] for f in trial["files"]} == {"Ticker", "TickerB"}
        for entry in trial["files"]:
            rows = read_rows(session.directory / entry["path"])
            times = [int(r["t_mono_ns"]) for r in rows]
            assert times and all(start <= t < stop for t in times)
            assert entry["frames"] == len(rows)
            skew = times[0] - start
            assert 0 <= skew < 10_000_000, f"first sample {skew / 1e6:.2f} ms after the start"
            assert 0 < stop - times[-1] <= 10_000_000  # and the last one within a period of stop
            ticks = [int(r["tick"]) for r in rows]
            assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))  # none missing
            skews.append(skew / 1e6)
    print(
        f"\nstart skew over {len(skews)} module-trials: median {statistics.median(skews):.2f} "
        f"ms, max {max(skews):.2f} ms (sample period 10 ms)"
    )
    assert verify_session(session.directory).ok


async def test_kill9_module_is_detected_and_others_keep_recording(
    tmp_path: Path, module_dir: Path
) -> None:
    async with Master(config(tmp_path, module_dir)) as master:
        await master.start_modules(["Ticker", "TickerB", "Notes"])
        session = await master.start_session()
        await master.start_trial()
        await asyncio.sleep(1.0)
        victim = master.modules["Ticker"]
        assert victim.proc is not None and victim.proc.pid is not None
        os.kill(victim.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        while victim.status != "failed":
            assert time.monotonic() - killed < 2.0, "crash not detected within 2 s"
            await asyncio.sleep(0.01)
        detection = time.monotonic() - killed
        await note(master, "after the crash")  # the others still serve
        await asyncio.sleep(1.0)
        trial = await master.stop_trial()
        await master.end_session()
    print(f"\nkill -9 detected after {detection * 1000:.0f} ms")
    assert trial["status"] == "interrupted"
    by_module = {f["module"]: f for f in trial["files"]}
    assert by_module["Ticker"]["status"] == "interrupted"
    assert by_module["TickerB"]["status"] == "complete"
    rows_b = read_rows(session.directory / by_module["TickerB"]["path"])
    assert len(rows_b) > 150  # about 2 s at 100 Hz: TickerB kept going through the crash
    assert _manifest(session.directory)["modules"]["Ticker"]["status"] == "failed"
    report = verify_session(session.directory)
    messages = [f.message for f in report.findings if f.level == "warning"]
    assert any("interrupted" in m for m in messages)


async def test_restarted_module_rejoins_the_trial(tmp_path: Path) -> None:
    root = tmp_path / "mods"
    root.mkdir()
    make_ticker(root, "Phoenix", restart_on_crash="true")
    async with Master(config(tmp_path, root)) as master:
        await master.start_modules(["Phoenix"])
        session = await master.start_session()
        await master.start_trial()
        await asyncio.sleep(0.8)
        first = master.modules["Phoenix"].proc
        assert first is not None and first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while not (
            master.modules["Phoenix"].status == "ok" and master.modules["Phoenix"].proc is not first
        ):
            assert time.monotonic() < deadline, "module was not restarted"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)
        trial = await master.stop_trial()
        await master.end_session()
    paths = sorted(f["path"] for f in trial["files"])
    assert paths == ["Phoenix/trial001_part2_ticker.csv", "Phoenix/trial001_ticker.csv"]
    rows = read_rows(session.directory / "Phoenix/trial001_part2_ticker.csv")
    assert len(rows) > 50
    assert int(rows[-1]["t_mono_ns"]) < trial["stop"]["mono_ns"]
    assert _manifest(session.directory)["modules"]["Phoenix"]["restarts"] == 1


async def test_stuck_module_counts_as_hung(tmp_path: Path, module_dir: Path) -> None:
    """SIGSTOP freezes a module: no heartbeat, so it is marked failed within 2 s."""
    async with Master(config(tmp_path, module_dir)) as master:
        await master.start_modules(["Ticker"])
        await asyncio.sleep(0.6)
        proc = master.modules["Ticker"].proc
        assert proc is not None and proc.pid is not None
        os.kill(proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        while master.modules["Ticker"].status != "failed":
            assert time.monotonic() - stopped < 2.0
            await asyncio.sleep(0.02)
        assert "hung" in (master.modules["Ticker"].error or "")


async def test_notes_round_trip_and_rules(tmp_path: Path, module_dir: Path) -> None:
    async with Master(config(tmp_path, module_dir)) as master:
        await master.start_modules(["Notes", "Ticker"])
        with pytest.raises(MasterError, match="no session"):
            await note(master, "too early")
        session = await master.start_session()
        between = await note(master, "before the first trial")
        with pytest.raises(MasterError, match="text"):
            await note(master, "   ")
        trial = await master.start_trial()
        await asyncio.sleep(0.25)
        inside = await note(master, 'during trial one, with a comma, and "quotes"')
        # Acknowledged means on disk: readable at once, long before the 1 s periodic flush.
        on_disk = read_rows(session.directory / "Notes/notes.csv")
        assert on_disk[-1]["text"] == inside["text"]
        latencies = []
        for i in range(1000):
            t0 = time.perf_counter_ns()
            await note(master, f"note {i}")
            latencies.append((time.perf_counter_ns() - t0) / 1e6)
        await master.stop_trial()
        listed = (await master.request("Notes", "get_notes"))["notes"]
        lag = master.monitor.snapshot()
        await master.end_session()
    latencies.sort()
    p50, p99 = latencies[500], latencies[989]
    print(
        f"\nnote round trip over 1000 notes: p50 {p50:.2f} ms, p99 {p99:.2f} ms; "
        f"master loop lag p99 {lag['p99']:.2f} ms, max {lag['max']:.2f} ms"
    )
    assert between["trial"] is None and inside["trial"] == trial["number"]
    assert inside["modules"] == "Ticker"
    rows = read_rows(session.directory / "Notes/notes.csv")
    assert len(rows) == len(listed) == 1002
    assert rows[0]["trial"] == "" and rows[1]["trial"] == "1"
    assert rows[1]["text"] == 'during trial one, with a comma, and "quotes"'
    assert [int(r["note_index"]) for r in rows] == list(range(1002))
    assert float(rows[1]["elapsed_s"]) > float(rows[0]["elapsed_s"]) > 0
    assert verify_session(session.directory).ok


async def test_enabled_modules_and_settings_persist(tmp_path: Path, module_dir: Path) -> None:
    cfg = config(tmp_path, module_dir)
    async with Master(cfg) as master:
        await master.enable_module("ticker")
        await master.enable_module("Notes")
        await master.set_module_settings("Ticker", {"rate_hz": 50})
        await master.disable_module("Notes")
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["enabled"] == ["Ticker"] and saved["settings"]["Ticker"] == {"rate_hz": 50}
    async with Master(cfg) as master:
        assert await master.restore() == {"Ticker": None}
        assert master.state.settings["Ticker"] == {"rate_hz": 50}
        assert [e.spec.name for e in master.alive()] == ["Ticker"]


async def test_no_module_outlives_a_failing_master(tmp_path: Path, module_dir: Path) -> None:
    pids = []
    with pytest.raises(RuntimeError, match="boom"):
        async with Master(config(tmp_path, module_dir)) as master:
            await master.start_modules(["Ticker", "Notes"])
            await master.start_session()
            await master.start_trial()
            pids = [e.proc.pid for e in master.modules.values() if e.proc]
            raise RuntimeError("boom")
    assert len(pids) == 2
    assert not [
        p
        for p in pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]


async def test_events_requests_and_final_health(tmp_path: Path, module_dir: Path) -> None:
    """Everything the master does is published on its bus; `request` reaches any module's own
    commands but never the lifecycle ones; the session's health is taken as it ends."""
    events: list[dict] = []
    async with Master(config(tmp_path, module_dir)) as master:
        master.events.add_listener(events.append)
        await master.start_modules(["Ticker", "Notes"])
        with pytest.raises(MasterError, match="unknown module"):
            await master.request("Teleporter", "status")
        with pytest.raises(MasterError, match="master's to send"):
            await master.request("Ticker", "start_trial", {"at_mono_ns": 0, "trial": 1})
        with pytest.raises(MasterError, match="unknown command"):
            await master.request("Ticker", "add_note", {"text": "x"})
        ticker = await master.request("ticker", "status")
        assert ticker["state"] == "idle"
        # Configured once, by the master: not also from config.txt at start (a device opened
        # twice: a Neon's discovery twice).
        assert ticker["configured"] == 1, ticker
        session = await master.start_session()
        await master.start_trial()
        await asyncio.sleep(0.6)
        await master.stop_trial()
        beats = [e for e in events if e["event"] == "heartbeat" and e["module"] == "Ticker"]
        await master.end_session()
        await master.disable_module("Notes")
        with pytest.raises(MasterError, match="Notes module is not running"):
            await master.request("Notes", "get_notes")
    kinds = [(e["event"], e.get("module"), e.get("data", {}).get("state")) for e in events]
    for expected in [
        ("module", "Ticker", None),
        ("session", None, "started"),
        ("trial", None, "recording"),
        ("trial", None, "complete"),
        ("session", None, "ended"),
    ]:
        assert expected in kinds
    notes = [
        e["data"]["status"] for e in events if e["event"] == "module" and e["module"] == "Notes"
    ]
    assert notes == ["ok", "stopped"]
    health = _manifest(session.directory)["health"]
    assert set(health) == {"Ticker", "Notes", "master"}
    # Taken as the session ended, not from the last heartbeat before it.
    assert health["Ticker"]["loop_lag_ms"]["samples"] > beats[-1]["data"]["loop_lag_ms"]["samples"]
    assert health["master"]["cpu_percent"] >= 0 and health["master"]["rss_mb"] > 10


async def test_a_module_stopped_while_it_is_spawned_does_not_live_on(module_dir: Path) -> None:
    """A restart called off at shutdown may stop a process that is still being spawned."""
    spec = lookup(discover_modules([module_dir]), "Ticker")
    assert spec is not None
    proc = ModuleProcess(spec, simulate=True)
    async with asyncio.timeout(20):
        async with asyncio.TaskGroup() as tg:
            running = tg.create_task(proc.run())
            await proc.stop()  # before run() even got to spawn it
        await running
    assert proc.proc is not None and proc.proc.returncode is not None
