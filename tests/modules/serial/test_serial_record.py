"""`rpi-logger record --modules DRT,VOG,GPS --simulate` as a user runs it: the serial modules'
files where design.md §4 puts them, listed in the manifest, rows inside their trials, `verify`
clean; then Ctrl-C just before a trial's stop and a disk that fills during a serial trial."""

from __future__ import annotations

import csv
import json
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.faults.campaign import Recording
from tests.faults.test_disk_full import fill, tmpfs  # noqa: F401  (tmpfs is a fixture)
from tests.helpers import record_command, run_cli

from rpi_logger.core.master_config import MasterConfig
from rpi_logger.simulation.serial.gps import position

S = 1_000_000_000
SERIAL = ("DRT", "VOG", "GPS")


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def manifest_of(session: Path) -> dict[str, Any]:
    return json.loads((session / "session.json").read_text())


def test_serial_modules_and_cameras_two_trials(tmp_path: Path) -> None:
    """Two trials of 6.5 s: long enough for the simulated sDRT's first stimulus (4-5 s after
    the experiment starts), six GPS fixes and four VOG lens changes in each."""
    result = run_cli(
        *record_command(tmp_path / "data", "DRT,VOG,GPS,Cameras", 6.5, trials=2)[3:], timeout=90
    )
    assert result.returncode == 0, result.stderr[-3000:]
    session = Path(result.stdout.strip().splitlines()[-1])
    manifest = manifest_of(session)
    assert all(manifest["modules"][m]["status"] == "ok" for m in SERIAL), manifest["modules"]
    for trial in manifest["trials"]:
        n, start, stop = trial["number"], trial["start"]["mono_ns"], trial["stop"]["mono_ns"]
        assert trial["status"] == "complete"
        listed = {f["path"]: f for f in trial["files"]}
        expected = {
            f"DRT/sDRT/trial{n:03d}_drt.csv",
            f"DRT/sDRT/trial{n:03d}_time_sync.csv",
            f"VOG/sVOG/trial{n:03d}_vog.csv",
            f"GPS/gps/trial{n:03d}_gps.csv",
        }
        assert expected <= set(listed), sorted(listed)
        assert {f["module"] for f in trial["files"]} == {*SERIAL, "Cameras"}
        rows = {path: read_rows(session / path) for path in expected}
        for path, got in rows.items():
            assert listed[path]["status"] == "complete" and listed[path]["kind"] == "csv"
            assert all(start <= int(r["t_mono_ns"]) < stop for r in got), path
        drt = rows[f"DRT/sDRT/trial{n:03d}_drt.csv"]
        assert drt and all(r["result"] in ("hit", "miss") for r in drt), drt
        vog = rows[f"VOG/sVOG/trial{n:03d}_vog.csv"]
        events = [r["event"] for r in vog]
        assert events[-1] == "trial_end" and events.count("open") >= 2, events
        gps = rows[f"GPS/gps/trial{n:03d}_gps.csv"]
        assert len(gps) >= 5 and all(r["stale"] == "0" for r in gps)
        for r in gps:
            lat, lon = position(float(r["t_fix_unix"]))
            assert math.isclose(float(r["lat"]), lat, abs_tol=1e-7)
            assert math.isclose(float(r["lon"]), lon, abs_tol=1e-7)
    check = run_cli("verify", str(session), "--json")
    report = json.loads(check.stdout)
    assert check.returncode == 0 and report["ok"], check.stdout
    # Nothing to say about the serial files (the cameras may drop frames on a busy machine).
    folders = tuple(f"{m}/" for m in SERIAL)
    serial = [f for f in report["findings"] if f["where"].startswith(folders)]
    assert not [f for f in serial if f["level"] != "info"], serial


def test_ctrl_c_just_before_a_trials_stop(tmp_path: Path) -> None:
    """SIGINT to the master 0.3 s before trial 1's stop instant: the run ends on its own, every
    serial CSV reads back whole, and each trial's status agrees with its files'."""
    duration = 3.0
    rec = Recording(
        record_command(tmp_path / "data", "DRT,VOG,GPS", duration, trials=2),
        tmp_path / "data",
        hang_bound_s=60,
    )
    rec.start()
    try:
        started = rec.wait_for(lambda: 1 in rec.timeline.starts)
        assert started, rec.stderr
        target = rec.timeline.starts[1] + int((duration - 0.3) * S)
        time.sleep(max(0.0, (target - time.monotonic_ns()) / 1e9))
        assert rec.master is not None
        rec.master.send_signal(signal.SIGINT)
    finally:
        rec.finish()
    assert not rec.timed_out and not rec.survivors, (rec.hang_state, rec.survivors)
    assert rec.returncode == 130, rec.stderr[-3000:]  # interrupted, said so
    assert "Traceback" not in rec.stderr, rec.stderr[-3000:]
    session = rec.session_dir()
    assert session is not None
    manifest = manifest_of(session)
    assert manifest["trials"], manifest
    for trial in manifest["trials"]:
        statuses = {f["status"] for f in trial["files"]}
        assert trial["status"] in ("complete", "interrupted"), trial
        if trial["status"] == "complete":
            assert statuses == {"complete"}, trial["files"]
        for entry in trial["files"]:
            with (session / entry["path"]).open(newline="") as f:
                table = list(csv.reader(f))
            assert table and all(len(row) == len(table[0]) for row in table), entry["path"]


def _min_free_mb() -> float:
    return float(MasterConfig(data_dir=Path()).min_free_mb)


@pytest.mark.timeout(120)
def test_disk_fills_during_a_serial_trial(tmpfs: Callable[[int], Path]) -> None:  # noqa: F811
    """The disk fills 1 s into a serial trial: one whole line says "disk full" (not run into a
    log line), the run ends well within 20 s, the session says it, and no trial is left
    "recording"."""
    mount = tmpfs(int(_min_free_mb()) + 16)
    rec = Recording(record_command(mount / "data", "DRT,VOG,GPS", 6.0), mount / "data", 60)
    rec.start()
    full_ns = time.monotonic_ns()
    try:
        started = rec.wait_for(
            lambda: 1 in rec.timeline.starts and time.monotonic_ns() > rec.timeline.starts[1] + S
        )
        if started:
            fill(mount, leave_bytes=64 * 1024)
            full_ns = time.monotonic_ns()
    finally:
        rec.finish()
    assert started, rec.stderr[-3000:]
    assert not rec.timed_out and rec.exit_ns is not None
    took = (rec.exit_ns - full_ns) / 1e9
    said = rec.stderr.splitlines()
    assert rec.returncode not in (0, None) and took < 20, (took, rec.stderr)
    assert "rpi-logger record: recording stopped: disk full" in said, rec.stderr
    assert "Traceback" not in rec.stderr
    session = rec.session_dir()
    assert session is not None
    text = (session / "session.json").read_text()
    assert "disk full" in text
    assert all(t["status"] != "recording" for t in json.loads(text)["trials"])
