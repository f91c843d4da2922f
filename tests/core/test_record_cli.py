"""`rpi-logger record` and `verify` as a user runs them, and the master's exit paths."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from tests.helpers import run_cli


def test_two_trials_headless(tmp_path: Path, module_dir: Path) -> None:
    data = tmp_path / "data"
    result = run_cli(
        "record",
        "--modules",
        "notes,ticker",
        "--duration",
        "1",
        "--trials",
        "2",
        "--label",
        "../pilot run!",
        "--data-dir",
        str(data),
        "--module-dir",
        str(module_dir),
        "--simulate",
    )
    assert result.returncode == 0, result.stderr
    session = Path(result.stdout.strip().splitlines()[-1])
    assert session.parent == data.resolve() and session.name.endswith("_pilot_run")
    manifest = json.loads((session / "session.json").read_text())
    assert manifest["schema"] == "rpi-logger/session/1" and manifest["simulated"] is True
    assert manifest["session_id"] == session.name
    assert [t["number"] for t in manifest["trials"]] == [1, 2]
    for trial in manifest["trials"]:
        assert trial["status"] == "complete"
        # Loop lag of each process during this trial alone.
        assert set(trial["health"]) == {"Ticker", "Notes", "master"}
        assert trial["health"]["Ticker"]["loop_lag_ms"]["samples"] > 50
        start, stop = trial["start"]["mono_ns"], trial["stop"]["mono_ns"]
        assert abs((stop - start) / 1e9 - 1.0) < 0.001  # exactly the asked duration
        [entry] = trial["files"]
        with (session / entry["path"]).open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert 95 <= len(rows) <= 101
        assert all(start <= int(r["t_mono_ns"]) < stop for r in rows)
    assert {"Ticker", "Notes"} <= set(manifest["health"])
    for process in ("Ticker", "Notes", "master"):
        health = manifest["health"][process]
        assert 0 <= health["loop_lag_ms"]["p50"] <= health["loop_lag_ms"]["p99"]
        assert health["cpu_percent"] >= 0 and health["rss_mb"] > 10
    assert (session / "Notes" / "notes.csv").read_text().startswith("note_index,t_mono_ns")
    master_log = (session / "master.log").read_text()
    assert "[Ticker pid=" in master_log and "[master pid=" in master_log  # every process named
    rotating = tmp_path / "xdg-state" / "rpi-logger" / "logs" / "rpi-logger.log"
    assert "session" in rotating.read_text()
    check = run_cli("verify", str(session))
    assert check.returncode == 0, check.stdout
    assert "OK" in check.stdout.splitlines()[-1]


def test_a_module_dying_mid_trial_makes_record_fail(tmp_path: Path, module_dir: Path) -> None:
    result = run_cli(
        "record",
        "--modules",
        "ticker,tickerb",
        "--duration",
        "2",
        "--data-dir",
        str(tmp_path),
        "--module-dir",
        str(module_dir),
        "--set",
        "ticker.crash_after_s=0.5",
    )
    assert result.returncode == 1
    assert "Ticker: failed during trial 1" in result.stderr
    assert "Traceback" not in result.stderr
    session = Path(result.stdout.strip().splitlines()[-1])
    manifest = json.loads((session / "session.json").read_text())
    assert manifest["trials"][0]["status"] == "interrupted"
    assert manifest["modules"]["Ticker"]["status"] == "failed"
    check = run_cli("verify", str(session))
    assert "interrupted" in check.stdout


def test_record_fails_clearly_for_unknown_module(tmp_path: Path) -> None:
    result = run_cli(
        "record", "--modules", "teleporter", "--duration", "1", "--data-dir", str(tmp_path)
    )
    assert result.returncode != 0
    assert "unknown module 'teleporter'" in result.stderr
    assert "Traceback" not in result.stderr


def test_record_fails_when_a_module_cannot_start(tmp_path: Path, module_dir: Path) -> None:
    bad = module_dir / "ticker" / "config.txt"
    bad.write_text(bad.read_text() + "rate_hz = fast\n")
    result = run_cli(
        "record",
        "--modules",
        "ticker",
        "--duration",
        "1",
        "--data-dir",
        str(tmp_path),
        "--module-dir",
        str(module_dir),
    )
    assert result.returncode != 0
    assert "rate_hz" in result.stderr and "Traceback" not in result.stderr


def test_verify_flags_a_broken_session(tmp_path: Path) -> None:
    result = run_cli("verify", str(tmp_path))
    assert result.returncode == 1 and "session.json" in result.stdout


def _wait_for_recording(session_parent: Path, timeout: float = 20) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for manifest in session_parent.glob("session_*/session.json"):
            try:
                data = json.loads(manifest.read_text())
            except ValueError:
                continue
            if data["trials"] and data["trials"][-1]["status"] == "recording":
                return manifest.parent
        time.sleep(0.1)
    raise AssertionError("no trial started")


def _children(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _master(tmp_path: Path, module_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rpi_logger",
            "record",
            "--modules",
            "ticker,tickerb,notes",
            "--duration",
            "60",
            "--data-dir",
            str(tmp_path / "data"),
            "--module-dir",
            str(module_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )


def test_kill9_master_leaves_no_process_and_closed_files(tmp_path: Path, module_dir: Path) -> None:
    master = _master(tmp_path, module_dir)
    try:
        session = _wait_for_recording(tmp_path / "data")
        time.sleep(1.0)
        children = _children(master.pid)
        assert len(children) == 3
        master.kill()
        master.wait(5)
        killed = time.monotonic()
        _, alive = psutil.wait_procs(children, timeout=3)
        assert not alive, f"modules still running 3 s after the master died: {alive}"
        print(f"\nmodules exited {time.monotonic() - killed:.2f} s after kill -9 of the master")
    finally:
        master.kill()
        master.communicate()
    # Each module closed its file cleanly: complete rows only, nothing cut.
    for path in (session / "Ticker").glob("*.csv"):
        text = path.read_text()
        assert text.endswith("\n")
        rows = list(csv.DictReader(text.splitlines()))
        assert len(rows) > 50 and all(r["t_wall_unix"] for r in rows)
    report = run_cli("verify", str(session))
    assert "never stopped" in report.stdout


def test_sigterm_and_sigint_end_the_master_cleanly(tmp_path: Path, module_dir: Path) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        master = _master(tmp_path / sig.name, module_dir)
        try:
            session = _wait_for_recording(tmp_path / sig.name / "data")
            children = _children(master.pid)
            master.send_signal(sig)
            master.wait(15)
            _, alive = psutil.wait_procs(children, timeout=3)
            assert not alive
        finally:
            master.kill()
            master.communicate()
        if sig == signal.SIGINT:  # Ctrl-C stops the trial and ends the session properly
            manifest = json.loads((session / "session.json").read_text())
            assert manifest["trials"][-1]["status"] == "complete"
            assert manifest["ended"] is not None
