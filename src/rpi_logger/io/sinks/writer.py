"""SinkWriter: one sink fed from the event loop or any thread, without ever blocking the loop.

Producers call `submit(item)`: one put into a bounded bridge (`rpi_logger.io.bridge`), O(1),
never any I/O. One worker thread takes the items in batches, hands them to the sink, flushes to
the OS at least every `flush_interval_s` (another reader, or one after `kill -9`, sees every
item older than that), fsyncs every `fsync_interval_s`, and does either at once when someone
waits: `await sync()` (flushed and fsynced), `flush_blocking()` (for a producer thread that must
not let something else get ahead of these items). Completion comes back through two
`Watermark`s (items flushed, items fsynced) and the end of the `Worker`; no marker object ever
travels with the items.

Overflow, when `max_queue` items wait for the thread:

* ``overflow="drop"``: the item is refused, counted (`dropped_overflow`), logged once, and
  `submit` returns False.
* ``overflow="block"``: on a thread without a running loop `submit` waits for room; on a loop
  thread it never waits: the item is dropped and counted the same way (logged once). `await
  asubmit()` waits for room without blocking the loop.

A failure of the sink (a full disk) is logged once, in one line (`describe_write_error`: "disk
full: <path>"). The writer then stops writing: the sink is aborted (a CSV is cut back to its last
good flush; `written` then counts what the file kept), producers waiting for room are released,
and every later item is refused at once (`submit` returns False; counted in `dropped_error` with
the items lost). `sync()` and `flush_blocking()` raise `SinkError` from then on; `close()` /
`aclose()` return promptly and raise it once. Items offered after close began raise
`WriterClosedError`.

Blocking mode (`set_blocking(True)`, or ``RPI_LOGGER_BLOCKING_SINKS=1`` in the environment, read
at import; it applies to writers created afterwards): no thread; the caller does the work on
the spot: each `submit` writes, flushes once the interval has passed, `sync()` fsyncs, all on
the caller's thread, the loop's included. That is how naive code behaves; the benchmark runs it
as the baseline (design.md: Benchmark). The files are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Generic, Self, TypeVar

from rpi_logger.io.bridge import (
    BridgeClosed,
    EndOfStream,
    Overflow,
    Watermark,
    Worker,
    WouldBlock,
    _refuse_on_loop,
    open_bridge,
)

from .base import Sink, SinkError, describe_write_error, with_latency

__all__ = ["SinkWriter", "WriterClosedError", "WriterStats", "set_blocking"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# The C-level "is an event loop running on this thread" check: cheap enough for hot paths.
_running_loop = asyncio.events._get_running_loop

_blocking = os.environ.get("RPI_LOGGER_BLOCKING_SINKS", "") not in ("", "0")

_FULL = "%s: queue full (%d items); dropping, the total is reported at close"
_FULL_ON_LOOP = (
    "%s: queue full on the event-loop thread; dropped instead of blocking the loop "
    "(`await asubmit()` waits for room)"
)


def is_blocking() -> bool:
    """True when writers created now run inline (blocking mode)."""
    return _blocking


def set_blocking(on: bool) -> None:
    """Blocking mode (see the module docstring) for every writer created from now on."""
    global _blocking
    _blocking = bool(on)


class WriterClosedError(RuntimeError):
    """An item was offered after `close()`/`aclose()` began."""


@dataclass(frozen=True, slots=True)
class WriterStats:
    """A snapshot of one writer's counters (for the manifest and status displays)."""

    name: str
    accepted: int  # items taken by submit/asubmit
    written: int  # items handed to the sink (after a failure: those the file kept)
    dropped_overflow: int  # refused for want of room
    dropped_error: int  # refused or lost because the sink failed (or closed before start)
    queued: int  # waiting for the writer now
    max_queued: int
    flushes: int
    fsyncs: int
    error: str | None  # the failure, in one line

    @property
    def dropped(self) -> int:
        """Every item offered and not in the file."""
        return self.dropped_overflow + self.dropped_error


