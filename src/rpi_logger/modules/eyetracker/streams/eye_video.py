"""Eye cameras' video (optional, off by default): the API's frames of the eyes sensor as
`EyeFrame`s, recorded like the scene video into `trialNNN_eyes.mp4`."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

from rpi_logger.io.clock_map import ClockMap
from rpi_logger.modules.eyetracker.streams.scene import frame_of
from rpi_logger.samples import Frame

#: The Neon's eye cameras: both eyes side by side, 384x192, 200 Hz.
WIDTH, HEIGHT = 384, 192
PERIOD_NS = 5_000_000


@dataclass(frozen=True, slots=True)
class EyeFrame:
    """One eye-camera frame (both eyes side by side, as the device sends them)."""

    kind: ClassVar[str] = "eyes"
    frame: Frame

    @property
    def t_mono_ns(self) -> int:
        return self.frame.t_mono_ns


async def eye_frames(data: AsyncIterator[Any], clock: ClockMap) -> AsyncIterator[EyeFrame]:
    """The API's eyes stream (`receive_video_frames(eyes url)`) as our frames."""
    counter = itertools.count()
    async for video_frame in data:
        yield EyeFrame(frame_of(video_frame, clock, next(counter)))
