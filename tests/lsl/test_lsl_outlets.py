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

import pytest
from tests.lsl import netns

ROOT = Path(__file__).parents[2]

# Samples checked against their host times as another process receives them: alone on the
# cores (test.sh).
pytestmark = pytest.mark.exclusive


def test_local_clock_is_the_host_monotonic_clock() -> None:
    """design.md §11, checked rather than assumed: our outlets stamp t_mono_ns / 1e9 as is."""
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
        s = t / 1e9  # the simulated Neon's gaze (design.md §7), as a check of the content itself
        assert math.isclose(x, 800 + 600 * math.sin(2 * math.pi * s / 4), abs_tol=0.5)

    imu = {round(t * 1e9): v for t, v in received["EyeTracker IMU"]["samples"]}
    # Each stream's inlet connects on its own: the IMU's may join after the gaze's.
    imu_first = min(imu)
    with (folder / "trial001_imu.csv").open() as f:
        imu_rows = [r for r in csv.DictReader(f) if int(r["t_mono_ns"]) >= imu_first + 10_000_000]
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


def test_audio_frames_and_trial_markers_arrive_at_their_host_times(tmp_path: Path) -> None:
    """Audio as chunks (each sample at its block's host time + i / rate, values as in the WAV),
    a camera's frame markers (its timing CSV's rows) and the trials' start and stop markers at
    the instants in the manifest."""
    import numpy as np
    import soundfile

    out = tmp_path / "received.json"
    names = ["Audio simulated0", "RPi Logger trials", "Cameras synthetic0 frames"]
    reader = subprocess.Popen(
        [sys.executable, "-m", "tests.lsl.reader", str(out), *names],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        record = subprocess.run(
            [sys.executable, "-m", "rpi_logger", "record", "--modules", "Audio,Notes,Cameras",
             "--duration", "2", "--trials", "2", "--simulate", "--data-dir", str(tmp_path),
             "--set", "audio.lsl=true", "--set", "notes.lsl=true", "--set", "cameras.lsl=true",
             "--set", "cameras.synthetic_count=1", "--set", "cameras.width=512",
             "--set", "cameras.height=288", "--set", "cameras.fps=10"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
        reader.communicate("", timeout=30)
    finally:
        reader.kill()
    assert record.returncode == 0, record.stdout + record.stderr
    session = Path(record.stdout.strip().splitlines()[-1])
    received = json.loads(out.read_text())
    manifest = json.loads((session / "session.json").read_text())
    markers = [(round(t * 1e9), v) for t, v in received["RPi Logger trials"]["samples"]]
    second = manifest["trials"][1]
    assert (second["start"]["mono_ns"], ["start", "2", ""]) in markers
    assert (second["stop"]["mono_ns"], ["stop", "2", ""]) in markers

    samples = received["Audio simulated0"]["samples"]
    stamps = np.array([t for t, _ in samples])
    values = np.array([v[0] for _, v in samples])
    folder = session / "Audio" / "simulated0"
    wav, rate = soundfile.read(folder / "trial002_simulated0.wav", dtype="int16")
    with (folder / "trial002_simulated0_timing.csv").open() as f:
        blocks = list(csv.DictReader(f))
    checked = 0
    for block in blocks:
        t0, first = int(block["t_mono_ns"]), int(block["sample_index"])
        i = int(np.searchsorted(stamps, t0 / 1e9 - 1e-6))
        if i >= len(stamps) or abs(stamps[i] - t0 / 1e9) > 1e-6:
            continue  # the block was pushed before the reader joined
        n = int(block["frames"])
        got = values[i : i + n]
        assert np.array_equal(got, wav[first : first + len(got)].reshape(-1)), block
        assert abs(stamps[i + n - 1] - (t0 / 1e9 + (n - 1) / rate)) < 1e-6
        checked += 1
    assert checked >= len(blocks) - 2, (checked, len(blocks))

    frames = {round(t * 1e9): v for t, v in received["Cameras synthetic0 frames"]["samples"]}
    timing = session / "Cameras" / "synthetic0" / "trial002_synthetic0_timing.csv"
    with timing.open() as f:
        video_rows = list(csv.DictReader(f))
    assert len(video_rows) >= 15
    # Every marker that arrived is its frame's row, to the ns; a marker may be lost (an outlet
    # drops rather than wait when a busy machine holds its thread back), never altered.
    found = 0
    for row in video_rows:
        marker = frames.get(int(row["t_mono_ns"]))
        if marker is not None:
            assert marker[0] == int(row["frame_index"]), row
            found += 1
    assert found >= len(video_rows) - 2, (found, len(video_rows))
