"""Gaze: every sample the device sends (200 Hz), with whatever it carries.

The realtime API picks the gaze class by payload size: `GazeData` (x, y, worn) always, plus eye
state (`EyestateGazeData`: pupil diameters, eyeball centres, optical axes) and eyelids
(`EyestateEyelidGazeData`) when enabled in the Companion app, and the dual-monocular variants.
Every field any of them has is a column of `trialNNN_gaze.csv`, empty when the device did not
send it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

from rpi_logger.io.clock import mono_to_wall
from rpi_logger.io.clock_map import ClockMap


def _eye(side: str) -> tuple[str, ...]:
    return (
        f"pupil_diameter_{side}",
        f"eyeball_center_{side}_x",
        f"eyeball_center_{side}_y",
        f"eyeball_center_{side}_z",
        f"optical_axis_{side}_x",
        f"optical_axis_{side}_y",
        f"optical_axis_{side}_z",
    )


#: The optional fields, in column order (the API's own field names).
EXTRA_FIELDS: tuple[str, ...] = (
    *_eye("left"),
    *_eye("right"),
    "eyelid_angle_top_left",
    "eyelid_angle_bottom_left",
    "eyelid_aperture_left",
    "eyelid_angle_top_right",
    "eyelid_angle_bottom_right",
    "eyelid_aperture_right",
    "mono_left_x",
    "mono_left_y",
    "mono_right_x",
    "mono_right_y",
)
#: The Neon's gaze rate (200 Hz) as a sample interval.
PERIOD_NS = 5_000_000
COLUMNS = ("t_mono_ns", "t_wall_unix", "t_device_ns", "x", "y", "worn", *EXTRA_FIELDS)
_EXTRA_SET = frozenset(EXTRA_FIELDS)


@dataclass(frozen=True, slots=True)
class GazeSample:
    """One gaze sample: scene-camera pixels, on the host clock (`t_mono_ns`) and the device's
    (`t_device_ns`); `extra` holds `EXTRA_FIELDS` in order (None when not sent)."""

    kind: ClassVar[str] = "gaze"
    t_mono_ns: int
    t_wall_unix: float
    t_device_ns: int
    x: float
    y: float
    worn: int
    extra: tuple[float | None, ...] = ()

    def row(self) -> tuple[Any, ...]:
        extra = self.extra or (None,) * len(EXTRA_FIELDS)
        return (
            self.t_mono_ns,
            self.t_wall_unix,
            self.t_device_ns,
            self.x,
            self.y,
            self.worn,
            *extra,
        )


def device_ns(seconds: float) -> int:
    """A device timestamp in float Unix seconds as integer ns (rounded, not truncated)."""
    return round(seconds * 1e9)


def gaze_sample(datum: Any, clock: ClockMap) -> GazeSample:
    """Our sample of one of the API's gaze classes (any of them), mapped onto the host clock."""
    fields = datum._asdict()
    if "left" in fields:  # DualMonocularGazeData: two points, no binocular one
        left, right = fields.pop("left"), fields.pop("right")
        fields.update(
            x=(left.x + right.x) / 2,
            y=(left.y + right.y) / 2,
            mono_left_x=left.x,
            mono_left_y=left.y,
            mono_right_x=right.x,
            mono_right_y=right.y,
        )
    t_dev = device_ns(datum.timestamp_unix_seconds)
    t = clock.to_host(t_dev)
    extra = tuple(fields.get(name) for name in EXTRA_FIELDS) if _EXTRA_SET & fields.keys() else ()
    return GazeSample(
        t,
        mono_to_wall(t),
        t_dev,
        float(fields["x"]),
        float(fields["y"]),
        int(bool(fields["worn"])),
        extra,
    )


async def gaze_samples(data: AsyncIterator[Any], clock: ClockMap) -> AsyncIterator[GazeSample]:
    """The API's gaze stream (`receive_gaze_data(url)`) as our samples."""
    async for datum in data:
        yield gaze_sample(datum, clock)
