"""The EyeTracker module end to end with the simulated Neon, under a real master: what a
researcher gets on disk, read back and compared with design.md §7's content."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.modules.eyetracker.eyetracker_checks import (
    SMALL_SCENE,
    by_stream,
    eyetracker_master,
    gaze_error_px,
    record_trial,
    rows,
)

from rpi_logger.modules.eyetracker.backends.simulated import DEVICE_OFFSET_NS
from rpi_logger.simulation.barcode import ms_of, read_video_barcodes
from rpi_logger.tools.verify import verify_session

# Timed against the clock with every frame or onset counted: alone on the cores (test.sh).
pytestmark = pytest.mark.exclusive


async def test_ten_second_trial_every_gaze_sample_on_the_host_clock(tmp_path: Path) -> None:
    """The longest test of the set (10 s, as the issue asks): rates, and every gaze row's x, y
    against design.md §7's function of its own t_mono_ns, which holds only with the device clock's
    offset measured (time echo) and applied."""
    async with eyetracker_master(tmp_path, **SMALL_SCENE) as master:
        session, trial = await record_trial(master, 10.0)
    files = by_stream(trial)
    seconds = (trial["stop"]["mono_ns"] - trial["start"]["mono_ns"]) / 1e9
    assert abs(seconds - 10.0) < 0.01

    gaze = rows(session / files["gaze"]["path"])
    imu = rows(session / files["imu"]["path"])
    gaze_hz, imu_hz = len(gaze) / seconds, len(imu) / seconds
    print(f"gaze {gaze_hz:.2f} Hz, imu {imu_hz:.2f} Hz over {seconds:.3f} s")
    assert abs(gaze_hz - 200) <= 2.0, gaze_hz
    assert abs(imu_hz - 110) <= 1.1, imu_hz

    worst = gaze_error_px(gaze)
    print(f"largest gaze error against design.md §7 at its own t_mono_ns: {worst:.4f} px")
    assert worst <= 1.0, f"largest gaze error {worst:.3f} px"
    # The raw device time is kept; it is the host time plus the device's (unknown) offset.
    for row in gaze[:: len(gaze) // 20]:
        offset = int(row["t_device_ns"]) - int(row["t_mono_ns"])
        assert abs(offset - DEVICE_OFFSET_NS) < 1_000_000
        assert row["worn"] == "1" and row["pupil_diameter_left"] and row["eyelid_aperture_right"]

    sync = rows(session / files["time_sync"]["path"])
    assert sync and all(r["accepted"] == "1" for r in sync)
    # Requests that meet (session and trial start close together) share one measurement.
    assert any("trial start" in r["source"] for r in sync)
    for r in sync:
        assert abs(int(r["offset_ns"]) - DEVICE_OFFSET_NS) < 1_000_000
        assert r["std_ns"] and r["roundtrip_ns"] and r["mean_offset_ns"] and r["median_offset_ns"]

    blinks = [r for r in rows(session / files["events"]["path"]) if r["event"] == "blink"]
    assert len(blinks) in (3, 4)  # one every 3 s
    for r in blinks:
        assert int(r["start_mono_ns"]) % 3_000_000_000 in range(-1_000_000, 1_000_001) or (
            3_000_000_000 - int(r["start_mono_ns"]) % 3_000_000_000 <= 1_000_000
        )
        assert abs(float(r["duration_s"]) - 0.15) < 1e-6

    report = await asyncio.to_thread(verify_session, session)
    assert report.ok, [f for f in report.findings if f.level == "error"]


async def test_scene_video_at_full_size_barcodes_frames_and_pts(tmp_path: Path) -> None:
    """The 1600x1200 scene through the Cameras' video sinks: frame count, barcodes and PTS."""
    async with eyetracker_master(tmp_path, preview_fps=0) as master:
        session, trial = await record_trial(master, 3.0)
    entry = by_stream(trial)["scene"]
    assert (entry["width"], entry["height"], entry["kind"]) == (1600, 1200, "video")
    timing = rows(session / entry["timing"])
    scan = await asyncio.to_thread(read_video_barcodes, session / entry["path"])
    assert scan.error is None
    assert len(scan.frames) == len(timing) == entry["frames"] >= 60
    start = trial["start"]["mono_ns"]
    for frame, row in zip(scan.frames, timing, strict=True):
        t = int(row["t_mono_ns"])
        # The barcode holds the capture time on the host clock (half way through a ms); the
        # row has it through the measured offset: the same ms unless that is 0.5 ms off.
        assert frame.ms == ms_of(t), (frame, row)
        assert frame.counter == int(row["sequence"])
        assert abs(frame.pts_s - (t - start) / 1e9) <= 0.001
    counters = [f.counter for f in scan.frames]
    assert counters == sorted(counters)
    report = await asyncio.to_thread(verify_session, session)
    assert report.ok, [f for f in report.findings if f.level == "error"]


async def test_a_two_second_disconnect_is_a_gap_and_the_files_go_on(tmp_path: Path) -> None:
    async with eyetracker_master(
        tmp_path, **SMALL_SCENE, sim_disconnect_after_s=1.5, sim_disconnect_s=2.0
    ) as master:
        session = await master.start_session()
        await master.start_trial()
        await asyncio.sleep(2.2)
        status = master.modules["EyeTracker"].last_status
        seen_down = False
        for _ in range(40):  # the stall is noticed after stall_timeout_s (1 s)
            status = master.modules["EyeTracker"].last_status
            if status.get("connected") is False:
                seen_down = True
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(3.5)
        assert master.modules["EyeTracker"].last_status.get("connected") is True
        trial = await master.stop_trial()
        await master.end_session()
    assert seen_down, status
    session_dir = session.directory
    files = by_stream(trial)
    for stream in ("gaze", "imu", "scene"):
        [gap] = files[stream]["gaps"]
        length = (gap["end_mono_ns"] - gap["start_mono_ns"]) / 1e9
        assert 1.9 <= length <= 4.0, (stream, gap)
        assert gap["reason"].startswith("disconnected")
        assert files[stream]["disconnects"] == 1
    # The frames of the disconnect are its gap, not device drops as well.
    assert files["scene"]["dropped_by_cause"]["device_sequence_gap"] <= 5
    gap = files["gaze"]["gaps"][0]
    assert (
        abs(gap["samples_missing"] - round((gap["end_mono_ns"] - gap["start_mono_ns"]) / 5e6) + 1)
        <= 1
    )

    gaze = rows(session_dir / files["gaze"]["path"])
    times = [int(r["t_mono_ns"]) for r in gaze]
    before = [t for t in times if t <= gap["start_mono_ns"]]
    after = [t for t in times if t >= gap["end_mono_ns"]]
    assert len(before) + len(after) == len(times) and len(before) > 200 and len(after) > 200
    assert times == sorted(set(times))
    # After the reconnect the clock was measured again: still on design.md §7's path.
    assert gaze_error_px(gaze) <= 1.0

    report = await asyncio.to_thread(verify_session, session_dir)
    assert report.ok, [f for f in report.findings if f.level == "error"]
    listed = [f for f in report.findings if "gap (disconnected" in f.message]
    assert {Path(f.where).name for f in listed} >= {
        "trial001_gaze.csv",
        "trial001_imu.csv",
        "trial001_scene.mp4",
    }
