"""USB/V4L2 webcam backend: what can be checked without a camera."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rpi_logger.modules.cameras.sources import backend_class, list_all_cameras
from rpi_logger.modules.cameras.sources.opencv_source import (
    OpenCVSource,
    choose_timestamp,
    list_v4l2_cameras,
    plausible_timestamp,
    pos_msec_to_ns,
)


def test_enumeration_without_cameras_is_empty(tmp_path: Path) -> None:
    assert list_v4l2_cameras(dev_glob=str(tmp_path / "video*"), sysfs=str(tmp_path)) == []
    # Nodes that are not V4L2 devices (here: plain files) are skipped, not fatal.
    (tmp_path / "video0").write_bytes(b"")
    (tmp_path / "sys" / "video0").mkdir(parents=True)
    (tmp_path / "sys" / "video0" / "name").write_text("Fake Cam\n")
    assert list_v4l2_cameras(dev_glob=str(tmp_path / "video*"), sysfs=str(tmp_path / "sys")) == []


def test_real_enumeration_never_raises() -> None:
    cams = OpenCVSource.list_cameras()
    assert isinstance(cams, list)
    if not Path("/dev/video0").exists():
        assert cams == []
    assert all(c.backend == "opencv" and not c.simulated for c in cams)


async def test_async_enumeration_and_registry() -> None:
    assert backend_class("opencv") is OpenCVSource
    assert isinstance(await OpenCVSource.list_cameras_async(), list)
    found = list_all_cameras()
    assert set(found) == {"picamera2", "opencv"}
    with pytest.raises(ValueError, match="unknown camera backend"):
        backend_class("gopro")


def test_driver_timestamp_plausibility() -> None:
    now = time.monotonic_ns()
    assert plausible_timestamp(now - 30_000_000, now)  # a buffer 30 ms old
    assert plausible_timestamp(now + 1_000_000, now)  # clock-read jitter
    assert not plausible_timestamp(None, now)
    assert not plausible_timestamp(0, now)  # driver gave nothing
    assert not plausible_timestamp(now - 10_000_000_000, now)  # another clock (or stale)
    assert not plausible_timestamp(now + 1_000_000_000, now)  # in the future
    # A wall-clock (CLOCK_REALTIME) stamp is decades away from the monotonic clock.
    assert not plausible_timestamp(time.time_ns(), now)


def test_pos_msec_conversion_and_choice() -> None:
    assert pos_msec_to_ns(None) is None
    assert pos_msec_to_ns(0.0) is None
    assert pos_msec_to_ns(float("nan")) is None
    assert pos_msec_to_ns(12345.678) == 12_345_678_000
    now = time.monotonic_ns()
    dev_ms = (now - 20_000_000) / 1e6
    t, dev = choose_timestamp(dev_ms, now)
    assert t == dev and abs(t - (now - 20_000_000)) < 1000
    t, dev = choose_timestamp(time.time() * 1000, now)  # implausible: fall back to read time
    assert t == now and dev is not None
    assert choose_timestamp(0.0, now) == (now, None)


async def test_opening_a_missing_device_is_a_clear_error() -> None:
    from rpi_logger.modules.cameras.frames import CameraError

    src = OpenCVSource("/dev/video-does-not-exist", width=640, height=480)
    with pytest.raises(CameraError, match="cannot open"):
        await src.open()
    assert not src.is_open
