"""The master's event bus: one publisher, many readers, and no reader can hold anyone up.

The master publishes events (module status, heartbeats, previews carrying JPEG data, trial and
session changes) to the web UI's WebSocket clients and to in-process listeners. A browser on a
slow link, or one that stopped reading, must never delay the recording, the other clients or
the publisher, so:

* `EventBus.publish(event)` is synchronous, never waits and costs O(1) per subscriber: it
  appends to each subscriber's own bounded queue and wakes the subscriber if it is waiting.
* A subscriber whose queue is full skips events: its *oldest* queued event is dropped (a UI
  wants the newest state), counted in `Subscription.dropped`. The first skip of a lagging
  spell is logged in one line naming the subscriber, and so is its recovery (it drained its
  queue); a subscriber on the edge that lags again and again is reported at most once a
  minute, and its total is logged when it leaves. A subscriber that skips `max_lag_drops`
  events without ever catching up is disconnected: that is logged, its queue is released, and
  its iteration raises `SubscriberDisconnected` (`closed_reason` and `disconnected` say so
  too), so a WebSocket handler can close the socket with a clear reason and the client can
  reconnect.
* Plain callbacks (`add_listener`) serve in-process code; they run inside `publish`, so they
  must be quick. One that raises is logged (with its traceback the first time) and never
  breaks `publish` or the listeners after it.

The bus lives on one event loop and is not a thread hand-off: `publish` with subscribers
attached raises RuntimeError off that loop. A thread with events to publish hands them to the
loop through `rpi_logger.io.bridge`. Events are delivered to every reader as the same dict
object: treat them as read-only.

    bus = EventBus()
    async with bus.subscribe(name=f"ws {client}") as sub:
        async for event in sub:          # raises SubscriberDisconnected if it fell too far behind
            await websocket.send_json(event)
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

__all__ = ["Event", "EventBus", "Listener", "SubscriberDisconnected", "Subscription"]

log = logging.getLogger(__name__)

Event = dict[str, Any]
Listener = Callable[[Event], object]

#: A subscriber's lagging spells are reported at most this often (seconds).
LAG_LOG_INTERVAL_S = 60.0

# The C-level "which loop runs on this thread" check: cheap enough for every publish.
_running_loop = asyncio.events._get_running_loop


class SubscriberDisconnected(Exception):
    """The subscriber fell too far behind and was disconnected by the bus."""

    def __init__(self, name: str, reason: str, dropped: int) -> None:
        super().__init__(f"event subscriber {name!r} disconnected: {reason}")
        self.name = name
        self.reason = reason
        self.dropped = dropped


class Subscription:
    """One reader's bounded queue of events; iterate it with ``async for``.

    Made by `EventBus.subscribe` and attached at once, so nothing published after that call is
    missed (subscribe first, then send the client a snapshot, then stream). Leaving the
    ``async with`` block (or `close()`) detaches it; iteration then ends once the queue is
    drained. Counters: `received`, `dropped` (published to it but never delivered), `queued`.
    """

    def __init__(self, bus: EventBus, name: str, max_items: int, max_lag_drops: int) -> None:
        self.name = name
        self.max_items = max_items
        self.max_lag_drops = max_lag_drops
        self.received = 0
        self.dropped = 0
        self.closed_reason: str | None = None
        self.disconnected = False
        self._bus = bus
        self._queue: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lag_drops = 0  # skipped in the current lagging spell; 0 when caught up
        self._spell_logged = False  # the current spell's start was logged: log its end too
        self._next_lag_log = 0.0  # monotonic time before which a new spell is not logged

    @property
    def queued(self) -> int:
        """Events waiting to be read."""
        return len(self._queue)

    @property
    def lagging(self) -> bool:
        """True from its first skipped event until it drains its queue."""
        return self._lag_drops > 0

    @property
    def closed(self) -> bool:
        """True once detached from the bus (unsubscribed, disconnected or bus closed)."""
        return self.closed_reason is not None

    def close(self) -> None:
        """Detach from the bus (idempotent); iteration ends after the queued events."""
        self._end("unsubscribed")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        q = self._queue
        while not q:
            if self.closed_reason is not None:
                if self.disconnected:
                    raise SubscriberDisconnected(self.name, self.closed_reason, self.dropped)
                raise StopAsyncIteration
            if self._waiter is not None:
                raise RuntimeError(f"subscription {self.name!r} is read by two tasks at once")
            fut = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await fut
            finally:
                self._waiter = None
        event = q.popleft()
        self.received += 1
        if not q and self._lag_drops:
            if self._spell_logged:
                self._spell_logged = False
                log.info(
                    "event subscriber %r caught up after skipping %d events",
                    self.name,
                    self._lag_drops,
                )
            self._lag_drops = 0
        return event

    def __repr__(self) -> str:
        state = self.closed_reason or ("lagging" if self.lagging else "ok")
        return f"<Subscription {self.name!r} {state} queued={len(self._queue)}/{self.max_items}>"

    # -- called by the bus -------------------------------------------------------------------

    def _offer(self, event: Event) -> None:
        q = self._queue
        if len(q) >= self.max_items:
            if self._lag_drops >= self.max_lag_drops:
                self._disconnect()
                return
            q.popleft()  # the oldest goes: a UI wants the newest state
            self.dropped += 1
            if not self._lag_drops:
                self._lag_started()
            self._lag_drops += 1
        q.append(event)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _lag_started(self) -> None:
        now = time.monotonic()
        if now < self._next_lag_log:
            return  # on the edge: lagging again soon after the last report
        self._next_lag_log = now + LAG_LOG_INTERVAL_S
        self._spell_logged = True
        log.warning(
            "event subscriber %r is lagging: its queue of %d is full, skipping its oldest events",
            self.name,
            self.max_items,
        )

    def _disconnect(self) -> None:
        skipped = self._lag_drops
        self.dropped += len(self._queue) + 1  # what it holds and the event that overflowed
        self._queue.clear()  # a stuck client must not keep megabytes of previews alive
        self.disconnected = True
        reason = (
            f"lagging: skipped {skipped} events without catching up "
            f"(limit {self.max_lag_drops}, queue of {self.max_items})"
        )
        log.warning("event subscriber %r disconnected: %s", self.name, reason)
        self._end(reason)

    def _end(self, reason: str) -> None:
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        self._bus._detach(self)
        if self.dropped and not self.disconnected:
            log.info(
                "event subscriber %r left (%s); %d events were skipped for it in all",
                self.name,
                reason,
                self.dropped,
            )
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)


class EventBus:
    """Fan-out of events to bounded subscriber queues and in-process listeners (see module)."""

    def __init__(
        self, *, max_items: int = 256, max_lag_drops: int = 1000, name: str = "events"
    ) -> None:
        if max_items < 1:
            raise ValueError(f"{name}: max_items must be >= 1, got {max_items!r}")
        if max_lag_drops < 0:
            raise ValueError(f"{name}: max_lag_drops must be >= 0, got {max_lag_drops!r}")
        self.name = name
        self.max_items = max_items
        self.max_lag_drops = max_lag_drops
        self.published = 0
        self.listener_errors = 0
        self._subs: tuple[Subscription, ...] = ()  # replaced, never mutated: safe to iterate
        self._listeners: tuple[Listener, ...] = ()
        self._failed: set[int] = set()  # ids of listeners whose traceback was logged already
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The attached subscriptions (for status displays)."""
        return self._subs

    def subscribe(
        self, *, name: str, max_items: int | None = None, max_lag_drops: int | None = None
    ) -> Subscription:
        """Attach a new reader now (on the bus's loop); use it with ``async with``.

        `max_items` and `max_lag_drops` override the bus defaults for this reader;
        `max_lag_drops=0` disconnects it instead of ever skipping an event.
        """
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError(f"{self.name}: subscribe() after the bus was closed")
        if self._subs and loop is not self._loop:
            raise RuntimeError(f"{self.name}: subscribers must all live on the same event loop")
        size = self.max_items if max_items is None else max_items
        lag = self.max_lag_drops if max_lag_drops is None else max_lag_drops
        if size < 1 or lag < 0:
            raise ValueError(f"{name}: need max_items >= 1 and max_lag_drops >= 0")
        self._loop = loop
        sub = Subscription(self, name, size, lag)
        self._subs = (*self._subs, sub)
        return sub

    def add_listener(self, fn: Listener) -> Callable[[], None]:
        """Call `fn(event)` inside every `publish`; returns a function that removes it.

        For quick in-process reactions only: a listener that needs to wait subscribes instead.
        """
        if inspect.iscoroutinefunction(fn):
            raise TypeError(f"{self.name}: listener {fn!r} is async; use subscribe() instead")
        if not self._closed:
            self._listeners = (*self._listeners, fn)
        return lambda: self.remove_listener(fn)

    def remove_listener(self, fn: Listener) -> None:
        """Stop calling `fn` (no error if it is not a listener)."""
        listeners = list(self._listeners)
        if fn in listeners:
            listeners.remove(fn)
            self._listeners = tuple(listeners)
        self._failed.discard(id(fn))

    def publish(self, event: Event) -> None:
        """Queue `event` for every subscriber and call every listener. Never waits."""
        subs = self._subs
        if subs:
            if _running_loop() is not self._loop:
                raise RuntimeError(
                    f"{self.name}: publish() called off the bus's event loop; hand events "
                    "from threads to the loop through rpi_logger.io.bridge"
                )
            for sub in subs:
                sub._offer(event)
        for fn in self._listeners:
            try:
                fn(event)
            except Exception:
                self._listener_failed(fn)
        self.published += 1

    def close(self) -> None:
        """Detach every subscriber (each ends after its queued events) and every listener."""
        self._closed = True
        for sub in self._subs:
            sub._end("bus closed")
        self._listeners = ()

    def _detach(self, sub: Subscription) -> None:
        self._subs = tuple(s for s in self._subs if s is not sub)

    def _listener_failed(self, fn: Listener) -> None:
        self.listener_errors += 1
        if id(fn) in self._failed:
            log.debug("%s: event listener %r failed again", self.name, fn, exc_info=True)
            return
        self._failed.add(id(fn))
        log.exception(
            "%s: event listener %r failed (later failures of it are logged at debug level)",
            self.name,
            fn,
        )
