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


@dataclass(frozen=True, slots=True)
class AudioBlock:
    """One block of audio samples as the device delivered it, and when its first sample was
    taken.

    ``data`` is ``(frames, channels)``, C-contiguous, int16, int32 (24-bit audio, left-aligned)
    or float32. ``t_mono_ns`` is the host time of the first sample (sample *i* was taken at
    ``t_mono_ns + i * 1e9 / sample_rate``); ``t_device_ns`` the device's own time of it
    (PortAudio's ADC time), or None. ``sequence`` counts the device's blocks and
    ``device_sample_index`` its samples since the stream started. ``lost_before`` is the number
    of samples the device lost just before this block (an input overflow, estimated from the
    ADC times; 0 when none or unknown), ``input_overflow`` / ``input_underflow`` its status flags.
    """

    data: np.ndarray
    t_mono_ns: int
    t_wall_unix: float
    t_device_ns: int | None
    sample_rate: int
    sequence: int
    device_sample_index: int
    lost_before: int = 0
    input_overflow: bool = False
    input_underflow: bool = False

    @property
    def frames(self) -> int:
        """Samples per channel in the block."""
        return int(self.data.shape[0])

    @property
    def channels(self) -> int:
        return int(self.data.shape[1])

    @property
    def end_ns(self) -> int:
        """The host time just after the block's last sample (the next block's start)."""
        return self.t_mono_ns + self.frames * 1_000_000_000 // self.sample_rate


__all__ = ["PIXEL_FORMATS", "AudioBlock", "Frame", "PixelFormat"]
