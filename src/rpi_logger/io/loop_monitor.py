"""Event-loop lag monitor: how late does the loop run a timer that is due?

A timer is scheduled every `interval_s`; its lag is the time it actually ran minus the time it
was due. A loop blocked by a 200 ms callback runs the timer ~200 ms late, so the figures expose
any blocking call. Statistics are kept in a fixed log-bucket histogram (constant memory for
sessions of any length; percentiles within ~0.6 %, max exact), for the whole run and per trial,
as the `health.<module>.loop_lag_ms` figures of the session manifest.

Resolution: on Linux the loop sleeps in `epoll_wait`, which takes whole milliseconds, so an idle
loop shows lags of about 0.1–1 ms: that is timer granularity, not blocking.

One sample per tick: a single long block yields one large sample, not one per missed tick.

With asyncio debug mode on (`loop.get_debug()`), asyncio logs every callback slower than
`loop.slow_callback_duration`; the monitor sets that to `slow_callback_duration_s` and re-emits
those records as WARNING on the `rpi_logger.loop` logger, naming the callback.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from typing import Any

__all__ = ["LagHistogram", "LoopLagMonitor"]

log = logging.getLogger("rpi_logger.loop")


class LagHistogram:
    """Counts of lag samples (ms) in log-spaced buckets from `lo_ms` to `hi_ms`.

    Values below `lo_ms` share one underflow bucket, values above `hi_ms` one overflow bucket;
    min, max and mean are exact. A percentile is the geometric middle of its bucket, clamped to
    [min, max], so its relative error is at most half a bucket (10**(1/(2*per_decade)) - 1,
    0.58 % by default); the lowest and highest ranks return the exact min and max.
    """

    __slots__ = ("_counts", "_k", "_log_lo", "_n", "count", "hi_ms", "lo_ms", "max", "min", "sum")

    def __init__(self, lo_ms: float = 0.01, hi_ms: float = 10_000.0, per_decade: int = 200) -> None:
        self.lo_ms = lo_ms
        self.hi_ms = hi_ms
        self._k = per_decade
        self._log_lo = math.log10(lo_ms)
        self._n = math.ceil(math.log10(hi_ms / lo_ms) * per_decade)
        self._counts = [0] * (self._n + 2)  # [underflow, n log buckets..., overflow]
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = 0.0

    def add(self, ms: float) -> None:
        """Record one sample (negative values count as 0)."""
        if ms < self.lo_ms:
            ms = max(ms, 0.0)
            i = 0
        else:
            i = min(int((math.log10(ms) - self._log_lo) * self._k) + 1, self._n + 1)
        self._counts[i] += 1
        self.count += 1
        self.sum += ms
        if ms > self.max:
            self.max = ms
        if ms < self.min:
            self.min = ms

    def percentile(self, q: float) -> float:
        """The q-quantile (0 < q <= 1, nearest rank) in ms; 0.0 without samples."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        if rank >= self.count:  # the top sample (e.g. p99 of < 100 samples): known exactly
            return self.max
        if rank == 1:
            return self.min
        cum = 0
        i = 0
        for i, c in enumerate(self._counts):  # noqa: B007 - i is the bucket found
            cum += c
            if cum >= rank:
                break
        if i == 0:
            value = self.lo_ms / 2
        elif i == self._n + 1:
            value = self.max
        else:
            value = 10 ** (self._log_lo + (i - 0.5) / self._k)
        return min(max(value, self.min), self.max)

    def snapshot(self) -> dict[str, Any]:
        """`{"p50", "p99", "max"}` in ms (rounded to µs) and `"samples"`."""
        return {
            "p50": round(self.percentile(0.50), 3),
            "p99": round(self.percentile(0.99), 3),
            "max": round(self.max, 3),
            "samples": self.count,
        }


_ASYNCIO_SLOW_MSG = "Executing %s took %.3f seconds"  # asyncio.base_events, debug mode


