"""IMU: gyroscope (deg/s), accelerometer (g) and orientation quaternion, about 110 Hz."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

from rpi_logger.io.clock import mono_to_wall
from rpi_logger.io.clock_map import ClockMap
from rpi_logger.modules.eyetracker.streams.gaze import device_ns

#: The Neon's IMU rate (about 110 Hz) as a sample interval.
PERIOD_NS = round(1e9 / 110)
COLUMNS = (
    "t_mono_ns",
    "t_wall_unix",
    "t_device_ns",
    "gyro_x",
    "gyro_y",
    "gyro_z",
    "accel_x",
    "accel_y",
    "accel_z",
    "quat_w",
    "quat_x",
    "quat_y",
    "quat_z",
)


@dataclass(frozen=True, slots=True)
class ImuSample:
    """One IMU sample on the host clock."""

    kind: ClassVar[str] = "imu"
    t_mono_ns: int
    t_wall_unix: float
    t_device_ns: int
    gyro: tuple[float, float, float]
    accel: tuple[float, float, float]
    quat: tuple[float, float, float, float]  # w, x, y, z

    def row(self) -> tuple[Any, ...]:
        return (
            self.t_mono_ns,
            self.t_wall_unix,
            self.t_device_ns,
            *self.gyro,
            *self.accel,
            *self.quat,
        )


def imu_sample(datum: Any, clock: ClockMap) -> ImuSample:
    """Our sample of the API's `IMUData`."""
    t_dev = device_ns(datum.timestamp_unix_seconds)
    t = clock.to_host(t_dev)
    g, a, q = datum.gyro_data, datum.accel_data, datum.quaternion
    return ImuSample(
        t, mono_to_wall(t), t_dev, (g.x, g.y, g.z), (a.x, a.y, a.z), (q.w, q.x, q.y, q.z)
    )


async def imu_samples(data: AsyncIterator[Any], clock: ClockMap) -> AsyncIterator[ImuSample]:
    """The API's IMU stream (`receive_imu_data(url)`) as our samples."""
    async for datum in data:
        yield imu_sample(datum, clock)
