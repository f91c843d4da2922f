"""The one hand-off between threads and the event loop: bounded, typed bridges and workers.

Every item that crosses between a thread and an asyncio loop goes through a bridge, in either
direction (capture thread -> loop, loop -> encoder or writer thread, stdin thread -> loop), and
every thread the package starts is a `Worker`. Nothing else calls `call_soon_threadsafe` or
builds a future to be settled from another thread. Modelled on anyio's memory object streams::

    tx, rx = open_bridge(64, overflow="drop", name="cam0 frames")
    tx.send_nowait(frame)          # any thread or the loop: O(1), never blocks
    async for frame in rx: ...     # loop side; ends once `close()` was called and rx is drained
    for row in rx: ...             # or a thread side, blocking

A bridge is one bounded deque behind one lock. There are no end markers: `close()` (from either
half, idempotent) makes further sends raise `BridgeClosed`, releases parked senders with that
error, and lets receivers drain what is queued before their iteration ends (`EndOfStream` from
the explicit `receive` calls). Items are delivered in send order.

Overflow, when the queue holds `max_items`:

* ``overflow="drop"``: the new item is refused and counted in `statistics().dropped`;
  `send_nowait`, `send` and `asend` return False. The caller still holds the item (to count it
  in its own terms, recycle a buffer, ...).
* ``overflow="block"``: `send_nowait` raises `WouldBlock` (a loop must never wait; the caller
  decides), `send` parks its thread until there is room, `await asend()` waits without
  blocking the loop.

Waking costs only when someone is parked: a send checks one integer (the queue length that
wakes the parked receivers, `sys.maxsize` when none is parked). A loop receiver is woken with
`call_soon_threadsafe` from another thread, or directly when the sender runs on that same loop;
a closed loop is tolerated. A writer thread can park until a batch has accumulated
(`receive_batch(min_items=...)`) and still be woken at once when someone waits on it
(`BridgeSender.wake`), so a steady stream of rows does not wake it row by row.

Completion goes the other way through a `Watermark`: a level that only rises (items flushed,
items fsynced, "ready", "done"), advanced by one thread and awaited from any thread or loop.
No marker object ever travels in a bridge.

Lifetime policy
---------------
Worker threads are daemon threads: a device read that never returns must not keep the process
alive after `main()` ends. Daemon threads get no guarantee at exit, so the normal path is
strict: whoever opens a bridge closes it, and whoever starts a worker joins it (`await
worker.join()` on the loop, `join_blocking()` on a thread), which is also where the worker's
exception surfaces. As a safety net for a forgotten close, at interpreter exit (from threading's
exit hook, before non-daemon and executor threads are joined) every bridge still open is closed,
so parked threads wake and writers drain what they hold, and running workers get up to
`EXIT_GRACE_S` in all to finish; any still running then are named in a warning and abandoned.
A worker that failed and was never joined has its exception logged when it is collected.

Blocking calls (`send`, `receive`, `receive_batch`, iteration with ``for``, `join_blocking`)
raise RuntimeError on a thread whose event loop is running; use the ``a``-prefixed awaitables
there.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures.thread  # noqa: F401  (its exit hook must be registered before ours)
import contextlib
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar

__all__ = [
    "EXIT_GRACE_S",
    "BridgeClosed",
    "BridgeReceiver",
    "BridgeSender",
    "BridgeStatistics",
    "EndOfStream",
    "Overflow",
    "Watermark",
    "Worker",
    "WouldBlock",
    "open_bridge",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
Overflow = Literal["block", "drop"]

#: Seconds the exit hook gives running workers, in all, to finish after their bridges closed.
EXIT_GRACE_S = 3.0

# The C-level "is an event loop running on this thread" check: cheap enough for hot paths.
_running_loop = asyncio.events._get_running_loop
_NEVER = sys.maxsize


class WouldBlock(Exception):
    """`send_nowait` on a full bridge with overflow="block", or `receive_nowait` on an empty one."""


class EndOfStream(Exception):
    """The bridge was closed and everything queued has been received."""


class BridgeClosed(Exception):
    """An item was offered to a closed bridge (or a parked sender was released by `close()`)."""


@dataclass(frozen=True, slots=True)
class BridgeStatistics:
    """A snapshot of one bridge. `sent` counts accepted items; refused ones are in `dropped`."""

    name: str
    max_items: int
    queued: int
    max_queued: int  # high-water mark of `queued`
    sent: int
    received: int
    dropped: int
    closed: bool
    receivers_waiting: int
    senders_waiting: int


def _refuse_on_loop(what: str, instead: str) -> None:
    if _running_loop() is not None:
        raise RuntimeError(
            f"{what} blocks and was called on a thread running an asyncio event loop; "
            f"use {instead} there"
        )


def _park(lock: threading.Lock, w: _Waiter, timeout: float | None) -> None:
    """Release `lock` (held), sleep until thread waiter `w` is woken or `timeout` passes, then
    take `lock` again."""
    lock.release()
    try:
        if timeout is None:
            w.lock.acquire()
        elif timeout > 0:
            w.lock.acquire(True, timeout)
    finally:
        lock.acquire()


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():  # done: the waiting task was cancelled
        fut.set_result(None)


class _Waiter:
    """One parked party: a thread (blocked on a lock held for it) or a loop task (a future).

    A waiter only says "look again"; the woken party re-checks the bridge under its lock, so a
    wake-up carries no data and can never be lost or misdelivered.
    """

    __slots__ = ("future", "lock", "loop", "need", "parked")

    def __init__(self, need: int, loop: asyncio.AbstractEventLoop | None) -> None:
        self.need = need  # a receiver: wake it once this many items are queued
        self.parked = True  # still listed in the bridge (cleared by whoever takes it out)
        self.loop = loop
        self.future: asyncio.Future[None] | None = None
        self.lock: Any = None
        if loop is None:
            self.lock = threading.Lock()
            self.lock.acquire()
        else:
            self.future = loop.create_future()

    def wake(self) -> None:
        """Release the parked party. Called once, outside the bridge lock."""
        if self.lock is not None:
            self.lock.release()
            return
        loop, fut = self.loop, self.future
        assert loop is not None and fut is not None
        if _running_loop() is loop:
            _settle(fut)  # same loop: no self-pipe write needed
            return
        try:
            loop.call_soon_threadsafe(_settle, fut)
        except RuntimeError:  # loop closed: nobody is left to wake
            pass


class _State(Generic[T]):
    """What both halves of one bridge share. Every field is guarded by `lock`."""

    __slots__ = (
        "__weakref__",
        "closed",
        "dropped",
        "items",
        "limit",
        "lock",
        "max_items",
        "max_queued",
        "name",
        "nudged",
        "overflow",
        "received",
        "receivers",
        "senders",
        "wake_at",
    )

    def __init__(self, max_items: int, overflow: Overflow, name: str) -> None:
        self.lock = threading.Lock()
        self.items: deque[T] = deque()
        self.max_items = max_items
        self.limit = max_items  # the send fast path's one test: max_items while open, -1 closed
        self.overflow = overflow
        self.name = name
        self.closed = False
        self.nudged = False  # `wake()` was called: a batch receiver takes what is queued now
        self.max_queued = 0
        self.received = 0
        self.dropped = 0
        self.receivers: deque[_Waiter] = deque()
        self.senders: deque[_Waiter] = deque()
        self.wake_at = _NEVER  # queue length that wakes the parked receivers

    # All methods below expect `lock` to be held.

    def take_receivers(self) -> list[_Waiter]:
        woken = list(self.receivers)
        self.receivers.clear()
        for w in woken:
            w.parked = False
        self.wake_at = _NEVER
        return woken

    def take_senders(self) -> list[_Waiter]:
        woken = list(self.senders)
        self.senders.clear()
        for w in woken:
            w.parked = False
        return woken

    def park_receiver(self, w: _Waiter) -> None:
        self.receivers.append(w)
        if w.need < self.wake_at:
            self.wake_at = w.need

    def unpark(self, w: _Waiter) -> None:
        """Take out a waiter that stopped waiting on its own (timeout, cancellation)."""
        if not w.parked:
            return
        w.parked = False
        try:
            self.receivers.remove(w)
        except ValueError:
            self.senders.remove(w)
        else:
            self.wake_at = min((r.need for r in self.receivers), default=_NEVER)

    def block(self, w: _Waiter, timeout: float | None) -> None:
        """Park the calling thread on `w` (already listed) until woken or `timeout` passes."""
        try:
            _park(self.lock, w, timeout)
        finally:
            self.unpark(w)

    def refuse(self) -> bool:
        """A send found no room (or a closed bridge): raise, or count a drop and return False."""
        if self.closed:
            raise BridgeClosed(f"{self.name}: bridge closed")
        if self.overflow == "drop":
            self.dropped += 1
            return False
        raise WouldBlock(f"{self.name}: bridge full ({self.max_items} items)")

    def pop(self, n: int) -> list[T]:
        items = self.items
        if n >= len(items):
            batch = list(items)
            items.clear()
        else:
            popleft = items.popleft
            batch = [popleft() for _ in range(n)]
        self.received += len(batch)
        return batch

    def close(self) -> list[_Waiter]:
        if self.closed:
            return []
        self.closed = True
        self.limit = -1
        return self.take_receivers() + self.take_senders()

    def statistics(self) -> BridgeStatistics:
        queued = len(self.items)
        return BridgeStatistics(
            name=self.name,
            max_items=self.max_items,
            queued=queued,
            max_queued=self.max_queued,
            sent=self.received + queued,
            received=self.received,
            dropped=self.dropped,
            closed=self.closed,
            receivers_waiting=len(self.receivers),
            senders_waiting=len(self.senders),
        )


def _wake_all(waiters: list[_Waiter]) -> None:
    for w in waiters:
        w.wake()


class _End(Generic[T]):
    """What both halves offer: close, state, statistics, context manager."""

    __slots__ = ("_s",)

    def __init__(self, state: _State[T]) -> None:
        self._s = state

    @property
    def name(self) -> str:
        """The bridge's name (for logs and statistics)."""
        return self._s.name

    @property
    def closed(self) -> bool:
        """True once either half called `close()`."""
        return self._s.closed

    def close(self) -> None:
        """Close the whole bridge (idempotent, any thread): sends raise `BridgeClosed`, parked
        senders are released with it, receivers drain what is queued and then end."""
        s = self._s
        with s.lock:
            woken = s.close()
        _wake_all(woken)

    def statistics(self) -> BridgeStatistics:
        """Counters and state, consistent with each other (taken under the lock)."""
        s = self._s
        with s.lock:
            return s.statistics()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self._s
        state = "closed" if s.closed else "open"
        return f"<{type(self).__name__} {s.name!r} {state} queued={len(s.items)}/{s.max_items}>"


