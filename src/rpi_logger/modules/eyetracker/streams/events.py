"""Eye events: fixations and saccades (with onsets) and blinks, with every field the API gives.

A row's `t_mono_ns` / `t_device_ns` is when the device reported the event (its RTP time), so
rows are in the order they came and inside the trial that received them; the event's own
`start_*` and `end_*` times (device and host clock) and `duration_s` say when it happened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

from rpi_logger.io.clock import mono_to_wall
from rpi_logger.io.clock_map import ClockMap
from rpi_logger.modules.eyetracker.streams.gaze import device_ns

#: The API's event_type numbers.
EVENT_NAMES = {0: "saccade", 1: "fixation", 2: "saccade_onset", 3: "fixation_onset", 4: "blink"}
DETAIL_FIELDS = (
    "start_gaze_x",
    "start_gaze_y",
    "end_gaze_x",
    "end_gaze_y",
    "mean_gaze_x",
    "mean_gaze_y",
    "amplitude_pixels",
    "amplitude_angle_deg",
    "mean_velocity",
    "max_velocity",
)
COLUMNS = (
    "t_mono_ns",
    "t_wall_unix",
    "t_device_ns",
    "event",
    "duration_s",
    "start_mono_ns",
    "end_mono_ns",
    "start_device_ns",
    "end_device_ns",
    "event_type",
    *DETAIL_FIELDS,
)


@dataclass(frozen=True, slots=True)
class EyeEvent:
    """One eye event as reported (see the module docstring for its times)."""

    kind: ClassVar[str] = "events"
    t_mono_ns: int
    t_wall_unix: float
    t_device_ns: int
    event: str
    event_type: int
    start_device_ns: int
    end_device_ns: int | None
    start_mono_ns: int
    end_mono_ns: int | None
    details: tuple[float | None, ...] = ()

    @property
    def duration_s(self) -> float | None:
        if self.end_device_ns is None:
            return None
        return (self.end_device_ns - self.start_device_ns) / 1e9

    def row(self) -> tuple[Any, ...]:
        details = self.details or (None,) * len(DETAIL_FIELDS)
        return (
            self.t_mono_ns,
            self.t_wall_unix,
            self.t_device_ns,
            self.event,
            self.duration_s,
            self.start_mono_ns,
            self.end_mono_ns,
            self.start_device_ns,
            self.end_device_ns,
            self.event_type,
            *details,
        )


def eye_event(datum: Any, clock: ClockMap) -> EyeEvent:
    """Our event of the API's `FixationEventData`, `FixationOnsetEventData` or
    `BlinkEventData`."""
    fields = datum._asdict()
    t_dev = device_ns(datum.rtp_ts_unix_seconds)
    t = clock.to_host(t_dev)
    start = int(datum.start_time_ns)
    end = fields.get("end_time_ns")
    end = None if end is None else int(end)
    details = tuple(fields.get(f) for f in DETAIL_FIELDS) if "mean_gaze_x" in fields else ()
    return EyeEvent(
        t,
        mono_to_wall(t),
        t_dev,
        EVENT_NAMES.get(datum.event_type, f"type{datum.event_type}"),
        int(datum.event_type),
        start,
        end,
        clock.to_host(start),
        None if end is None else clock.to_host(end),
        details,
    )


async def eye_events(data: AsyncIterator[Any], clock: ClockMap) -> AsyncIterator[EyeEvent]:
    """The API's eye-event stream (`receive_eye_events_data(url)`) as our events."""
    async for datum in data:
        yield eye_event(datum, clock)
