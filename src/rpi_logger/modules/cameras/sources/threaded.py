"""The hand-off every real camera shares: a device thread captures, the loop consumes.

A `ThreadedSource` opens its device on a worker thread, then runs a capture thread that calls
`_post(frame)` per frame. `_post` hands the frame to the loop with `call_soon_threadsafe` into a
bounded asyncio queue; when the consumer falls behind, the frame is counted in
`stats.dropped_queue_overflow` (and passed to `on_overflow`) instead of piling up. The loop never
waits on the device.

Subclasses implement three blocking methods, all called off the loop:
`_device_open() -> CameraInfo`, `_device_loop()` (capture until `self._stop` is set) and
`_device_close()` (idempotent: it may run on the capture thread and again from `close()`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from rpi_logger.modules.cameras.frames import CameraError, CameraInfo, Frame, FrameSource

log = logging.getLogger(__name__)

_END = object()


class ThreadedSource(FrameSource):
    """A `FrameSource` whose device is read on its own thread."""

    #: How long `close()` waits for the capture thread before giving up on it.
    close_timeout_s = 5.0

    def __init__(self, info: CameraInfo, queue_size: int = 8) -> None:
        super().__init__(info)
        self._queue_size = queue_size
        self._queue: asyncio.Queue[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._done: asyncio.Future[None] | None = None
        self._error: str | None = None

    # -- device side (blocking, never on the loop) -------------------------------------------
    @abc.abstractmethod
    def _device_open(self) -> CameraInfo:
        """Open and start the device; return what it really delivers. Raise CameraError."""

    @abc.abstractmethod
    def _device_loop(self) -> None:
        """Capture and `_post` frames until `self._stop` is set or `_post` returns False."""

    @abc.abstractmethod
    def _device_close(self) -> None:
        """Stop and release the device (idempotent)."""

    def _describe_error(self, exc: BaseException) -> str:
        return f"{self.info.id}: {exc}"

    # -- loop side -------------------------------------------------------------------------
    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self._queue_size)
        self._done = self._loop.create_future()
        self._stop.clear()
        self._error = None
        self._info = await asyncio.to_thread(self._device_open)
        self._thread = threading.Thread(
            target=self._run_thread, name=f"{self.backend}-{self.info.id}", daemon=True
        )
        self._thread.start()

    async def _close(self) -> None:
        self._stop.set()
        if self._done is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._done), self.close_timeout_s)
            except TimeoutError:
                log.error("%s: capture thread did not stop; releasing the device anyway",
                          self.info.id)
                await asyncio.to_thread(self._device_close)
        if self._queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(_END)

    async def frames(self) -> AsyncIterator[Frame]:
        """Frames until `close()`; raises `CameraError` if the device stops on its own."""
        if not self.is_open:
            await self.open()
        q = self._queue
        assert q is not None
        while True:
            item = await q.get()
            if item is _END:
                if self._error and not self._stop.is_set():
                    raise CameraError(self._error)
                return
            yield item

    # -- the hand-off ----------------------------------------------------------------------
    def _deliver(self, item: Any) -> None:
        """Loop side of the hand-off (runs on the loop thread)."""
        q = self._queue
        if q is None:
            return
        if item is _END:
            if q.full():  # make room: the end marker must get through
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(_END)
            return
        try:
            q.put_nowait(item)
            self.stats.frames_delivered += 1
        except asyncio.QueueFull:
            self.stats.dropped_queue_overflow += 1
            hook = self.on_overflow
            if hook is not None:
                try:
                    hook(item)
                except Exception:  # a counter must never stop the capture
                    log.exception("%s: on_overflow callback failed", self.info.id)

    def _post(self, item: Any) -> bool:
        """Thread side: hand a frame to the loop. False once the loop is gone."""
        loop = self._loop
        if loop is None:
            return False
        try:
            loop.call_soon_threadsafe(self._deliver, item)
        except RuntimeError:  # loop closed
            return False
        return True

    def _run_thread(self) -> None:
        try:
            self._device_loop()
        except Exception as exc:  # reported through the iterator, never lost silently
            self._error = self._describe_error(exc)
            log.exception("%s: capture failed", self.info.id)
        finally:
            try:
                self._device_close()
            except Exception:
                log.exception("%s: releasing the device failed", self.info.id)
            self._post(_END)
            loop, done = self._loop, self._done
            if loop is not None and done is not None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))