class BridgeSender(_End[T]):
    """The sending half. Safe to use from any number of threads and the loop at once."""

    __slots__ = ()

    def send_nowait(self, item: T) -> bool:
        """Queue `item` without ever waiting: the per-frame, per-row call.

        Returns False when full under overflow="drop" (counted); raises `WouldBlock` when full
        under "block" and `BridgeClosed` once closed.
        """
        s = self._s
        with s.lock:
            items = s.items
            n = len(items)
            if n >= s.limit:
                return s.refuse()
            items.append(item)
            n += 1
            if n > s.max_queued:
                s.max_queued = n
            if n < s.wake_at:
                return True
            woken = s.take_receivers()
        _wake_all(woken)
        return True

    def send(self, item: T) -> bool:
        """Queue `item` from a thread that is not running an event loop.

        Under "block" waits for room; under "drop" drops when full and returns False. Raises
        `BridgeClosed` if the bridge is (or gets, while waiting) closed.
        """
        _refuse_on_loop(f"{self.name}: BridgeSender.send()", "send_nowait() or await asend()")
        s = self._s
        woken: list[_Waiter] = []
        with s.lock:
            while True:
                n = len(s.items)
                if n < s.limit:
                    woken = self._append_locked(item, n)
                    break
                if s.closed or s.overflow == "drop":
                    return s.refuse()
                w = _Waiter(1, None)
                s.senders.append(w)
                s.block(w, None)
        _wake_all(woken)
        return True

    async def asend(self, item: T) -> bool:
        """Queue `item` from the loop, waiting for room (under "block") without blocking it.

        Under "drop" drops when full and returns False. Raises `BridgeClosed` once closed.
        """
        s = self._s
        while True:
            with s.lock:
                n = len(s.items)
                if n < s.limit:
                    woken = self._append_locked(item, n)
                    break
                if s.closed or s.overflow == "drop":
                    return s.refuse()
                w = _Waiter(1, asyncio.get_running_loop())
                s.senders.append(w)
            await _await_parked(w, s.lock, s.unpark)
        _wake_all(woken)
        return True

    def wake(self) -> None:
        """Make a receiver parked in `receive_batch` return what is queued now (even nothing)
        instead of waiting for its batch to fill or its timeout: e.g. a writer someone waits
        on to flush (see `Watermark`). Sticky: a receiver that is busy right now returns at
        once from its next call."""
        s = self._s
        with s.lock:
            s.nudged = True
            woken = s.take_receivers()
        _wake_all(woken)

    def _append_locked(self, item: T, n: int) -> list[_Waiter]:
        s = self._s
        s.items.append(item)
        n += 1
        if n > s.max_queued:
            s.max_queued = n
        return s.take_receivers() if n >= s.wake_at else []


