"""The simulated Neon (design.md: Simulated devices), served through the same backend interface
as the real one.

Content is a function of each sample's capture time `t` on the host clock (design.md §7):

- scene camera: the simulated camera picture (`rpi_logger.simulation.scene`) at 30 fps, 1600x1200
  by default, barcodes included (counter = capture slot, time = `t` in whole ms), each frame
  captured half way through a millisecond;
- gaze at 200 Hz: ``x = 800 + 600 sin(2 pi s / 4)``, ``y = 600 + 450 cos(2 pi s / 4)``,
  ``s = t / 1e9``, worn, with eye state and eyelid fields (`gaze_payload`);
- IMU at 110 Hz; a blink every 3 s (from each whole multiple of 3 s, 150 ms long).

Capture slots lie on a fixed grid of the host clock (slot k at ``k * period``). Every timestamp
the device sends is on its own clock, which runs `DEVICE_OFFSET_NS` ahead of the host clock
(a Unix-like clock plus 3.217... s): only a measured and applied offset puts the samples back at
`t`. The offset is measured as on a real Neon: `TimeEchoServer` is a real time-echo responder
on 127.0.0.1, on its own thread, answering with the device clock, and the API's
`TimeOffsetEstimator` talks to it.

The streams are produced by async generators paced to the slots (they run on the backend's
device thread, where the real device's RTSP readers run) and yield the API's own data classes.
`simulate_disconnect(seconds)` makes the device go silent and refuse connections for that long:
the backend sees a stall, reconnects and measures the clock again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

import numpy as np

from rpi_logger.io.clock import mono_to_wall
from rpi_logger.modules.eyetracker.backends.base import (
    Link,
    NeonInfo,
    NeonOptions,
    NeonSource,
    PhoneStatus,
)
from rpi_logger.modules.eyetracker.streams import eye_video, gaze, imu
from rpi_logger.simulation.scene import SceneRenderer

log = logging.getLogger("rpi_logger.eyetracker")

#: The simulated phone's clock minus the host clock: a Unix clock, 3.217 s and some ns off.
DEVICE_OFFSET_NS = round((mono_to_wall(0) + 3.217) * 1e9) + 345_678
GAZE_PERIOD_NS = gaze.PERIOD_NS
IMU_PERIOD_NS = imu.PERIOD_NS
EYES_PERIOD_NS = eye_video.PERIOD_NS
BLINK_EVERY_NS = 3_000_000_000
BLINK_NS = 150_000_000


def gaze_xy(t_mono_ns: int) -> tuple[float, float]:
    """design.md §7's gaze point at host time `t_mono_ns`."""
    s = t_mono_ns / 1e9
    a = 2 * math.pi * s / 4
    return 800 + 600 * math.sin(a), 600 + 450 * math.cos(a)


def device_clock_ns(t_mono_ns: int) -> int:
    return t_mono_ns + DEVICE_OFFSET_NS


class TimeEchoServer:
    """The Time Echo protocol's responder (see `pupil_labs.realtime_api.time_echo`) on
    127.0.0.1, answering with the simulated device clock in ms; one thread per connection."""

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.refusing = False
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="neon-sim-time-echo", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self.refusing:
                conn.close()
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while True:
                try:
                    data = conn.recv(8)
                except OSError:
                    return
                if len(data) != 8 or self.refusing:
                    return
                device_ms = device_clock_ns(self._clock()) // 1_000_000
                with contextlib.suppress(OSError):
                    conn.sendall(data + struct.pack("!Q", device_ms))

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class SimVideoFrame(NamedTuple):
    """A decoded frame as the API's `VideoFrame` offers it (`to_ndarray`, a Unix timestamp),
    plus the device's capture slot."""

    image: np.ndarray
    timestamp_unix_seconds: float
    sequence: int

    def to_ndarray(self, format: str = "yuv420p") -> np.ndarray:
        return self.image


