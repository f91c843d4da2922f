"""Scene video: the API's decoded `VideoFrame`s as our `Frame`s on the host clock.

Frames go to the encoder as planar yuv420p (what the decoder gives and the encoder wants: no
colour conversion on either side). A frame's `sequence` is the device's when it has one (the
simulator's capture slot), else our own count of frames received.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from rpi_logger.io.clock import mono_to_wall
from rpi_logger.io.clock_map import ClockMap
from rpi_logger.modules.eyetracker.streams.gaze import device_ns
from rpi_logger.samples import Frame

PIXEL_FORMAT = "yuv420p"


def frame_of(video_frame: Any, clock: ClockMap, sequence: int) -> Frame:
    """Our `Frame` of one API `VideoFrame` (anything with `timestamp_unix_seconds` and
    `to_ndarray(format=...)`), mapped onto the host clock."""
    t_dev = device_ns(video_frame.timestamp_unix_seconds)
    t = clock.to_host(t_dev)
    image = np.ascontiguousarray(video_frame.to_ndarray(format=PIXEL_FORMAT))
    return Frame(
        image=image,
        t_mono_ns=t,
        t_wall_unix=mono_to_wall(t),
        t_device_ns=t_dev,
        sequence=getattr(video_frame, "sequence", sequence),
        pixel_format=PIXEL_FORMAT,
    )


async def scene_frames(data: AsyncIterator[Any], clock: ClockMap) -> AsyncIterator[Frame]:
    """The API's scene stream (`receive_video_frames(url)`) as our frames."""
    counter = itertools.count()
    async for video_frame in data:
        yield frame_of(video_frame, clock, next(counter))
