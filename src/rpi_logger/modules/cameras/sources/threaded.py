"""The hand-off every camera shares: a device thread captures (or renders), the loop consumes.

A `ThreadedSource` runs its device on one `Worker` thread: `_device_open()` there, then
`_device_loop()`, which calls `_emit(frame)` per frame. `_emit` is a `send_nowait` into a
bounded bridge with overflow "drop": when the consumer falls behind, the frame is lost there
(counted in `stats.dropped_queue_overflow`) instead of piling up, and the loop is told which frame
it was (`on_overflow(t_mono_ns, sequence)`, called on the loop just before the next delivered
frame), so the hole it leaves is not mistaken for a device gap. The loop never waits on the
device; closing the bridge (the device thread does it when it ends) ends the consumer's
iteration.

Subclasses implement three blocking methods, all called on the device thread:
`_device_open() -> CameraInfo`, `_device_loop()` (capture until `self._stop` is set or `_emit`
returns False) and `_device_close()` (idempotent: `close()` calls it again if the thread is stuck).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator

from rpi_logger.io.bridge import BridgeClosed, BridgeReceiver, BridgeSender, Worker, open_bridge
from rpi_logger.modules.cameras.frames import CameraError, CameraInfo, Frame, FrameSource

log = logging.getLogger(__name__)

#: Hand-off drops remembered until the next frame gets through (a loop stalled for minutes).
_MAX_LOST = 10_000

# One item of the hand-off: a frame and the (t_mono_ns, sequence) of the frames lost before it.
_Delivery = tuple[Frame, tuple[tuple[int, int], ...]]


class ThreadedSource(FrameSource):
    """A `FrameSource` whose device is read on its own thread."""

    #: How long `close()` waits for the device thread before giving up on it.
    close_timeout_s = 5.0

    def __init__(self, info: CameraInfo, queue_size: int = 8) -> None:
        super().__init__(info)
        self._queue_size = queue_size
        self._tx: BridgeSender[_Delivery] | None = None
        self._rx: BridgeReceiver[_Delivery] | None = None
        self._worker: Worker[None] | None = None
        self._stop = threading.Event()
        self._lost: list[tuple[int, int]] = []  # device thread only
        self._error: str | None = None

    # -- device side (blocking, on the device thread) ----------------------------------------
    @abc.abstractmethod
    def _device_open(self) -> CameraInfo:
        """Open and start the device; return what it really delivers. Raise CameraError."""

    @abc.abstractmethod
    def _device_loop(self) -> None:
        """Capture and `_emit` frames until `self._stop` is set or `_emit` returns False."""

    @abc.abstractmethod
    def _device_close(self) -> None:
        """Stop and release the device (idempotent)."""

    def _describe_error(self, exc: BaseException) -> str:
        return f"{self.info.id}: {exc}"

    def _emit(self, frame: Frame) -> bool:
        """Hand a frame to the loop (device thread, never waits). False once closed."""
        tx = self._tx
        assert tx is not None
        self.stats.frames_captured += 1
        lost = tuple(self._lost) if self._lost else ()
        try:
            sent = tx.send_nowait((frame, lost))
        except BridgeClosed:
            return False
        if sent:
            self._lost.clear()
            self.stats.frames_delivered += 1
        else:
            self.stats.dropped_queue_overflow += 1
            if len(self._lost) < _MAX_LOST:
                self._lost.append((frame.t_mono_ns, frame.sequence))
        return True

    def _run(self, tx: BridgeSender[_Delivery]) -> None:
        try:
            with tx:  # closing ends the consumer's iteration, however the thread ends
                info = self._device_open()  # a failure here is raised by `await ready()`
                assert self._worker is not None
                self._worker.set_ready(info)
                try:
                    self._device_loop()
                except Exception as exc:  # reported through the iterator, never lost silently
                    if not self._stop.is_set():
                        self._error = self._describe_error(exc)
                        log.exception("%s: capture failed", self.info.id)
        finally:
            try:
                self._device_close()
            except Exception:
                log.exception("%s: releasing the device failed", self.info.id)

    # -- loop side -------------------------------------------------------------------------
    async def _open(self) -> None:
        self._stop.clear()
        self._error = None
        self._lost.clear()
        self._tx, self._rx = open_bridge(
            self._queue_size, overflow="drop", name=f"{self.info.id} frames"
        )
        self._worker = Worker(self._run, self._tx, name=f"{self.backend}-{self.info.id}")
        self._worker.start()
        try:
            self._info = await self._worker.ready()
        except Exception as exc:
            with contextlib.suppress(Exception):  # the same failure, already in hand
                await self._worker.join()
            if isinstance(exc, CameraError):
                raise
            raise CameraError(self._describe_error(exc)) from exc

    async def _close(self) -> None:
        self._stop.set()
        if self._rx is not None:
            self._rx.close()  # a device thread in _emit gets False and ends its loop
        if self._worker is None:
            return
        try:
            async with asyncio.timeout(self.close_timeout_s):
                await self._worker.join()
        except TimeoutError:
            log.error("%s: capture thread did not stop; releasing the device anyway", self.info.id)
            await asyncio.to_thread(self._device_close)

    async def frames(self) -> AsyncIterator[Frame]:
        """Frames until `close()`; raises `CameraError` if the device stops on its own."""
        if not self.is_open:
            await self.open()
        rx = self._rx
        assert rx is not None
        async for frame, lost in rx:
            hook = self.on_overflow
            if lost and hook is not None:
                for t_mono_ns, sequence in lost:
                    hook(t_mono_ns, sequence)
            yield frame
        if self._error and not self._stop.is_set():
            raise CameraError(self._error)
