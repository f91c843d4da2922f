"""A device read on its own thread, its samples handed to the loop: every source's hand-off.

Real-time devices (a camera, a PortAudio stream, an eye tracker's RTSP client, a serial port)
must not be read on an event loop that other work can delay. A `ThreadedSource` runs its device
on one `Worker` thread: `_device_open()` there, then `_device_loop()`, which calls
`_emit(sample)` per sample; `_device_close()` when the loop ends. A device whose library calls
back on its own thread (PortAudio) emits from that callback and lets `_device_loop` wait for
`self._stop`; a device with an asyncio library (the Neon API) runs its own event loop inside
`_device_loop` (``asyncio.run``), so the module's loop never waits on it.

`_emit` is a `send_nowait` into a bounded bridge with overflow "drop": when the consumer falls
behind, the sample is lost there (counted in `stats.dropped_queue_overflow`) instead of piling
up, and the loop is told which sample it was (`on_overflow(Lost)`, called on the loop just
before the next delivered sample), so the hole it leaves is not mistaken for a device gap.
Closing the bridge (the device thread does it when it ends) ends the consumer's iteration; a
device that failed on its own raises `error_class` from the iteration, with the reason.

On the loop: ``async with source: async for sample in source: ...``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

from rpi_logger.io.bridge import BridgeClosed, BridgeReceiver, BridgeSender, Worker, open_bridge

log = logging.getLogger(__name__)

S = TypeVar("S")  # the sample type
I = TypeVar("I")  # what the open device says about itself  # noqa: E741

#: Hand-off drops remembered until the next sample gets through (a loop stalled for minutes).
_MAX_LOST = 10_000


class SourceError(RuntimeError):
    """A device could not be opened or stopped delivering; the message says why."""


class Lost(NamedTuple):
    """A sample lost in the hand-off to the loop: its host time, device sequence (if the device
    counts) and size (samples it held: 1 for a frame, the block length for audio)."""

    t_mono_ns: int
    sequence: int | None
    size: int


@dataclass(slots=True)
class SourceStats:
    """Counters a source keeps; read them from the loop at any time."""

    captured: int = 0  # samples the device delivered to the source
    delivered: int = 0  # samples handed to the consumer
    dropped_queue_overflow: int = 0  # samples lost because the consumer did not keep up


# One item of the hand-off: a sample and the samples lost just before it.
_Delivery = tuple[Any, tuple[Lost, ...]]


class ThreadedSource(abc.ABC, Generic[S, I]):
    """A device on its own thread; see the module docstring. Subclasses implement the three
    blocking `_device_*` methods (called on the device thread) and may override `_lost_of`."""

    #: The backend's name (status, thread names).
    backend: ClassVar[str] = "abstract"
    #: The exception type `open()` and the iteration raise, with a one-line reason.
    error_class: ClassVar[type[Exception]] = SourceError
    #: How long `close()` waits for the device thread before releasing the device anyway.
    close_timeout_s: float = 5.0

    def __init__(self, name: str, info: I, queue_size: int = 8) -> None:
        self.name = name
        self._info = info
        self._queue_size = queue_size
        self.stats = SourceStats()
        #: Called on the loop for each sample lost in the hand-off (before the next one).
        self.on_overflow: Callable[[Lost], None] | None = None
        self._opened = False
        self._tx: BridgeSender[_Delivery] | None = None
        self._rx: BridgeReceiver[_Delivery] | None = None
        self._worker: Worker[None] | None = None
        self._stop = threading.Event()
        self._lost: list[Lost] = []  # device thread only
        self._error: str | None = None

    @property
    def info(self) -> I:
        """What the device delivers once open (what it was asked for, before)."""
        return self._info

    @property
    def is_open(self) -> bool:
        """True between a successful `open()` and `close()`."""
        return self._opened

    # -- device side (blocking, on the device thread) ----------------------------------------
    @abc.abstractmethod
    def _device_open(self) -> I:
        """Open and start the device; return what it really delivers. Raise with a reason."""

    @abc.abstractmethod
    def _device_loop(self) -> None:
        """Deliver samples with `_emit` until `self._stop` is set or `_emit` returns False."""

    @abc.abstractmethod
    def _device_close(self) -> None:
        """Stop and release the device (idempotent: `close()` calls it again if stuck)."""

    def _describe_error(self, exc: BaseException) -> str:
        return f"{self.name}: {exc}"

    def _lost_of(self, sample: S) -> Lost:
        """What the loop is told about a sample lost in the hand-off."""
        return Lost(sample.t_mono_ns, getattr(sample, "sequence", None), 1)  # type: ignore[attr-defined]

    def _emit(self, sample: S) -> bool:
        """Hand a sample to the loop (device thread, never waits). False once closed."""
        tx = self._tx
        if tx is None:
            return False
        self.stats.captured += 1
        lost = tuple(self._lost) if self._lost else ()
        try:
            sent = tx.send_nowait((sample, lost))
        except BridgeClosed:
            return False
        if sent:
            self._lost.clear()
            self.stats.delivered += 1
        else:
            self.stats.dropped_queue_overflow += 1
            if len(self._lost) < _MAX_LOST:
                self._lost.append(self._lost_of(sample))
        return True

    def _fail(self, reason: str) -> None:
        """The device stopped on its own (device thread): the iteration raises `reason`."""
        self._error = reason

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
                        if isinstance(exc, (OSError, self.error_class)):
                            # An unplugged or failing device is expected: one line.
                            log.error("capture failed: %s", self._error)
                        else:  # a bug: keep the traceback
                            log.exception("%s: capture failed", self.name)
        finally:
            try:
                self._device_close()
            except Exception:
                log.exception("%s: releasing the device failed", self.name)

    # -- loop side -------------------------------------------------------------------------
    async def open(self) -> None:
        """Start the device thread; return once the device delivers. Raises `error_class`."""
        if self._opened:
            return
        self._stop.clear()
        self._error = None
        self._lost.clear()
        self._tx, self._rx = open_bridge(
            self._queue_size, overflow="drop", name=f"{self.name} samples"
        )
        self._worker = worker = Worker(self._run, self._tx, name=f"{self.backend}-{self.name}")
        worker.start()
        try:
            self._info = await worker.ready()
        except asyncio.CancelledError:
            # The device thread still opens: tell it to stop as soon as it has; `close()`
            # joins it, so it never runs on unowned.
            self._stop.set()
            self._rx.close()
            raise
        except Exception as exc:
            self._worker = None
            with contextlib.suppress(Exception):  # the same failure, already in hand
                await worker.join()
            if isinstance(exc, self.error_class):
                raise
            raise self.error_class(self._describe_error(exc)) from exc
        self._opened = True

    async def close(self) -> None:
        """Stop the device thread and release the device. Idempotent; also ends the thread of
        an `open()` that was cancelled before the device was ready."""
        worker, self._worker = self._worker, None
        self._opened = False
        if worker is None:
            return
        self._stop.set()
        if self._rx is not None:
            self._rx.close()  # a device thread in _emit gets False and ends its loop
        try:
            async with asyncio.timeout(self.close_timeout_s):
                with contextlib.suppress(Exception):  # a failure was reported as it happened
                    await worker.join()
        except TimeoutError:
            log.error("%s: device thread did not stop; releasing the device anyway", self.name)
            await asyncio.to_thread(self._device_close)

    async def samples(self) -> AsyncIterator[S]:
        """Samples until `close()`; raises `error_class` if the device stops on its own."""
        if not self._opened:
            await self.open()
        rx = self._rx
        assert rx is not None
        async for sample, lost in rx:
            hook = self.on_overflow
            if lost and hook is not None:
                for item in lost:
                    hook(item)
            yield sample
            # The hand-off suspends only when it is empty: a device that delivers faster than
            # the loop consumes (a flood, a stall catching up) must not keep the loop's other
            # work (heartbeats, commands) waiting, so every sample gives it a turn.
            await asyncio.sleep(0)
        if self._error and not self._stop.is_set():
            raise self.error_class(self._error)

    def __aiter__(self) -> AsyncIterator[S]:
        return self.samples()

    async def __aenter__(self) -> ThreadedSource[S, I]:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