class BridgeReceiver(_End[T]):
    """The receiving half: iterate with ``for`` on a thread or ``async for`` on the loop."""

    __slots__ = ()

    def receive_nowait(self) -> T:
        """The next item if one is queued; else `WouldBlock`, or `EndOfStream` once closed."""
        s = self._s
        with s.lock:
            if s.items:
                item = s.items.popleft()
                s.received += 1
                woken = s.take_senders() if s.senders else None
            elif s.closed:
                raise EndOfStream(f"{s.name}: bridge closed and drained")
            else:
                raise WouldBlock(f"{s.name}: nothing queued")
        if woken:
            _wake_all(woken)
        return item

    def receive(self, timeout: float | None = None) -> T:
        """The next item, waiting on this (non-loop) thread.

        Raises `EndOfStream` when closed and drained, `TimeoutError` after `timeout` seconds
        with nothing queued (a writer thread wakes up this way for its periodic flush).
        """
        batch = self.receive_batch(1, timeout)
        if not batch:
            raise TimeoutError(f"{self.name}: nothing received in {timeout} s")
        return batch[0]

    def receive_batch(
        self, max_items: int, timeout: float | None = None, *, min_items: int = 1
    ) -> list[T]:
        """Up to `max_items` queued items at once, waiting on this (non-loop) thread.

        Waits until `min_items` are queued (capped at the bridge's size), the bridge is closed,
        a sender called `wake()`, or `timeout` seconds pass; then returns what is queued, up to
        `max_items`: an empty list on timeout, or after a `wake()` with nothing queued (a
        writer is asked to flush what it already holds). Raises `EndOfStream` when closed and
        drained. A writer thread passes a large `min_items` so steady traffic reaches it in
        batches at its periodic tick rather than waking it per item. ``timeout=0`` never
        waits, so it may be called on the loop too.
        """
        if timeout != 0:  # timeout=0 never waits: allowed anywhere
            _refuse_on_loop(f"{self.name}: BridgeReceiver.receive_batch()", "await areceive()")
        if max_items < 1 or min_items < 1:
            raise ValueError(f"max_items and min_items must be >= 1, got {max_items}, {min_items}")
        s = self._s
        need = min(min_items, s.max_items)
        deadline = None if timeout is None else time.monotonic() + timeout
        with s.lock:
            while True:
                n = len(s.items)
                if n >= need or (n and s.closed):
                    break
                if s.closed:
                    raise EndOfStream(f"{s.name}: bridge closed and drained")
                if s.nudged:  # wake(): what is queued now, even nothing
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                w = _Waiter(need, None)
                s.park_receiver(w)
                s.block(w, remaining)
            s.nudged = False
            batch = s.pop(max_items) if n else []
            woken = s.take_senders() if batch and s.senders else None
        if woken:
            _wake_all(woken)
        return batch

    async def areceive(self) -> T:
        """The next item, awaited on the loop. Raises `EndOfStream` when closed and drained."""
        s = self._s
        while True:
            with s.lock:
                if s.items:
                    item = s.items.popleft()
                    s.received += 1
                    woken = s.take_senders() if s.senders else None
                    break
                if s.closed:
                    raise EndOfStream(f"{s.name}: bridge closed and drained")
                w = _Waiter(1, asyncio.get_running_loop())
                s.park_receiver(w)
            await _await_parked(w, s.lock, s.unpark)
        if woken:
            _wake_all(woken)
        return item

    def __iter__(self) -> BridgeReceiver[T]:
        return self

    def __next__(self) -> T:
        try:
            return self.receive()
        except EndOfStream:
            raise StopIteration from None

    def __aiter__(self) -> BridgeReceiver[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.areceive()
        except EndOfStream:
            raise StopAsyncIteration from None


def open_bridge(
    max_items: int, *, overflow: Overflow = "block", name: str
) -> tuple[BridgeSender[T], BridgeReceiver[T]]:
    """A new bridge holding at most `max_items` items; returns its (sender, receiver) halves.

    Annotate the halves where they are stored (``self._tx: BridgeSender[Frame]``) to type them.
    """
    if max_items < 1:
        raise ValueError(f"{name}: max_items must be >= 1, got {max_items!r}")
    if overflow not in ("block", "drop"):
        raise ValueError(f'{name}: overflow must be "block" or "drop", got {overflow!r}')
    state: _State[T] = _State(int(max_items), overflow, name)
    with _registry_lock:
        _live_bridges.add(state)
    return BridgeSender(state), BridgeReceiver(state)


# ---------------------------------------------------------------------------------- workers


class Watermark:
    """A level that only rises, set on one thread and awaited on others (a thread or a loop).

    The completion signal of the package: a writer advances it to the number of items it has
    flushed, a caller of ``sync()`` waits until it covers what it submitted. A waiter that
    needs the level to move sooner says so with `request` (and wakes the producer, e.g. with
    `BridgeSender.wake`); the producer reads `wanted`. `close()` ends it: a level not reached
    by then never will be, and waits for it return False (the producer failed)::

        target = tx.statistics().sent       # caller: everything I sent so far
        mark.request(target); tx.wake()
        if not await mark.wait_async(target): raise the producer's error
        ...
        mark.advance(items_flushed)         # producer thread
    """

    __slots__ = ("_closed", "_lock", "_value", "_waiters", "_wanted", "name")

    def __init__(self, name: str = "watermark") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._value = 0
        self._wanted = 0
        self._closed = False
        self._waiters: list[_Waiter] = []

    @property
    def value(self) -> int:
        """The level reached so far."""
        return self._value

    @property
    def wanted(self) -> int:
        """The highest level anyone `request`ed."""
        return self._wanted

    def request(self, level: int) -> None:
        """Ask the producer to reach `level` soon (it reads `wanted`)."""
        with self._lock:
            if level > self._wanted:
                self._wanted = level

    def advance(self, level: int) -> None:
        """Raise the level to `level` (a lower one is ignored); wakes who waited for it."""
        with self._lock:
            if level <= self._value:
                return
            self._value = level
            woken = self._take(level)
        _wake_all(woken)

    def close(self) -> None:
        """No further rise: every present and future wait for a higher level returns False."""
        with self._lock:
            self._closed = True
            woken = self._take(sys.maxsize)
        _wake_all(woken)

    def wait(self, level: int, timeout: float | None = None) -> bool:
        """Wait on this (non-loop) thread until the level reaches `level` (True) or it is
        closed below it (False); TimeoutError after `timeout` seconds."""
        _refuse_on_loop(f"{self.name}: Watermark.wait()", "await wait_async()")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._value < level and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"{self.name}: not reached after {timeout} s")
                w = _Waiter(level, None)
                self._waiters.append(w)
                try:
                    _park(self._lock, w, remaining)
                finally:
                    self._unpark(w)
            return self._value >= level

    async def wait_async(self, level: int) -> bool:
        """`wait` on the loop, without blocking it; bound it with `asyncio.timeout()`."""
        with self._lock:
            if self._value >= level or self._closed:
                return self._value >= level
            w = _Waiter(level, asyncio.get_running_loop())
            self._waiters.append(w)
        await _await_parked(w, self._lock, self._unpark)
        return self._value >= level

    # Both expect `_lock` to be held.

    def _take(self, level: int) -> list[_Waiter]:
        woken = [w for w in self._waiters if w.need <= level]
        if woken:
            self._waiters = [w for w in self._waiters if w.need > level]
            for w in woken:
                w.parked = False
        return woken

    def _unpark(self, w: _Waiter) -> None:
        if w.parked:
            w.parked = False
            self._waiters.remove(w)


