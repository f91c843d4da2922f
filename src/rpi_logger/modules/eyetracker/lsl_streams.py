"""The eye tracker's LSL outlets (``lsl = true``): gaze, IMU and eye events, as in their CSVs.

Each sample is published with its own host time (`t_mono_ns`), the time of its CSV row.
"""

from __future__ import annotations

from typing import Any

from rpi_logger.framework.lsl_outlets import Channel, OutletSpec
from rpi_logger.modules.eyetracker.streams import events, gaze, imu


def outlet_specs(device: str) -> list[OutletSpec]:
    """The outlets of one Neon."""
    xyz = ("x", "y", "z")
    return [
        OutletSpec(
            "gaze",
            "EyeTracker gaze",
            "Gaze",
            (
                Channel("x", "pixels", "ScreenX"),
                Channel("y", "pixels", "ScreenY"),
                Channel("worn", "bool", "Worn"),
            ),
            nominal_srate=1e9 / gaze.PERIOD_NS,
            device=device,
            extra={"frame": "scene camera pixels"},
        ),
        OutletSpec(
            "imu",
            "EyeTracker IMU",
            "IMU",
            (
                *(Channel(f"gyro_{a}", "deg/s", "Gyroscope") for a in xyz),
                *(Channel(f"accel_{a}", "g", "Accelerometer") for a in xyz),
                *(Channel(f"quat_{a}", "", "Orientation") for a in ("w", *xyz)),
            ),
            nominal_srate=1e9 / imu.PERIOD_NS,
            device=device,
        ),
        OutletSpec(
            "events",
            "EyeTracker events",
            "Markers",
            (
                Channel("event"),
                Channel("duration_s", "s"),
                Channel("start_mono_ns", "ns"),
                Channel("end_mono_ns", "ns"),
            ),
            channel_format="string",
            device=device,
        ),
    ]


def lsl_values(kind: str, item: Any) -> list[Any] | None:
    """A sample's values for its outlet (None: not published)."""
    if kind == "gaze":
        return [item.x, item.y, item.worn]
    if kind == "imu":
        return [*item.gyro, *item.accel, *item.quat]
    if kind == "events":
        assert isinstance(item, events.EyeEvent)
        return [
            item.event,
            "" if item.duration_s is None else repr(item.duration_s),
            str(item.start_mono_ns),
            "" if item.end_mono_ns is None else str(item.end_mono_ns),
        ]
    return None