class SimulatedDevice:
    """The simulated phone: its clock, its time echo, its streams, and whether it is down."""

    def __init__(
        self,
        scene_width: int = 1600,
        scene_height: int = 1200,
        scene_fps: float = 30.0,
        gaze_payload: str = "eyelid",
    ) -> None:
        self.scene = SceneRenderer(scene_width, scene_height, "yuv420p")
        self.scene_period_ns = round(1e9 / scene_fps)
        self.gaze_payload = gaze_payload
        self.echo = TimeEchoServer()
        self.down_until_ns = 0
        self._eyes_image: np.ndarray | None = None

    @property
    def down(self) -> bool:
        down = time.monotonic_ns() < self.down_until_ns
        self.echo.refusing = down
        return down

    def disconnect(self, seconds: float) -> None:
        """Go silent and refuse connections for `seconds` from now (any thread)."""
        self.down_until_ns = time.monotonic_ns() + round(seconds * 1e9)
        self.echo.refusing = True

    def close(self) -> None:
        self.echo.close()

    # -- content ----------------------------------------------------------------------------
    def gaze(self, t: int) -> Any:
        from pupil_labs.realtime_api.streaming.gaze import (
            EyestateEyelidGazeData,
            EyestateGazeData,
            GazeData,
        )

        x, y = gaze_xy(t)
        ts = device_clock_ns(t) / 1e9
        if self.gaze_payload == "plain":
            return GazeData(x, y, True, ts)
        s = t / 1e9
        pupil = 3.5 + 0.5 * math.sin(2 * math.pi * s / 10)
        eye = (pupil, -30.0, 10.0, -35.0, 0.0, 0.0, 1.0, pupil, 30.0, 10.0, -35.0, 0.0, 0.0, 1.0)
        if self.gaze_payload == "eyestate":
            return EyestateGazeData(x, y, True, *eye, ts)
        lids = (0.3, -0.3, 10.0, 0.3, -0.3, 10.0)
        return EyestateEyelidGazeData(x, y, True, *eye, *lids, ts)

    def imu(self, t: int) -> Any:
        from pupil_labs.realtime_api.streaming.imu import Data3D, IMUData, Quaternion

        a = 2 * math.pi * (t / 1e9) / 4
        gyro = Data3D(10 * math.sin(a), 10 * math.cos(a), 0.0)
        accel = Data3D(0.0, 0.0, 1.0)
        quat = Quaternion(0.0, 0.0, math.sin(a / 2), math.cos(a / 2))
        return IMUData(gyro, accel, quat, device_clock_ns(t) / 1e9)

    def blink(self, start: int) -> Any:
        from pupil_labs.realtime_api.streaming.eye_events import BlinkEventData

        end = start + BLINK_NS
        return BlinkEventData(
            4, device_clock_ns(start), device_clock_ns(end), device_clock_ns(end) / 1e9
        )

    def scene_slot_time(self, k: int) -> int:
        """Scene frames are captured half way through a millisecond: the barcode's whole ms
        then survives any mapping error under 0.5 ms, and `verify` checks exactly that."""
        return (k * self.scene_period_ns) // 1_000_000 * 1_000_000 + 500_000

    def scene_frame(self, k: int, t: int) -> SimVideoFrame:
        return SimVideoFrame(self.scene.render(k, t), device_clock_ns(t) / 1e9, k)

    def eyes_frame(self, k: int, t: int) -> SimVideoFrame:
        w, h = eye_video.WIDTH, eye_video.HEIGHT
        if self._eyes_image is None:  # as the Neon's eye cameras: grey, with a moving bar
            self._eyes_image = np.full((h * 3 // 2, w), 128, dtype=np.uint8)
        img = self._eyes_image.copy()
        img[:h, (k * 4) % w] = 255
        return SimVideoFrame(img, device_clock_ns(t) / 1e9, k)

    # -- streams ----------------------------------------------------------------------------
    async def paced(
        self,
        period_ns: int,
        make: Callable[[int, int], Any],
        buffers: int = 4,
        slot_time: Callable[[int], int] | None = None,
    ) -> AsyncIterator[Any]:
        """`make(slot, t)` for each slot of the grid from now, in real time (slot k at
        `slot_time(k)`, default ``k * period_ns``); silent while the device is down (the stream
        stalls; a consumer gives up on it)."""
        at = slot_time or (lambda k: k * period_ns)
        k = time.monotonic_ns() // period_ns + 1
        while True:
            due = at(k)
            now = time.monotonic_ns()
            if now < due:
                await asyncio.sleep((due - now) / 1e9)
                now = time.monotonic_ns()
            if self.down:
                await asyncio.sleep(0.05)
                k = time.monotonic_ns() // period_ns + 1
                continue
            # A device holds a few samples: older slots missed by a late wake-up are gone.
            k = max(k, now // period_ns - buffers + 1)
            yield make(k, at(k))
            k += 1

    async def blinks(self) -> AsyncIterator[Any]:
        """A blink from every whole multiple of 3 s, reported 5 ms after it ends."""
        k = time.monotonic_ns() // BLINK_EVERY_NS + 1
        while True:
            start = k * BLINK_EVERY_NS
            due = start + BLINK_NS + 5_000_000
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            if not self.down:
                yield self.blink(start)
            k = max(k + 1, time.monotonic_ns() // BLINK_EVERY_NS)


class SimLink(Link):
    """A connection to the simulated device."""

    def __init__(self, device: SimulatedDevice) -> None:
        self.device = device
        self.address = "127.0.0.1"
        self.time_echo_port = device.echo.port

    def streams(self, kinds: tuple[str, ...]) -> dict[str, AsyncIterator[Any]]:
        dev = self.device
        makers: dict[str, Callable[[], AsyncIterator[Any]]] = {
            "gaze": lambda: dev.paced(GAZE_PERIOD_NS, lambda k, t: dev.gaze(t), buffers=40),
            "imu": lambda: dev.paced(IMU_PERIOD_NS, lambda k, t: dev.imu(t), buffers=20),
            "events": dev.blinks,
            "scene": lambda: dev.paced(
                dev.scene_period_ns, dev.scene_frame, buffers=8, slot_time=dev.scene_slot_time
            ),
            "eyes": lambda: dev.paced(EYES_PERIOD_NS, dev.eyes_frame, buffers=20),
        }
        return {kind: makers[kind]() for kind in kinds if kind in makers}

    async def phone_status(self) -> PhoneStatus:
        return PhoneStatus(time.monotonic_ns(), 87, "OK", 64 * 2**30, "OK", "Neon (simulated)")


class SimulatedNeon(NeonSource):
    """The simulated Neon as a backend (module docstring)."""

    backend = "simulated"

    def __init__(
        self,
        options: NeonOptions,
        device_id: str = "neon",
        scene_width: int = 1600,
        scene_height: int = 1200,
        scene_fps: float = 30.0,
        gaze_payload: str = "eyelid",
    ) -> None:
        info = NeonInfo(
            id=device_id,
            name="Neon (simulated)",
            backend=self.backend,
            simulated=True,
            address="127.0.0.1",
            scene_width=scene_width,
            scene_height=scene_height,
            scene_fps=scene_fps,
        )
        super().__init__(info, options)
        self.device = SimulatedDevice(scene_width, scene_height, scene_fps, gaze_payload)

    def simulate_disconnect(self, seconds: float) -> None:
        """The device goes silent and unreachable for `seconds` (any thread)."""
        log.info("%s: simulating a disconnect of %.1f s", self.name, seconds)
        self.device.disconnect(seconds)

    def _device_open(self) -> NeonInfo:
        self.device.scene.prepare()  # pre-render the background here, not on the first frame
        return super()._device_open()

    async def _connect(self) -> Link:
        if self.device.down:
            raise ConnectionRefusedError("simulated Neon unreachable (simulated disconnect)")
        return SimLink(self.device)

    def shutdown(self) -> None:
        """Stop the simulated phone's time-echo server."""
        self.device.close()
