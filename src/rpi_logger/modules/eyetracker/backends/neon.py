"""A real Pupil Labs Neon through `pupil-labs-realtime-api`'s async API.

The device is found at the configured address (enough on its own: zeroconf discovery is often
blocked on university networks) or by discovery. Its status (`Device.get_status`) gives each
sensor's RTSP URL and the phone's time-echo port; the streams are the API's `receive_*`
generators (one RTSP reader each). Everything here runs on the backend's device thread and its
own asyncio loop (`NeonSource`). The API's names are looked up in this module's namespace when
called, so tests can feed the API's own data classes through them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from pupil_labs.realtime_api.device import Device
from pupil_labs.realtime_api.discovery import discover_devices
from pupil_labs.realtime_api.models import Status
from pupil_labs.realtime_api.streaming import (
    receive_eye_events_data,
    receive_gaze_data,
    receive_imu_data,
    receive_video_frames,
)

from rpi_logger.modules.eyetracker.backends.base import (
    Link,
    NeonError,
    NeonInfo,
    NeonOptions,
    NeonSource,
    PhoneStatus,
)

log = logging.getLogger("rpi_logger.eyetracker")

DEFAULT_PORT = 8080


def phone_status_of(status: Status) -> PhoneStatus:
    """Battery and storage of a device status."""
    phone = status.phone
    return PhoneStatus(
        time.monotonic_ns(),
        battery_percent=phone.battery_level,
        battery_state=phone.battery_state,
        storage_bytes=phone.memory,
        storage_state=phone.memory_state,
        device_name=phone.device_name,
    )


class NeonLink(Link):
    """A connection to a Neon: its REST device and the sensors its status lists."""

    def __init__(self, device: Any, status: Status) -> None:
        self.device = device
        self.status = status
        self.address = device.address
        self.time_echo_port = status.phone.time_echo_port

    def _url(self, kind: str) -> str:
        sensor = {
            "gaze": self.status.direct_gaze_sensor,
            "imu": self.status.direct_imu_sensor,
            "events": self.status.direct_eye_events_sensor,
            "scene": self.status.direct_world_sensor,
            "eyes": self.status.direct_eyes_sensor,
        }[kind]()
        url = sensor.url if sensor is not None else None
        if url is None:
            raise NeonError(f"the Neon's {kind} sensor is not connected")
        return url

    def streams(self, kinds: tuple[str, ...]) -> dict[str, AsyncIterator[Any]]:
        receivers = {
            "gaze": receive_gaze_data,
            "imu": receive_imu_data,
            "events": receive_eye_events_data,
            "scene": receive_video_frames,
            "eyes": receive_video_frames,
        }
        # run_loop=False: a broken stream ends, and the backend reconnects every stream with
        # a fresh status (a phone that restarted may have new ports) and a fresh clock offset.
        return {kind: receivers[kind](self._url(kind), run_loop=False) for kind in kinds}

    async def phone_status(self) -> PhoneStatus:
        return phone_status_of(await self.device.get_status())

    async def aclose(self) -> None:
        await self.device.close()


class NeonBackend(NeonSource):
    """A real Neon (module docstring)."""

    backend = "neon"

    def __init__(
        self,
        options: NeonOptions,
        address: str | None = None,
        port: int = DEFAULT_PORT,
        device_id: str = "neon",
        discovery_timeout_s: float = 5.0,
    ) -> None:
        info = NeonInfo(
            id=device_id, name="Neon", backend=self.backend, simulated=False, address=address
        )
        super().__init__(info, options)
        self.address = address
        self.port = port
        self.discovery_timeout_s = discovery_timeout_s

    async def _connect(self) -> Link:
        if self.address:
            device = Device(self.address, self.port)
        else:
            found = None
            async for info in discover_devices(timeout_seconds=self.discovery_timeout_s):
                found = info
                break
            if found is None:
                raise NeonError(
                    f"no Neon found by discovery within {self.discovery_timeout_s:g} s "
                    "(set `address` in the EyeTracker config when discovery is blocked)"
                )
            device = Device.from_discovered_device(found)
            self.address = device.address  # reconnect to the same phone without discovery
        try:
            status = await device.get_status()
        except Exception as exc:
            await device.close()
            raise NeonError(
                f"Neon at {device.address}:{device.port} not reachable: {type(exc).__name__}: {exc}"
            ) from None
        log.info("Neon %s at %s", status.phone.device_name, device.address)
        return NeonLink(device, status)