class _SlowCallbackFilter(logging.Filter):
    """Turns asyncio's slow-callback records into `rpi_logger.loop` warnings (and drops the
    original so each slow callback is reported once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _ASYNCIO_SLOW_MSG or not isinstance(record.args, tuple):
            return True
        try:
            handle, seconds = record.args
            ms = float(seconds) * 1000.0
        except (TypeError, ValueError):
            return True
        monitor = _monitors.get(record.thread or 0)
        if monitor is not None:
            monitor.slow_callbacks += 1
        log.warning(
            "slow callback blocked the event loop for %.1f ms: %s (move blocking work off it)",
            ms,
            handle,
        )
        return False


_filter = _SlowCallbackFilter()
_filter_lock = threading.Lock()
_filter_users = 0
_monitors: dict[int, LoopLagMonitor] = {}  # loop thread id -> running monitor


def _install_filter(monitor: LoopLagMonitor) -> None:
    global _filter_users
    with _filter_lock:
        _monitors[threading.get_ident()] = monitor
        if _filter_users == 0:
            logging.getLogger("asyncio").addFilter(_filter)
        _filter_users += 1


def _remove_filter(monitor: LoopLagMonitor) -> None:
    global _filter_users
    with _filter_lock:
        if _monitors.get(threading.get_ident()) is monitor:
            del _monitors[threading.get_ident()]
        _filter_users -= 1
        if _filter_users == 0:
            logging.getLogger("asyncio").removeFilter(_filter)


class LoopLagMonitor:
    """Samples event-loop lag every `interval_s` while `run()` runs.

    The owner runs it in its own TaskGroup (`tg.create_task(monitor.run())`, or
    `monitor.start_in(tg)`) and stops it by cancelling that task. `snapshot()` covers everything
    since the monitor was created, `trial_snapshot()` the current (or last) trial between
    `begin_trial()` and `end_trial()`. Lags of at least `warn_threshold_ms` are logged as
    warnings on `rpi_logger.loop`, at most one per `warn_every_s` (the rest are counted).
    """

    def __init__(
        self,
        interval_s: float = 0.01,
        *,
        warn_threshold_ms: float = 50.0,
        slow_callback_duration_s: float = 0.05,
        warn_every_s: float = 5.0,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self.interval_s = interval_s
        self.warn_threshold_ms = warn_threshold_ms
        self.slow_callback_duration_s = slow_callback_duration_s
        self.warn_every_s = warn_every_s
        self.slow_callbacks = 0  # slow-callback reports seen (debug mode only)
        self.lag_warnings = 0  # samples at or above warn_threshold_ms
        self._all = LagHistogram()
        self._trial: LagHistogram | None = None
        self._in_trial = False
        self._running = False
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._last_warn = -math.inf
        self._suppressed = 0

    @property
    def running(self) -> bool:
        """True while `run()` is sampling."""
        return self._running

    def start_in(self, tg: asyncio.TaskGroup) -> asyncio.Task[None]:
        """Run the monitor as a task of `tg` (which owns it); cancel the task to stop."""
        return tg.create_task(self.run(), name="loop-lag-monitor")

    async def run(self) -> None:
        """Sample until cancelled. Only one `run()` at a time per monitor."""
        if self._running:
            raise RuntimeError("LoopLagMonitor.run() is already running")
        loop = asyncio.get_running_loop()
        self._running = True
        loop.slow_callback_duration = self.slow_callback_duration_s
        _install_filter(self)
        # A chain of timer callbacks, each scheduling the next before returning: a timer is
        # pending at every moment, so no callback can run unobserved between two samples (a
        # task awaiting sleeps would leave such a gap while its wake-up step waits to run).
        self._due = loop.time() + self.interval_s
        self._handle = loop.call_at(self._due, self._tick, loop)
        try:
            await loop.create_future()  # until cancelled
        finally:
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            _remove_filter(self)
            self._running = False

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        lag_ms = (now - self._due) * 1000.0
        self._due = now + self.interval_s
        self._handle = loop.call_at(self._due, self._tick, loop)
        self._record(lag_ms)

    def _record(self, lag_ms: float) -> None:
        self._all.add(lag_ms)
        if self._in_trial and self._trial is not None:
            self._trial.add(lag_ms)
        if lag_ms >= self.warn_threshold_ms:
            self.lag_warnings += 1
            now = time.monotonic()
            if now - self._last_warn >= self.warn_every_s:
                log.warning(
                    "event loop lagged %.1f ms (threshold %.0f ms; %d more since last warning)",
                    lag_ms,
                    self.warn_threshold_ms,
                    self._suppressed,
                )
                self._last_warn = now
                self._suppressed = 0
            else:
                self._suppressed += 1

    def snapshot(self) -> dict[str, Any]:
        """Lag since creation: `{"p50", "p99", "max"}` in ms and `"samples"`."""
        return self._all.snapshot()

    def begin_trial(self) -> None:
        """Start per-trial statistics (resets the previous trial's)."""
        self._trial = LagHistogram()
        self._in_trial = True

    def end_trial(self) -> dict[str, Any]:
        """Stop per-trial statistics and return them."""
        self._in_trial = False
        return self.trial_snapshot()

    def trial_snapshot(self) -> dict[str, Any]:
        """Lag of the current trial (or the last one after `end_trial`); zeros if none."""
        return (self._trial or LagHistogram()).snapshot()
