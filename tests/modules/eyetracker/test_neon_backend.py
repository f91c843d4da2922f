"""The real Neon backend against the realtime API's own data classes, fed through the API's own
function names (`Device`, `receive_gaze_data`, ...): every gaze payload kind, IMU, every eye
event kind, scene frames, phone status, the time echo of a real responder, and a stream that
raises the library's connection error mid-way (the backend reconnects)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import av
import numpy as np
import pytest
from aiortsp.rtsp.errors import RTSPConnectionError
from pupil_labs.realtime_api.models import Hardware, Phone, Sensor, Status
from pupil_labs.realtime_api.streaming.eye_events import (
    BlinkEventData,
    FixationEventData,
    FixationOnsetEventData,
)
from pupil_labs.realtime_api.streaming.gaze import (
    DualMonocularGazeData,
    EyestateEyelidGazeData,
    EyestateGazeData,
    GazeData,
    Point,
)
from pupil_labs.realtime_api.streaming.imu import Data3D, IMUData, Quaternion
from pupil_labs.realtime_api.streaming.video import VideoFrame

from rpi_logger.modules.eyetracker.backends import neon
from rpi_logger.modules.eyetracker.backends.base import (
    Connection,
    NeonOptions,
    PhoneStatus,
    TimeSync,
)
from rpi_logger.modules.eyetracker.backends.simulated import DEVICE_OFFSET_NS, TimeEchoServer
from rpi_logger.modules.eyetracker.streams.events import EyeEvent
from rpi_logger.modules.eyetracker.streams.gaze import EXTRA_FIELDS, GazeSample
from rpi_logger.modules.eyetracker.streams.imu import ImuSample
from rpi_logger.samples import Frame

EYE = tuple(float(i) for i in range(1, 15))  # 14 eye-state values
LIDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def _ts(t_mono_ns: int) -> float:
    return (t_mono_ns + DEVICE_OFFSET_NS) / 1e9


def _sensor(name: str, port: int) -> Sensor:
    return Sensor(name, "DIRECT", True, "127.0.0.1", f"camera={name}", port)


async def _forever() -> None:
    await asyncio.Event().wait()


class Fixture:
    """The API faked at its own names; `calls` counts connections per stream."""

    def __init__(self, echo_port: int) -> None:
        self.status = Status(
            Phone(77, "OK", "dev1", "Neon test", "127.0.0.1", 5_000_000_000, "LOW", echo_port),
            Hardware(),
            [_sensor(n, 8086 + i) for i, n in enumerate(("gaze", "imu", "eye_events", "world"))],
            None,
        )
        self.calls: dict[str, int] = {}
        self.t0 = time.monotonic_ns()

    def device(self, address: str, port: int, **_: Any) -> Any:
        fixture = self

        class FakeDevice:
            def __init__(self) -> None:
                self.address, self.port = address, port

            async def get_status(self) -> Status:
                return fixture.status

            async def close(self) -> None:
                return None

        return FakeDevice()

    def _count(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]

    async def gaze(self, url: str, **kw: Any) -> AsyncIterator[Any]:
        assert "camera=gaze" in url and kw.get("run_loop") is False
        call = self._count("gaze")
        t = time.monotonic_ns() // 5_000_000 * 5_000_000
        payloads = [
            GazeData(100.0, 200.0, True, _ts(t)),
            EyestateGazeData(101.0, 201.0, True, *EYE, _ts(t + 5_000_000)),
            EyestateEyelidGazeData(102.0, 202.0, False, *EYE, *LIDS, _ts(t + 10_000_000)),
            DualMonocularGazeData(Point(10.0, 20.0), Point(30.0, 40.0), True, _ts(t + 15_000_000)),
        ]
        for p in payloads:
            yield p
        if call == 1:
            raise RTSPConnectionError("connection lost")  # the library's error, mid-stream
        await _forever()

    async def imu(self, url: str, **_: Any) -> AsyncIterator[Any]:
        self._count("imu")
        yield IMUData(
            Data3D(1.0, 2.0, 3.0),
            Data3D(0.0, 0.1, 1.0),
            Quaternion(0.1, 0.2, 0.3, 0.9),
            _ts(self.t0),
        )
        await _forever()

    async def events(self, url: str, **_: Any) -> AsyncIterator[Any]:
        if self._count("events") > 1:
            await _forever()
        s = self.t0 + DEVICE_OFFSET_NS
        yield FixationOnsetEventData(3, s, _ts(self.t0 + 1_000_000))
        details = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
        yield FixationEventData(1, s, s + 300_000_000, *details, _ts(self.t0 + 301_000_000))
        yield FixationOnsetEventData(2, s + 300_000_000, _ts(self.t0 + 302_000_000))
        yield FixationEventData(
            0, s + 300_000_000, s + 340_000_000, *details, _ts(self.t0 + 341_000_000)
        )
        yield BlinkEventData(4, s + 400_000_000, s + 550_000_000, _ts(self.t0 + 560_000_000))
        await _forever()

    async def video(self, url: str, **_: Any) -> AsyncIterator[Any]:
        if self._count("video") > 1:
            await _forever()
        image = np.full((480 * 3 // 2, 640), 100, dtype=np.uint8)
        yield VideoFrame(av.VideoFrame.from_ndarray(image, format="yuv420p"), _ts(self.t0))
        await _forever()


async def test_the_neon_backend_maps_every_payload_and_reconnects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    echo = TimeEchoServer()
    api = Fixture(echo.port)
    monkeypatch.setattr(neon, "Device", api.device)
    monkeypatch.setattr(neon, "receive_gaze_data", api.gaze)
    monkeypatch.setattr(neon, "receive_imu_data", api.imu)
    monkeypatch.setattr(neon, "receive_eye_events_data", api.events)
    monkeypatch.setattr(neon, "receive_video_frames", api.video)
    options = NeonOptions(
        streams=("scene", "gaze", "imu", "events"), sync_measurements=30, stall_timeout_s=30
    )
    source = neon.NeonBackend(options, address="127.0.0.1")
    items: list[Any] = []
    try:
        async with asyncio.timeout(30):
            async with source:
                async for item in source:
                    items.append(item)
                    ups = [i for i in items if isinstance(i, Connection) and i.connected]
                    gazes = [i for i in items if isinstance(i, GazeSample)]
                    if len(ups) == 2 and len(gazes) == 8:
                        break
    finally:
        echo.close()

    conns = [i for i in items if isinstance(i, Connection)]
    assert [c.connected for c in conns] == [True, False, True]
    assert "RTSPConnectionError" in conns[1].reason and "connection lost" in conns[1].reason
    assert api.calls["gaze"] == 2  # every stream reconnected

    syncs = [i.estimate for i in items if isinstance(i, TimeSync)]
    assert len(syncs) >= 2 and all(s.accepted for s in syncs)  # at connect and at reconnect
    for est in syncs:
        assert abs(est.offset_ns - DEVICE_OFFSET_NS) < 1_000_000, est

    gazes = [i for i in items if isinstance(i, GazeSample)]
    plain, eyestate, eyelid, dual = gazes[:4]
    assert (plain.x, plain.y, plain.worn, plain.extra) == (100.0, 200.0, 1, ())
    named = dict(zip(EXTRA_FIELDS, eyestate.extra, strict=True))
    assert named["pupil_diameter_left"] == 1.0 and named["optical_axis_right_z"] == 14.0
    assert named["eyelid_aperture_left"] is None  # not sent: an empty cell
    named = dict(zip(EXTRA_FIELDS, eyelid.extra, strict=True))
    assert eyelid.worn == 0 and named["eyelid_aperture_right"] == pytest.approx(0.6)
    assert (dual.x, dual.y) == (20.0, 30.0)
    assert dict(zip(EXTRA_FIELDS, dual.extra, strict=True))["mono_right_y"] == 40.0
    # Device times kept; host times are the device times less the measured offset.
    for g in gazes:
        assert abs((g.t_device_ns - g.t_mono_ns) - DEVICE_OFFSET_NS) < 1_000_000
        assert len(g.row()) == 6 + len(EXTRA_FIELDS)
    assert gazes[1].t_mono_ns - gazes[0].t_mono_ns == pytest.approx(5_000_000, abs=2_000)

    [imu] = [i for i in items if isinstance(i, ImuSample)][:1]
    assert imu.gyro == (1.0, 2.0, 3.0) and imu.quat == (0.9, 0.1, 0.2, 0.3)
    assert abs(imu.t_mono_ns - api.t0) < 1_000_000

    events = [i for i in items if isinstance(i, EyeEvent)]
    assert [e.event for e in events] == [
        "fixation_onset",
        "fixation",
        "saccade_onset",
        "saccade",
        "blink",
    ]
    fixation, blink = events[1], events[4]
    assert fixation.duration_s == pytest.approx(0.3) and fixation.details[0] == 1.0
    assert abs(fixation.start_mono_ns - api.t0) < 1_000_000
    assert blink.duration_s == pytest.approx(0.15) and events[0].duration_s is None

    [frame] = [i for i in items if isinstance(i, Frame)]
    assert (frame.width, frame.height, frame.pixel_format) == (640, 480, "yuv420p")
    assert abs(frame.t_mono_ns - api.t0) < 1_000_000

    [phone] = [i for i in items if isinstance(i, PhoneStatus)][:1]
    assert (phone.battery_percent, phone.storage_state) == (77, "LOW")


async def test_an_unreachable_neon_fails_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    class Down:
        def __init__(self, address: str, port: int, **_: Any) -> None:
            self.address, self.port = address, port

        async def get_status(self) -> None:
            raise OSError("Connect call failed")

        async def close(self) -> None:
            return None

    monkeypatch.setattr(neon, "Device", Down)
    source = neon.NeonBackend(NeonOptions(), address="192.0.2.1")
    with pytest.raises(neon.NeonError, match=r"192\.0\.2\.1:8080 not reachable: OSError"):
        await source.open()
