"""The LSL module records another process's stream: exact times, gaps, and the trial window.

Runs inside a private network namespace (conftest.py): the publisher, the master and the LSL
module process all see only the namespace's loopback.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import run_cli

ROOT = Path(__file__).parents[2]


@contextlib.contextmanager
def publisher(name: str, rate: float, seconds: float) -> Iterator[subprocess.Popen]:
    """`tests/lsl/publisher.py` in its own process, once its outlet exists."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.lsl.publisher", name, str(rate), str(seconds)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def session_of(result: subprocess.CompletedProcess) -> Path:
    assert result.returncode == 0, result.stdout + result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def test_a_500_hz_stream_is_recorded_with_each_row_at_its_own_time(tmp_path: Path) -> None:
    """Must show: 500 Hz, value = f(publisher's local_clock()), 5 s, every row within 1 ms."""
    with publisher("Sine500", 500, 30):
        result = run_cli(
            "record", "--modules", "LSL", "--duration", "5", "--data-dir", str(tmp_path),
            "--set", "lsl.stream_name=Sine500",
        )  # fmt: skip
    session = session_of(result)
    rows = read_rows(session / "LSL" / "Sine500" / "trial001_Sine500.csv")
    manifest = json.loads((session / "session.json").read_text())
    trial = manifest["trials"][0]
    start, stop = trial["start"]["mono_ns"], trial["stop"]["mono_ns"]
    ts = [int(r["t_mono_ns"]) for r in rows]
    gaps = sorted(b - a for a, b in itertools.pairwise(ts))[-5:]
    assert 2400 <= len(rows) <= 2500, (len(rows), ts[0] - start, stop - ts[-1], gaps)
    worst = 0.0
    for row in rows:
        t_ns = int(row["t_mono_ns"])
        assert start <= t_ns < stop
        value_t = float(row["t"])  # the publisher's local_clock() when it pushed
        worst = max(worst, abs(value_t - t_ns / 1e9))
        assert math.isclose(float(row["sine"]), math.sin(2 * math.pi * value_t), abs_tol=1e-9)
        assert float(row["t_remote"]) == value_t  # its own time stamp, kept as sent
    assert worst < 0.001, f"a row is {worst * 1e3:.3f} ms from its own time"
    ts = [int(r["t_mono_ns"]) for r in rows]
    assert all(b > a for a, b in itertools.pairwise(ts))
    sync = read_rows(session / "LSL" / "Sine500" / "trial001_time_sync.csv")
    assert sync and all(abs(int(r["offset_ns"])) < 1_000_000 for r in sync)
    files = {Path(f["path"]).name: f for f in trial["files"]}
    assert files["trial001_Sine500.csv"]["frames"] == len(rows)
    assert files["trial001_Sine500.csv"]["lsl"]["nominal_srate"] == 500
    verify = run_cli("verify", str(session))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_publisher_that_exits_mid_trial_is_a_gap_and_is_picked_up_again(tmp_path: Path) -> None:
    """Must show: the publisher goes away for a while mid-trial and comes back."""
    recorder = subprocess.Popen(
        [sys.executable, "-m", "rpi_logger", "record", "--modules", "LSL", "--duration", "9",
         "--data-dir", str(tmp_path), "--set", "lsl.stream_name=Flaky"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with publisher("Flaky", 100, 5):
            time.sleep(4.5)
        down = time.monotonic_ns()
        time.sleep(2.0)
        back = time.monotonic_ns()
        with publisher("Flaky", 100, 30):
            out, err = recorder.communicate(timeout=90)
    finally:
        recorder.kill()
    assert recorder.returncode == 0, out + err
    session = Path(out.strip().splitlines()[-1])
    rows = read_rows(session / "LSL" / "Flaky" / "trial001_Flaky.csv")
    ts = [int(r["t_mono_ns"]) for r in rows]
    manifest = json.loads((session / "session.json").read_text())
    record = next(
        f for f in manifest["trials"][0]["files"] if f["path"].endswith("trial001_Flaky.csv")
    )
    (gap,) = record["gaps"]
    assert gap["reason"] == "stream lost"
    # The gap runs from the last sample before the exit to the first one after the return.
    assert gap["end_mono_ns"] - gap["start_mono_ns"] >= 1_500_000_000
    assert gap["start_mono_ns"] in ts and gap["end_mono_ns"] in ts
    assert gap["start_mono_ns"] < down + 100_000_000 and gap["end_mono_ns"] >= back
    after = [t for t in ts if t >= gap["end_mono_ns"]]
    assert len(after) > 100, "recording did not resume"  # over a second at 100 Hz
    assert record["connected_at_stop"] is True
    verify = run_cli("verify", "--json", str(session))
    assert "stream lost" in verify.stdout
