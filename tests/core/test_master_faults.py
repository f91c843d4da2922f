"""Faults at the edges of trials, as `rpi-logger record` meets them: signals near a stop, a
module dying near a stop, restarts on the trial's own timeline, repeated names, overrides of the
restart policy, a master frozen for a while."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from tests.helpers import make_ticker, run_cli


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _manifest(session: Path) -> dict[str, Any]:
    return json.loads((session / "session.json").read_text())


def _record(tmp_path: Path, module_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rpi_logger",
            "record",
            "--data-dir",
            str(tmp_path / "data"),
            "--module-dir",
            str(module_dir),
            "--simulate",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def _trial_started(data: Path, number: int, timeout: float = 30) -> tuple[Path, int]:
    """Wait until trial `number` is in the manifest; returns (session, its start mono_ns)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in data.glob("session_*/session.json"):
            try:
                trials = json.loads(path.read_text())["trials"]
            except ValueError:
                continue
            if len(trials) >= number:
                return path.parent, trials[number - 1]["start"]["mono_ns"]
        time.sleep(0.02)
    raise AssertionError(f"trial {number} never started")


def _sleep_until(t_mono_ns: int) -> None:
    delay = (t_mono_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


def _module_pid(master_pid: int, name: str) -> int:
    for child in psutil.Process(master_pid).children(recursive=True):
        if any(part.endswith(f"/{name}") for part in child.cmdline()):
            return child.pid
    raise AssertionError(f"no {name} process")


def _finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"record hung:\n{err}") from None
    return proc.returncode, out, err