class SinkWriter(Generic[T]):
    """Runs `sink` on a worker thread (or inline in blocking mode). See the module docstring.

    Usage::

        async with SinkWriter(sink, flush_interval_s=1.0) as w:
            w.submit(item)      # O(1), never blocks the loop
            await w.sync()      # everything submitted so far is flushed and fsynced
    """

    def __init__(
        self,
        sink: Sink[T],
        *,
        flush_interval_s: float = 1.0,
        fsync_interval_s: float | None = 1.0,
        max_queue: int = 10_000,
        overflow: Overflow = "block",
        name: str | None = None,
        nice: int = 0,
        wake_items: int | None = None,
    ) -> None:
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s!r}")
        if fsync_interval_s is not None and not fsync_interval_s >= 0:
            raise ValueError(f"fsync_interval_s must be >= 0 or None, got {fsync_interval_s!r}")
        self.sink = sink
        self._nice = nice  # the worker thread's nice value (see Worker)
        self.name = name or Path(sink.path).stem
        self.flush_interval_s = float(flush_interval_s)
        self.fsync_interval_s = fsync_interval_s
        self._io = with_latency(sink)
        self._inline = _blocking
        self._tx, self._rx = open_bridge(max_queue, overflow=overflow, name=self.name)
        self._batch = int(max_queue)
        # Rows at normal rates are written at the periodic tick in one batch; a burst wakes the
        # thread early so the queue keeps room. Work that should start at once (a frame to
        # encode) passes wake_items=1.
        self._wake_at = wake_items or max(1, self._batch // 4)
        self._flushed = Watermark(f"{self.name}: items flushed")
        self._durable = Watermark(f"{self.name}: items fsynced")
        self._lock = threading.Lock()  # state changes and the slow paths' counters
        self._io_lock = threading.Lock()  # blocking mode: one caller in the sink at a time
        self._worker: Worker[None] | None = None
        self._started = self._closing = self._reported = self._warned = False
        self._lost = False  # accepted items not written count as dropped (failure, no start)
        self._error: BaseException | None = None
        self._refused = self._loop_drops = 0
        # Sink side (the worker thread, or the caller under _io_lock in blocking mode).
        self._taken = self._written = self._good = self._flushes = self._fsyncs = 0
        self._dirty = self._unsynced = False  # written since the last flush / flushed, no fsync
        self._next_flush = self._next_fsync = 0.0

    # ------------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Open the sink and start the worker. Blocking (a file open, an fsync): on the loop use
        `await astart()`. Items submitted before are written once started."""
        _refuse_on_loop(f"{self.name}: start()", "await astart()")
        self._open()

    async def astart(self) -> None:
        """`start()` off the loop (in blocking mode on it, as naive code does)."""
        if self._inline:
            self._open()
        else:
            await asyncio.to_thread(self._open)

    def close(self, timeout: float | None = 30.0) -> WriterStats:
        """Drain, close the sink and end the worker (blocking: on the loop `await aclose()`).

        Raises TimeoutError if the worker is still draining after `timeout` s, `SinkError` if
        the sink failed (once; later calls return quietly)."""
        _refuse_on_loop(f"{self.name}: close()", "await aclose()")
        self._begin_close()
        if self._worker is not None:
            self._worker.join_blocking(timeout)
        return self._closed()

    async def aclose(self) -> WriterStats:
        """`close()` on the loop without blocking it (bound it with `asyncio.timeout()`)."""
        self._begin_close()
        if self._worker is not None:
            await self._worker.join()
        return self._closed()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------------ producers

    def submit(self, item: T) -> bool:
        """Queue `item` (from the loop or any thread; O(1), no I/O). False if it was dropped
        (see the overflow and failure policies in the module docstring)."""
        try:
            if self._tx.send_nowait(item):
                if self._inline:
                    self._pump()
                return True
            return self._warn_once(_FULL, self.name, self._batch)
        except WouldBlock:  # "block", full
            if _running_loop() is None:
                return self._send_waiting(item)
            with self._lock:
                self._loop_drops += 1
            return self._warn_once(_FULL_ON_LOOP, self.name)
        except BridgeClosed:
            return self._refuse()

    async def asubmit(self, item: T) -> bool:
        """Queue `item` from the loop; under "block" wait for room without blocking it. False
        only if it was dropped ("drop" and full, or the sink failed)."""
        if self._inline:
            return self.submit(item)
        try:
            if await self._tx.asend(item):
                return True
        except BridgeClosed:
            return self._refuse()
        return self._warn_once(_FULL, self.name, self._batch)

    def _send_waiting(self, item: T) -> bool:
        if not self._started:
            raise RuntimeError(f"{self.name}: queue full and the writer is not started")
        try:
            return self._tx.send(item)
        except BridgeClosed:
            return self._refuse()

    def _refuse(self) -> bool:
        if self._closing:
            raise WriterClosedError(f"{self.name}: item offered after close")
        with self._lock:
            self._refused += 1
        return False

    def _warn_once(self, msg: str, *args: object) -> bool:
        if not self._warned and self._error is None:
            self._warned = True
            log.warning(msg, *args)
        return False

    # ------------------------------------------------------------------------ waiting

    async def sync(self) -> None:
        """Return once every item submitted before the call is written, flushed and fsynced.

        Raises `SinkError` if the sink failed, RuntimeError if the writer was never started."""
        target = self._target(self._durable)
        if target is not None and not await self._durable.wait_async(target):
            raise self._wrapped_error()

    def flush_blocking(self, timeout: float | None = None, *, fsync: bool = False) -> None:
        """Return once every item submitted before the call (from any thread) is flushed to the
        OS, so another process (or a reader after `kill -9`) sees it; with `fsync=True` also
        fsynced. For threads without a loop, e.g. an encoder thread that must not let a video
        get ahead of its timing rows. Raises `SinkError` (at once once the sink has failed),
        TimeoutError after `timeout` s."""
        _refuse_on_loop(f"{self.name}: flush_blocking()", "await sync()")
        mark = self._durable if fsync else self._flushed
        target = self._target(mark)
        if target is not None and not mark.wait(target, timeout):
            raise self._wrapped_error()

    def _target(self, mark: Watermark) -> int | None:
        """The level of `mark` that covers everything submitted so far, with the writer asked
        to reach it now; None when it has already."""
        if self._error is not None:
            raise self._wrapped_error()
        if not self._started:
            raise RuntimeError(f"{self.name}: sync before start()")
        target = self._tx.statistics().sent
        if mark.value >= target:
            return None
        mark.request(target)
        if self._inline:
            self._pump()
        else:
            self._tx.wake()
        return target

    # ------------------------------------------------------------------------ status

    @property
    def error(self) -> BaseException | None:
        """The failure that stopped the writer, if any."""
        return self._error

    @property
    def closed(self) -> bool:
        """True once close began."""
        return self._closing

    def stats(self) -> WriterStats:
        """A consistent snapshot of the counters."""
        st = self._tx.statistics()
        with self._lock:
            written, lost, refused, loop_drops = (
                self._written,
                self._lost,
                self._refused,
                self._loop_drops,
            )
        err = self._error
        return WriterStats(
            name=self.name,
            accepted=st.sent,
            written=written,
            dropped_overflow=st.dropped + loop_drops,
            dropped_error=refused + (st.sent - written if lost else 0),
            queued=st.queued,
            max_queued=st.max_queued,
            flushes=self._flushes,
            fsyncs=self._fsyncs,
            error=None if err is None else describe_write_error(self.sink.path, err),
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.sink.path}>"

    # ------------------------------------------------------------------------ internals

    def _open(self) -> None:
        with self._lock:
            if self._started or self._closing:
                raise RuntimeError(f"{self.name}: writer already started or closed")
            self._started = True
        try:
            if self._nice > 0 and not self._inline:
                # Threads the sink starts as it opens (x264's encoding threads, which do the
                # actual work) inherit the opening thread's nice value: open on a thread at
                # the writer's, not on a pool thread at 0 competing with the loops.
                opener = Worker(self._io.open, name=f"open:{self.name}", nice=self._nice)
                opener.start()
                opener.join_blocking()
            else:
                self._io.open()
        except BaseException:
            with self._lock:
                self._started = False
            raise
        now = time.monotonic()
        self._next_flush = now + self.flush_interval_s
        self._next_fsync = now + (self.fsync_interval_s or 0.0)
        if not self._inline:
            self._worker = Worker(self._run, name=f"writer:{self.name}", nice=self._nice)
            self._worker.start()

    def _begin_close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._lost |= not self._started
        self._tx.close()  # the worker drains what is queued, then finishes
        if self._started and self._inline:
            self._pump(finish=True)
        elif not self._started:  # nothing will ever write the queued items
            with contextlib.suppress(EndOfStream):
                if discarded := len(self._rx.receive_batch(self._batch, 0)):
                    log.warning("%s: closed before start; %d items discarded", self.name, discarded)
            self._flushed.close()
            self._durable.close()

    def _closed(self) -> WriterStats:
        """After the sink closed: its failure, raised once; else the final counters."""
        with self._lock:
            report = self._error is not None and not self._reported
            self._reported = self._error is not None
        if report:
            raise self._wrapped_error()
        return self.stats()

    def _wrapped_error(self) -> SinkError:
        # A fresh exception per raise: re-raising one object from several places keeps
        # growing its traceback.
        err = self._error
        assert err is not None
        wrapped = SinkError(describe_write_error(self.sink.path, err))
        wrapped.__cause__ = err
        return wrapped

    # -- sink side: the worker thread, or in blocking mode the caller under _io_lock ----------

    def _run(self) -> None:
        """The worker: take batches, write them, flush on the tick and when someone waits."""
        rx = self._rx
        try:
            while True:
                # Someone waits for items still queued: take them now, not at the tick.
                waited = max(self._flushed.wanted, self._durable.wanted) > self._taken
                timeout = max(0.0, self._next_flush - time.monotonic())
                try:
                    batch = rx.receive_batch(
                        self._batch, timeout, min_items=1 if waited else self._wake_at
                    )
                except EndOfStream:
                    break
                self._step(batch)
            self._finish()
        except BaseException as exc:  # the thread must never die silently
            self._fail(exc)

    def _pump(self, finish: bool = False) -> None:
        """Blocking mode: what the worker would do, done by the caller."""
        with self._io_lock:
            if self._error is not None:
                return
            try:
                try:
                    batch = self._rx.receive_batch(self._batch, 0)
                except EndOfStream:
                    batch = []
                self._step(batch)
                if finish:
                    self._finish()
            except BaseException as exc:
                self._fail(exc)

    def _step(self, batch: list[T]) -> None:
        """Write `batch`; flush when the tick is due or someone waits, fsync likewise."""
        if batch:
            self._taken += len(batch)
            self._io.write(batch)
            self._written += len(batch)
            self._dirty = True
        now = time.monotonic()
        due = now >= self._next_flush
        fsync = self._durable.wanted > self._durable.value or (
            due and self.fsync_interval_s is not None and now >= self._next_fsync
        )
        if not (due or fsync or self._flushed.wanted > self._flushed.value):
            return
        if self._dirty:
            self._io.flush()
            self._dirty, self._unsynced = False, True
            self._flushes += 1
            self._good = self._written
        self._flushed.advance(self._taken)
        if fsync:
            if self._unsynced:
                self._io.sync()
                self._unsynced = False
                self._fsyncs += 1
            self._durable.advance(self._taken)
            if self.fsync_interval_s is not None:
                self._next_fsync = now + self.fsync_interval_s
        if due:
            self._next_flush = now + self.flush_interval_s

    def _finish(self) -> None:
        """Everything is in: finalize, sync and release the sink."""
        self._io.close()
        self._flushes += self._dirty
        self._fsyncs += self._dirty or self._unsynced
        self._dirty = self._unsynced = False
        self._good = self._written
        for mark in (self._flushed, self._durable):
            mark.advance(self._taken)
            mark.close()
        dropped = self.stats().dropped
        if dropped:
            log.warning("%s: %d items dropped in total", self.name, dropped)
        log.debug("%s: closed after %d items", self.name, self._written)

    def _fail(self, exc: BaseException) -> None:
        """Stop writing: say why once, keep what the last good flush left, release everyone."""
        with self._lock:
            self._written = self._good
            self._lost = True
            self._error = exc
        if isinstance(exc, OSError | SinkError):  # expected (full disk...): one line
            log.error("%s", describe_write_error(self.sink.path, exc))
        else:
            log.error(
                "%s: writing %s failed; the writer stopped and later items are dropped",
                self.name,
                self.sink.path,
                exc_info=exc,
            )
        self._tx.close()  # producers waiting for room are released; later items refused
        try:
            self._io.abort()
        except Exception:  # the failure is reported already; the release is best effort
            log.debug("%s: abort after the failure failed too", self.name, exc_info=True)
        with contextlib.suppress(EndOfStream):
            self._rx.receive_batch(self._batch, 0)  # discard what was queued (counted lost)
        self._flushed.close()
        self._durable.close()
