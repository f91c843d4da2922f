"""Frames and the interface every camera backend implements.

A `Frame` is one captured image plus its times on the host clock. Images come in one of two
layouts, named by `Frame.pixel_format`:

- ``"rgb24"`` (default): ``(H, W, 3)`` uint8, RGB order, C-contiguous.
- ``"yuv420p"``: ``(H * 3 // 2, W)`` uint8, planar I420 (Y plane, then U, then V, no padding),
  as picamera2's YUV420 main stream delivers it. Saves an RGB round trip on the Pi, where the
  encoder wants yuv420p anyway.

A `FrameSource` is opened, iterated asynchronously, and closed, all from the event loop. Device
reads happen on the backend's own thread; only finished `Frame` objects reach the loop.

`Frame.sequence` is the *device* sequence number: it advances by one per capture slot of the
device, so a gap (`sequence` jumping by more than one) is a frame the device never delivered
(the "device sequence gap" drop cause). Frames a source drops because its own hand-off queue to
the loop is full are counted in `SourceStats.dropped_queue_overflow` and passed to the source's
`on_overflow` callback (on the loop), so a consumer can count them as "capture overflow" drops
and not mistake the hole they leave in the sequence for a device gap.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

PixelFormat = Literal["rgb24", "yuv420p"]
PIXEL_FORMATS: tuple[str, ...] = ("rgb24", "yuv420p")


class CameraError(RuntimeError):
    """A camera could not be opened or stopped delivering frames; the message says why."""


class BackendUnavailable(CameraError):
    """The backend cannot run on this host (library missing, not Linux, ...)."""


@dataclass(slots=True)
class Frame:
    """One captured image and when it was captured.

    ``t_mono_ns`` is the host CLOCK_MONOTONIC time of capture (the device's own timestamp when it
    is on that clock, else the time the host received the frame); ``t_device_ns`` is the raw
    device timestamp when the device has one, else None.
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
        """Image height in pixels (of the picture, not of the yuv420p buffer)."""
        if self.pixel_format == "yuv420p":
            return int(self.image.shape[0]) * 2 // 3
        return int(self.image.shape[0])


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


@dataclass(slots=True)
class SourceStats:
    """Counters a source keeps; read them from the loop at any time."""

    frames_captured: int = 0  # frames the device delivered to the source
    frames_delivered: int = 0  # frames handed to the consumer
    dropped_device_gap: int = 0  # capture slots the device skipped (sequence gaps seen here)
    dropped_queue_overflow: int = 0  # frames lost because the consumer did not keep up


class FrameSource(abc.ABC):
    """A camera: ``await open()``, ``async for frame in source``, ``await close()``.

    Also an async context manager. Subclasses set `backend` and implement `_open`, `_close`
    and `frames`; enumeration is the class method `list_cameras` (blocking, may touch device
    files: call it through `list_cameras_async` from a loop).
    """

    backend: str = "abstract"

    def __init__(self, info: CameraInfo) -> None:
        self._info = info
        self.stats = SourceStats()
        self._opened = False
        #: Called on the loop with each frame the source drops in its hand-off to the loop.
        self.on_overflow: Callable[[Frame], None] | None = None

    @property
    def info(self) -> CameraInfo:
        """Id, name, size, rate, backend and whether the camera is simulated."""
        return self._info

    @property
    def is_open(self) -> bool:
        """True between a successful `open()` and `close()`."""
        return self._opened

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

    # -- life cycle --------------------------------------------------------------------------
    async def open(self) -> None:
        """Start capturing. Raises `CameraError` with a reason when the camera cannot start."""
        if self._opened:
            return
        await self._open()
        self._opened = True

    async def close(self) -> None:
        """Stop capturing and release the device. Idempotent."""
        if not self._opened:
            return
        self._opened = False
        await self._close()

    @abc.abstractmethod
    async def _open(self) -> None: ...

    @abc.abstractmethod
    async def _close(self) -> None: ...

    @abc.abstractmethod
    def frames(self) -> AsyncIterator[Frame]:
        """Frames in capture order until `close()`; raises `CameraError` if the device fails."""

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self.frames()

    async def __aenter__(self) -> FrameSource:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class SequenceGapCounter:
    """Counts device sequence gaps in a stream of frames (for the pipeline's drop figures)."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.gaps = 0  # frames missing between consecutive sequence numbers

    def update(self, sequence: int) -> int:
        """Feed the next frame's sequence number; returns how many frames were missing before
        it (0 normally). A sequence that does not advance is not counted as a gap."""
        missing = 0
        if self.last is not None and sequence > self.last + 1:
            missing = sequence - self.last - 1
            self.gaps += missing
        self.last = sequence if self.last is None else max(self.last, sequence)
        return missing


def yuv420p_size(width: int, height: int) -> tuple[int, int]:
    """Shape of a packed yuv420p buffer for a picture of ``width`` x ``height``."""
    return height * 3 // 2, width


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
