"""CSI backend: unavailable without picamera2 (with a reason); capture logic against a fake."""

from __future__ import annotations

import sys
import threading
import time
import types
from typing import ClassVar

import numpy as np
import pytest

from rpi_logger.framework.gaps import SequenceGapCounter
from rpi_logger.modules.cameras.frames import unpad_yuv420
from rpi_logger.modules.cameras.sources import picamera2_source as p2


def test_unavailable_without_picamera2_names_the_reason() -> None:
    if "picamera2" in sys.modules or p2._load_picamera2() is not None:
        pytest.skip("picamera2 is installed here")
    ok, why = p2.Picamera2Source.available()
    assert not ok and "picamera2" in why
    assert p2.Picamera2Source.list_cameras() == []


def test_sequence_step_counts_missed_slots() -> None:
    assert p2.sequence_step(None, 5, 33333) == 1
    assert p2.sequence_step(0, 33_333_000, 33333) == 1
    assert p2.sequence_step(0, 34_900_000, 33333) == 1  # jitter
    assert p2.sequence_step(0, 100_000_000, 33333) == 3  # two frames missed
    assert p2.sequence_step(0, 10, None) == 1


def test_unpad_yuv420() -> None:
    w, h, stride = 6, 4, 8
    y = np.arange(h * w, dtype=np.uint8).reshape(h, w)
    u = np.full((h // 2, w // 2), 100, np.uint8) + np.arange(w // 2, dtype=np.uint8)
    v = np.full((h // 2, w // 2), 200, np.uint8) + np.arange(w // 2, dtype=np.uint8)
    flat = np.zeros(h * stride + 2 * (h // 2) * (stride // 2), np.uint8)
    flat[: h * stride].reshape(h, stride)[:, :w] = y
    off = h * stride
    csz = (h // 2) * (stride // 2)
    flat[off : off + csz].reshape(h // 2, stride // 2)[:, : w // 2] = u
    flat[off + csz :].reshape(h // 2, stride // 2)[:, : w // 2] = v
    out = unpad_yuv420(flat.reshape(h * 3 // 2, stride), w, h, stride)
    assert out.shape == (h * 3 // 2, w)
    np.testing.assert_array_equal(out[:h], y)
    chroma = out[h:].reshape(-1)
    np.testing.assert_array_equal(chroma[: u.size], u.reshape(-1))
    np.testing.assert_array_equal(chroma[u.size :], v.reshape(-1))


class _FakeRequest:
    def __init__(self, image: np.ndarray, md: dict) -> None:
        self._image, self._md, self.released = image, md, False

    def make_array(self, name: str) -> np.ndarray:
        assert name == "main"
        return self._image.copy()

    def get_metadata(self) -> dict:
        return dict(self._md)

    def release(self) -> None:
        self.released = True


class _FakePicamera2:
    """Just enough of picamera2: 100 fps sensor timestamps, one skipped frame at #5."""

    instances: ClassVar[list[_FakePicamera2]] = []

    def __init__(self, num: int = 0) -> None:
        self.num, self.started, self.closed = num, False, False
        self.camera_config: dict = {}
        self._n = 0
        self._t0 = time.monotonic_ns()
        _FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict]:
        return [
            {"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/i2c@88000/imx708@1a"}
        ]

    def create_video_configuration(self, main: dict, controls: dict, buffer_count: int) -> dict:
        self.controls = controls
        return {"main": dict(main, stride=main["size"][0] * 3), "buffer_count": buffer_count}

    def configure(self, config: dict) -> None:
        self.camera_config = config

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True

    def capture_request(self) -> _FakeRequest:
        time.sleep(0.01)  # the camera's frame interval (this is the capture thread)
        self._n += 1
        if self._n == 5:
            self._n += 1  # the camera produced frame 5, we never saw it
        w, h = self.camera_config["main"]["size"]
        img = np.full((h, w, 3), self._n % 255, np.uint8)
        ts = self._t0 + self._n * 10_000_000
        return _FakeRequest(
            img, {"SensorTimestamp": ts, "FrameDuration": 10000, "ExposureTime": 5000}
        )


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[_FakePicamera2]:
    mod = types.ModuleType("picamera2")
    mod.Picamera2 = _FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", mod)
    monkeypatch.setattr(p2, "_picamera2", None)
    monkeypatch.setattr(p2, "_import_error", None)
    _FakePicamera2.instances.clear()
    return _FakePicamera2


def test_enumeration_through_picamera2(fake_picamera2: type[_FakePicamera2]) -> None:
    assert p2.Picamera2Source.available() == (True, "")
    (cam,) = p2.Picamera2Source.list_cameras()
    assert cam.id == "picam0" and "imx708" in cam.name and cam.backend == "picamera2"


async def test_capture_thread_delivers_sensor_timestamps_and_gaps(
    fake_picamera2: type[_FakePicamera2],
) -> None:
    src = p2.Picamera2Source(0, width=64, height=48, fps=100)
    frames = []
    loop_thread = threading.get_ident()
    async with src:
        async for f in src:
            assert threading.get_ident() == loop_thread
            frames.append(f)
            if len(frames) == 8:
                break
    cam = fake_picamera2.instances[0]
    assert cam.controls == {"FrameDurationLimits": (10000, 10000)}
    assert not cam.started and cam.closed
    t0 = cam._t0
    assert [f.sequence for f in frames] == [0, 1, 2, 3, 5, 6, 7, 8]
    gaps = SequenceGapCounter()
    for f in frames:
        gaps.update(f.sequence)
        assert f.t_mono_ns == f.t_device_ns
        assert (f.t_mono_ns - t0) % 10_000_000 == 0
        assert f.image.shape == (48, 64, 3)
    assert gaps.gaps == 1 and src.stats.dropped_queue_overflow == 0
