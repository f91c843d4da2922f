"""The interface every camera backend implements, and what a camera tells about itself.

A `FrameSource` is opened, iterated asynchronously, and closed, all from the event loop. Device
reads and rendering happen on the backend's own thread (`ThreadedSource`); only finished `Frame`
objects (`rpi_logger.samples`) reach the loop.

`Frame.sequence` is the *device* sequence number: a jump of more than one is a frame the device
never delivered (a "device sequence gap", counted by the trial stream). Frames a source loses
because its own hand-off to the loop is full are counted in `SourceStats.dropped_queue_overflow`
and reported to the source's `on_overflow(t_mono_ns, sequence)` callback on the loop, so a
consumer counts them as "capture overflow" and not as device gaps.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from rpi_logger.samples import Frame, PixelFormat

#: ``on_overflow(t_mono_ns, sequence)``: a frame lost in the hand-off to the loop (loop thread).
OnOverflow = Callable[[int, int], None]


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


@dataclass(slots=True)
class SourceStats:
    """Counters a source keeps; read them from the loop at any time."""

    frames_captured: int = 0  # frames the device delivered to the source
    frames_delivered: int = 0  # frames handed to the consumer
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
        #: Called on the loop for each frame the source lost in its hand-off to the loop.
        self.on_overflow: OnOverflow | None = None

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