async def _await_parked(
    w: _Waiter, lock: threading.Lock, unpark: Callable[[_Waiter], None]
) -> None:
    """Wait for a parked waiter's future; a cancelled wait takes the waiter off its list."""
    assert w.future is not None
    try:
        await w.future
    finally:
        if w.parked:  # cancelled while still listed
            with lock:
                unpark(w)


class Worker(Generic[R]):
    """Runs ``fn(*args)`` on one named daemon thread; the loop awaits its end with `join()`.

    Usage::

        self._worker = Worker(self._encode_loop, rx, name="encoder cam0")
        self._worker.start()
        info = await self._worker.ready()   # optional: fn called set_ready(info)
        ...
        result = await self._worker.join()  # fn's return value, or its exception re-raised

    `ready()` is the readiness handshake (like anyio's ``task_status.started()``): the thread
    calls `set_ready(value)` once it has opened its device or file; `ready()` returns that
    value, or raises fn's exception if fn failed first. See the module docstring for the
    lifetime policy (daemon threads, joined on the normal path, an exit safety net).
    """

    def __init__(self, fn: Callable[..., R], *args: Any, name: str, nice: int = 0) -> None:
        self.name = name
        # Bulk work (video encoding) runs at a lower priority than the loops and the
        # latency-bound threads (notes, device reads), so it takes only the CPU they leave:
        # its bounded queue absorbs the delay, a note's round trip cannot.
        self.nice = nice
        self._fn = fn
        self._args = args
        self._thread: threading.Thread | None = None
        self._ready = Watermark(f"worker {name!r} ready")
        self._done = Watermark(f"worker {name!r}")
        self._is_ready = False
        self._ready_value: Any = None
        self._result: R | None = None
        self._error: BaseException | None = None
        self._retrieved = False

    def start(self) -> None:
        """Start the thread (once). Store the worker first if fn refers back to it."""
        if self._thread is not None:
            raise RuntimeError(f"worker {self.name!r} already started")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        with _registry_lock:
            _live_workers.add(self)
        try:
            self._thread.start()
        except BaseException:
            with _registry_lock:
                _live_workers.discard(self)
            raise

    def _run(self) -> None:
        if self.nice > 0 and hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):  # Linux: a thread's nice value is its own
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        try:
            self._result = self._fn(*self._args)
        except BaseException as exc:  # delivered to join(); the thread must not die silently
            self._error = exc
        finally:
            self._fn = self._args = None  # type: ignore[assignment]  (drop references early)
            self._ready.advance(1)
            self._done.advance(1)
            with _registry_lock:
                _live_workers.discard(self)

    # -- thread side -------------------------------------------------------------------------

    def set_ready(self, value: Any = None) -> None:
        """Called by fn, on its thread, once it is ready: releases `await ready()` with value."""
        if not self._is_ready:
            self._ready_value = value
            self._is_ready = True
        self._ready.advance(1)

    # -- owner side --------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once fn has returned or raised."""
        return self._done.value > 0

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    async def ready(self) -> Any:
        """Wait (on the loop) until fn called `set_ready`; returns its value.

        Raises fn's exception if it failed before that, RuntimeError if it returned before.
        """
        self._check_started()
        await self._ready.wait_async(1)
        if self._is_ready:
            return self._ready_value
        if self._error is not None:
            self._retrieved = True
            raise self._error
        raise RuntimeError(f"worker {self.name!r} returned without calling set_ready()")

    async def join(self) -> R:
        """Wait (on the loop, without blocking it) for fn to end; its result or its exception.

        Cancelling the wait does not stop the thread (nothing can); wrap in
        `asyncio.timeout()` to bound it.
        """
        self._check_started()
        await self._done.wait_async(1)
        return self._outcome()

    def join_blocking(self, timeout: float | None = None) -> R:
        """`join()` for a thread without a running loop; TimeoutError after `timeout` s."""
        _refuse_on_loop(f"worker {self.name!r}: join_blocking()", "await join()")
        self._check_started()
        try:
            self._done.wait(1, timeout)
        except TimeoutError:
            raise TimeoutError(f"worker {self.name!r} still running after {timeout} s") from None
        return self._outcome()

    def _check_started(self) -> None:
        if self._thread is None:
            raise RuntimeError(f"worker {self.name!r} was never started")

    def _outcome(self) -> R:
        self._retrieved = True
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    def __repr__(self) -> str:
        state = "new" if self._thread is None else "done" if self.done else "running"
        return f"<Worker {self.name!r} {state}>"

    def __del__(self) -> None:
        err = getattr(self, "_error", None)
        if err is not None and not getattr(self, "_retrieved", True):
            log.error("worker %r failed and was never joined", self.name, exc_info=err)


# ------------------------------------------------------------------------- exit safety net

_registry_lock = threading.Lock()
_live_bridges: weakref.WeakSet[_State[Any]] = weakref.WeakSet()
_live_workers: set[Worker[Any]] = set()


def _at_exit() -> None:
    """Close forgotten bridges and give running workers a bounded grace (module docstring)."""
    with _registry_lock:
        states = list(_live_bridges)
        workers = list(_live_workers)
    for s in states:
        with s.lock:
            woken = s.close()
        _wake_all(woken)
    deadline = time.monotonic() + EXIT_GRACE_S
    for w in workers:
        thread = w._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [w.name for w in workers if w.alive]
    if stuck:
        log.warning("exiting with worker threads still running (abandoned): %s", ", ".join(stuck))


def _register_exit_hook() -> None:
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_at_exit)
            return
        except RuntimeError:  # interpreter already shutting down
            return
    atexit.register(_at_exit)


_register_exit_hook()