def test_repeated_module_names_record_each_module_once(tmp_path: Path, module_dir: Path) -> None:
    result = run_cli(
        "record",
        "--modules",
        "notes,NOTES,ticker,Notes",
        "--duration",
        "0.5",
        "--data-dir",
        str(tmp_path / "data"),
        "--module-dir",
        str(module_dir),
        "--simulate",
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    manifest = _manifest(Path(result.stdout.splitlines()[-1]))
    assert sorted(manifest["modules"]) == ["Notes", "Ticker"]
    assert manifest["trials"][0]["status"] == "complete"


def test_a_rejected_module_is_named_with_its_reason(tmp_path: Path, module_dir: Path) -> None:
    (module_dir / "ticker" / "main.py").write_text("def create_module(:\n")
    result = run_cli(
        "record",
        "--modules",
        "ticker",
        "--duration",
        "0.5",
        "--data-dir",
        str(tmp_path / "data"),
        "--module-dir",
        str(module_dir),
    )
    assert result.returncode == 2
    assert "rejected" in result.stderr and "unknown module" not in result.stderr
    assert "Traceback" not in result.stderr


def test_set_restart_on_crash_false_is_obeyed(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    make_ticker(modules, "Ticker", restart_on_crash="true", crash_after_s=0.4)
    result = run_cli(
        "record",
        "--modules",
        "ticker",
        "--duration",
        "1.5",
        "--set",
        "ticker.restart_on_crash=false",
        "--data-dir",
        str(tmp_path / "data"),
        "--module-dir",
        str(modules),
        "--simulate",
        timeout=60,
    )
    assert result.returncode == 1
    manifest = _manifest(Path(result.stdout.splitlines()[-1]))
    assert manifest["modules"]["Ticker"]["restarts"] == 0
    assert manifest["modules"]["Ticker"]["status"] == "failed"


def test_restart_rejoins_on_the_trial_timeline_and_never_races_the_stop(tmp_path: Path) -> None:
    """kill -9 of a module mid-trial and again just before the stop: part 2 is timed from the
    trial's start; the restart after the late kill joins the next trial; a trial without the
    module counts as interrupted."""
    modules = tmp_path / "modules"
    make_ticker(modules, "Ticker", restart_on_crash="true")
    make_ticker(modules, "TickerB")
    # Long enough for the restart after the first kill to be recording well before the second,
    # even on a busy machine where a new module process takes a second or more to start.
    duration = 4.0
    proc = _record(
        tmp_path,
        modules,
        "--modules",
        "ticker,tickerb",
        "--duration",
        str(duration),
        "--trials",
        "2",
    )
    try:
        session, start = _trial_started(tmp_path / "data", 1)
        _sleep_until(start + 800_000_000)
        os.kill(_module_pid(proc.pid, "ticker"), signal.SIGKILL)
        # Just before the stop is sent (a lead time of 200 ms ahead of it).
        _sleep_until(start + int(duration * 1e9) - 350_000_000)
        os.kill(_module_pid(proc.pid, "ticker"), signal.SIGKILL)
        code, _, err = _finish(proc)
    finally:
        proc.kill()
    assert code == 1, err
    assert "Traceback" not in err
    manifest = _manifest(session)
    first, second = manifest["trials"]
    assert first["status"] == "interrupted"
    part2 = [f for f in first["files"] if "part2" in f["path"]]
    assert part2, first["files"]
    rows = _rows(session / part2[0]["path"])
    assert rows, "the restarted module recorded nothing in its part of the trial"
    for row in rows:
        t = int(row["t_mono_ns"])
        assert first["start"]["mono_ns"] <= t < first["stop"]["mono_ns"]
        assert int(row["t_trial_ns"]) == t - first["start"]["mono_ns"]
    # The module came back after the late kill and recorded the whole of trial 2.
    assert manifest["modules"]["Ticker"]["status"] in ("ok", "stopped")
    ticker = [f for f in second["files"] if f["module"] == "Ticker"]
    assert ticker and all(f["status"] == "complete" for f in ticker), second["files"]
    assert second["status"] == "complete"


def test_a_module_down_at_a_trial_start_makes_that_trial_interrupted(
    tmp_path: Path, module_dir: Path
) -> None:
    proc = _record(
        tmp_path, module_dir, "--modules", "ticker,tickerb", "--duration", "1.2", "--trials", "2"
    )
    try:
        session, start = _trial_started(tmp_path / "data", 1)
        _sleep_until(start + 500_000_000)
        os.kill(_module_pid(proc.pid, "ticker"), signal.SIGKILL)
        code, _, err = _finish(proc)
    finally:
        proc.kill()
    assert code == 1
    manifest = _manifest(session)
    assert [t["status"] for t in manifest["trials"]] == ["interrupted", "interrupted"]
    assert "Ticker: failed during trial 2" in err


def test_ctrl_c_just_before_the_stop_keeps_the_trial_and_its_stop_exact(
    tmp_path: Path, module_dir: Path
) -> None:
    for delay_s, second_signal in ((0.1, None), (0.05, 0.1), (0.6, 0.3)):
        data = tmp_path / f"run{delay_s}"
        duration = 1.5
        proc = _record(data, module_dir, "--modules", "ticker,notes", "--duration", str(duration))
        try:
            session, start = _trial_started(data / "data", 1)
            stop = start + int(duration * 1e9)
            _sleep_until(stop - int(delay_s * 1e9))
            sent = time.monotonic_ns()
            proc.send_signal(signal.SIGINT)
            if second_signal is not None:
                time.sleep(second_signal)
                proc.send_signal(signal.SIGINT)
            code, out, err = _finish(proc)
        finally:
            proc.kill()
        assert code == 130, err
        assert "Traceback" not in err and "Event loop is closed" not in err
        assert out.splitlines()[-1] == str(session)
        manifest = _manifest(session)
        [trial] = manifest["trials"]
        assert trial["status"] == "complete", (delay_s, trial)
        assert manifest["ended"] is not None
        assert all(m["status"] != "failed" for m in manifest["modules"].values()), manifest
        got = trial["stop"]["mono_ns"]
        if delay_s * 1e9 < 200_000_000:  # the stop was already on its way: it keeps its instant
            assert got == stop
        else:  # the trial ends a lead time (200 ms) after the signal, before its planned stop
            assert sent + 200_000_000 <= got <= sent + 300_000_000 and got < stop
        rows = _rows(session / trial["files"][0]["path"])
        assert rows and int(rows[-1]["t_mono_ns"]) < got


def test_a_frozen_master_does_not_kill_its_modules(tmp_path: Path, module_dir: Path) -> None:
    proc = _record(tmp_path, module_dir, "--modules", "ticker,notes", "--duration", "5")
    try:
        session, start = _trial_started(tmp_path / "data", 1)
        _sleep_until(start + 1_000_000_000)
        proc.send_signal(signal.SIGSTOP)
        time.sleep(2.5)
        proc.send_signal(signal.SIGCONT)
        code, _, err = _finish(proc)
    finally:
        proc.kill()
    assert code == 0, err
    manifest = _manifest(session)
    assert manifest["trials"][0]["status"] == "complete"
    assert all(m["restarts"] == 0 for m in manifest["modules"].values())


def test_too_little_free_space_refuses_to_record(tmp_path: Path, module_dir: Path) -> None:
    config = tmp_path / "master.txt"
    config.write_text("min_free_mb = 1e12\n")  # more than any disk has: "full" from the start
    result = run_cli(
        "--config",
        str(config),
        "record",
        "--modules",
        "ticker",
        "--duration",
        "1",
        "--data-dir",
        str(tmp_path / "data"),
        "--module-dir",
        str(module_dir),
        "--simulate",
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    [line] = [x for x in result.stderr.splitlines() if "disk full" in x]
    assert "MB free" in line and "Traceback" not in result.stderr
