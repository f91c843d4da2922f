"""Typed, immutable samples: what a source produces and a sink writes, owned by no plugin.

Every sample carries its own times on the host clock (design.md: Principles): ``t_mono_ns``
(CLOCK_MONOTONIC,
integer ns), ``t_wall_unix`` (UTC seconds) and, where the device has a clock, the raw
``t_device_ns``. The framework (trial windows, trial streams) only ever reads ``t_mono_ns``, so a
new kind of sample needs no framework change; `io` sinks import these types, never a plugin's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

PixelFormat = Literal["rgb24", "yuv420p"]
PIXEL_FORMATS: tuple[str, ...] = ("rgb24", "yuv420p")


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured image and when it was captured.

    ``t_mono_ns`` is the capture time on the host clock (the device's own timestamp when it is
    on that clock, else the time the host received the frame); ``t_device_ns`` is the raw
    device timestamp, or None. ``sequence`` is the device's capture-slot number: a jump of more
    than one is a frame the device never delivered (a "device sequence gap").

    ``image`` layouts, by ``pixel_format``:

    - ``"rgb24"``: ``(H, W, 3)`` uint8, RGB order, C-contiguous.
    - ``"yuv420p"``: ``(H * 3 // 2, W)`` uint8, planar I420 (Y, then U, then V, no padding), as
      picamera2's YUV420 stream delivers it; the encoder wants it anyway.
    """

    image: np.ndarray
    t_mono_ns: int
    t_wall_unix: float
    t_device_ns: int | None
    sequence: int
    pixel_format: PixelFormat = "rgb24"

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Picture height in pixels (not the yuv420p buffer's)."""
        if self.pixel_format == "yuv420p":
            return int(self.image.shape[0]) * 2 // 3
        return int(self.image.shape[0])


__all__ = ["PIXEL_FORMATS", "Frame", "PixelFormat"]
