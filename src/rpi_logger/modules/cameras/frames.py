"""The interface every camera backend implements, and what a camera tells about itself.

A `FrameSource` is opened, iterated asynchronously, and closed, all from the event loop. Device
reads and rendering happen on the backend's own thread (`rpi_logger.framework.source`); only
finished `Frame` objects (`rpi_logger.samples`) reach the loop.

`Frame.sequence` is the *device* sequence number: a jump of more than one is a frame the device
never delivered (a "device sequence gap", counted by the trial stream). Frames a source loses
because its own hand-off to the loop is full are counted in `stats.dropped_queue_overflow`
and reported to the source's `on_overflow(Lost)` callback on the loop, so a consumer counts them
as "capture overflow" and not as device gaps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from rpi_logger.framework.source import ThreadedSource
from rpi_logger.samples import Frame, PixelFormat


class CameraError(RuntimeError):
    """A camera could not be opened or stopped delivering frames; the message says why."""


class BackendUnavailable(CameraError):
    """The backend cannot run on this host (library missing, not Linux, ...)."""


@dataclass(frozen=True, slots=True)
class CameraInfo:
    """What a source delivers once open (or what it was asked for, before)."""

    id: str
    name: str
    width: int
    height: int
    fps: float
    backend: str
    simulated: bool
    pixel_format: PixelFormat = "rgb24"


@dataclass(frozen=True, slots=True)
class CameraDescriptor:
    """One camera found by a backend's enumeration, before it is opened."""

    id: str
    name: str
    backend: str
    simulated: bool = False
    path: str | None = None  # device node or libcamera id, backend-specific
    details: dict[str, str] = field(default_factory=dict)


class FrameSource(ThreadedSource[Frame, CameraInfo]):
    """A camera: ``await open()``, ``async for frame in source``, ``await close()``.

    Every backend reads its device on its own thread (`rpi_logger.framework.source`): it
    implements `_device_open`, `_device_loop` and `_device_close`, and enumeration as the class
    method `list_cameras` (blocking, may touch device files: call it through
    `list_cameras_async` from a loop).
    """

    error_class = CameraError

    def __init__(self, info: CameraInfo, queue_size: int = 8) -> None:
        super().__init__(info.id, info, queue_size)

    # -- enumeration -------------------------------------------------------------------------
    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this backend can run here, and if not, why (for the UI and `modules`)."""
        return True, ""

    @classmethod
    def list_cameras(cls) -> list[CameraDescriptor]:
        """Cameras this backend can open. Blocking (reads device files); never raises."""
        return []

    @classmethod
    async def list_cameras_async(cls) -> list[CameraDescriptor]:
        """`list_cameras` run on a worker thread."""
        return await asyncio.to_thread(cls.list_cameras)

    def frames(self) -> AsyncIterator[Frame]:
        """Frames in capture order until `close()`; raises `CameraError` if the device fails."""
        return self.samples()


def unpad_yuv420(buffer: np.ndarray, width: int, height: int, stride: int) -> np.ndarray:
    """Repack a YUV420 buffer whose rows are ``stride`` bytes (U/V rows ``stride // 2``) into a
    packed ``(H * 3 // 2, W)`` yuv420p array. Returns the input untouched when already packed."""
    if stride == width and buffer.shape == (height * 3 // 2, width):
        return buffer
    flat = buffer.reshape(-1)
    y_size = height * stride
    c_stride, c_h, c_w = stride // 2, height // 2, width // 2
    c_size = c_h * c_stride
    out = np.empty((height * 3 // 2, width), dtype=np.uint8)
    out[:height] = flat[:y_size].reshape(height, stride)[:, :width]
    chroma = out[height:].reshape(-1)
    u = flat[y_size : y_size + c_size].reshape(c_h, c_stride)[:, :c_w]
    v = flat[y_size + c_size : y_size + 2 * c_size].reshape(c_h, c_stride)[:, :c_w]
    chroma[: c_h * c_w] = u.reshape(-1)
    chroma[c_h * c_w :] = v.reshape(-1)
    return out
