"""Our streams as LSL outlets (``lsl = true``), read by a pylsl inlet in another process.

Runs inside a private network namespace (conftest.py).
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.lsl import netns

ROOT = Path(__file__).parents[2]


def test_local_clock_is_the_host_monotonic_clock() -> None:
    """SPEC §11, checked rather than assumed: our outlets stamp t_mono_ns / 1e9 as is."""
    netns.assert_contained()
    import time

    import pylsl

    diffs = []
    for _ in range(20):
        a = time.monotonic()
        t = pylsl.local_clock()
        b = time.monotonic()
        diffs.append(t - (a + b) / 2)
    assert min(abs(d) for d in diffs) < 1e-4, diffs


def test_simulated_gaze_arrives_in_another_process_with_the_csv_times_and_values(
    tmp_path: Path,
) -> None:
    """Must show: every gaze row of the CSV, pushed while the inlet was connected, arrives with
    a time stamp equal to its t_mono_ns (within 1 µs) and the same values; IMU and events too."""
    out = tmp_path / "received.json"
    names = ["EyeTracker gaze", "EyeTracker IMU", "EyeTracker events"]
    reader = subprocess.Popen(
        [sys.executable, "-m", "tests.lsl.reader", str(out), *names],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        record = subprocess.run(
            [sys.executable, "-m", "rpi_logger", "record", "--modules", "EyeTracker",
             "--duration", "4", "--simulate", "--data-dir", str(tmp_path),
             "--set", "eyetracker.lsl=true", "--set", "eyetracker.scene=false"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
        reader.communicate("", timeout=30)  # stdin closed: it writes what it received
    finally:
        reader.kill()
    assert record.returncode == 0, record.stdout + record.stderr
    session = Path(record.stdout.strip().splitlines()[-1])
    received = json.loads(out.read_text())
    folder = next((session / "EyeTracker").iterdir())

    gaze = received["EyeTracker gaze"]
    by_time = {round(t * 1e9): v for t, v in gaze["samples"]}
    first = min(by_time)
    with (folder / "trial001_gaze.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if int(r["t_mono_ns"]) >= first + 10_000_000]
    assert len(rows) > 200 * 2  # the inlet was connected for most of the 4 s trial
    stamps = sorted(by_time)
    for row in rows:
        t = int(row["t_mono_ns"])
        near = min(stamps, key=lambda s: abs(s - t)) if t not in by_time else t
        assert abs(near - t) <= 1_000, f"no sample within 1 µs of {t}"
        x, y, worn = by_time[near]
        assert (x, y, worn) == (float(row["x"]), float(row["y"]), float(row["worn"]))
        s = t / 1e9  # the simulated Neon's gaze (SPEC §7), as a check of the content itself
        assert math.isclose(x, 800 + 600 * math.sin(2 * math.pi * s / 4), abs_tol=0.5)

    imu = {round(t * 1e9): v for t, v in received["EyeTracker IMU"]["samples"]}
    with (folder / "trial001_imu.csv").open() as f:
        imu_rows = [r for r in csv.DictReader(f) if int(r["t_mono_ns"]) >= first + 10_000_000]
    assert imu_rows and all(
        math.isclose(imu[int(r["t_mono_ns"])][0], float(r["gyro_x"]), rel_tol=1e-9, abs_tol=1e-9)
        for r in imu_rows
        if int(r["t_mono_ns"]) in imu
    )
    assert sum(int(r["t_mono_ns"]) in imu for r in imu_rows) >= len(imu_rows) - 2

    info = ET.fromstring(gaze["info"])  # XDF metadata: channels, units, host, module, device
    labels = [c.findtext("label") for c in info.findall("./desc/channels/channel")]
    units = [c.findtext("unit") for c in info.findall("./desc/channels/channel")]
    assert labels == ["x", "y", "worn"] and units[:2] == ["pixels", "pixels"]
    assert info.findtext("./desc/rpi_logger/module") == "EyeTracker"
    assert info.findtext("./desc/rpi_logger/device") == folder.name
    assert info.findtext("type") == "Gaze" and float(info.findtext("nominal_srate")) == 200
