"""One stream of samples recorded for one trial: what every module would otherwise copy.

A module hands a `TrialStream` the trial's window, a sink (a CSV, a video, ...) and the file's
manifest record; the stream owns the rest:

- **The window.** `offer(sample)` (on the loop, O(1)) keeps exactly the samples with
  ``start <= t_mono_ns < stop`` (design.md: Modules and trials), and the writer thread discards
  samples still queued
  when the stop turns out to lie before them (the stop can become known after they were offered):
  nothing captured at or after the stop reaches the file.
- **The writer.** A `SinkWriter` runs the sink on its worker thread (or inline, in the process's
  blocking mode); a full queue drops the sample rather than wait.
- **Drops by cause**, for the manifest and the status: ``device_sequence_gap`` (sequence numbers
  the device skipped, counted once, by `SequenceGapCounter`), ``capture_overflow`` (the source's
  hand-off to the loop was full: `lost`), ``queue_overflow`` (the writer's queue was full),
  ``timestamp`` (a sample not later than the one before) and ``encoder_error`` (refused or
  discarded after the sink failed).
- **Gaps**: `gap(start, end, missing, reason)` records a stretch the device did not deliver (a
  disconnect, a stalled stream), clipped to the window, in the record's ``gaps`` (listed by
  `verify`); the file goes on across it.
- **The record.** `open` announces it (so a crash lists the file as interrupted); `close` fills
  in ``frames`` (samples written), ``dropped`` and ``dropped_by_cause``, and on a failure
  ``"status": "interrupted"`` with the one-line ``"error"`` (reported once by the writer).

A sink with a loop side (`LoopSide`: ffmpeg's process) has it started before the writer opens
the sink and ended after the writer closed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from rpi_logger.framework.base import FileRecord
from rpi_logger.framework.gaps import SequenceGapCounter
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.io.bridge import Overflow
from rpi_logger.io.sinks.base import Sink, SinkError, SinkProxy, describe_write_error
from rpi_logger.io.sinks.writer import SinkWriter, WriterStats

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The `dropped_by_cause` keys of a file record, in manifest order.
DROP_CAUSES = (
    "device_sequence_gap",
    "capture_overflow",
    "queue_overflow",
    "timestamp",
    "encoder_error",
)
#: How long `close` waits for the writer to finish the file before declaring it interrupted.
CLOSE_TIMEOUT_S = 30.0


@runtime_checkable
class LoopSide(Protocol):
    """A sink that also needs the event loop: started before it is opened, ended after it is
    closed (`astop` raises `SinkError` with the reason when the loop side failed)."""

    async def astart(self) -> None: ...

    async def astop(self) -> None: ...


def _t_mono_ns(sample: Any) -> int:
    return sample.t_mono_ns


class _InWindow(SinkProxy[T]):
    """The sink as the trial sees it: samples queued past the stop never reach it."""

    def __init__(self, inner: Sink[T], stream: TrialStream[T]) -> None:
        super().__init__(inner)
        self._stream = stream

    def write(self, batch: Sequence[T]) -> None:
        stream = self._stream
        stop = stream.window.stop_ns
        clip = stream.clip
        if stop is not None and batch and clip is not None:
            start = stream.window.start_ns
            batch = [c for s in batch if (c := clip(s, start, stop)) is not None]
        elif stop is not None and batch and stream.time_of(batch[-1]) >= stop:
            batch = [s for s in batch if stream.time_of(s) < stop]
        if batch:
            self.inner.write(batch)
            stream.written += len(batch)


class TrialStream(Generic[T]):
    """One sink's samples during one trial. See the module docstring.

    ``time_of(sample)`` is its host time (default ``sample.t_mono_ns``); ``sequence_of``, when
    given, its device sequence number (for gap counting); ``clip(sample, start_ns, stop_ns)``,
    when given, cuts a sample that spans time (an audio block) to the window: it returns the
    part of the sample inside ``[start, stop)`` (stop None: open), or None when nothing is
    inside, and ``time_of`` then gives the time of a part's first instant (a block straddling
    the start or the stop is cut at the exact sample); other keywords go to its `SinkWriter`
    (``flush_interval_s``, ``fsync_interval_s``, ``nice``, ...). `offer`, `lost`, `status` run
    on the loop; `open` and `close` are awaited there.
    """

    def __init__(
        self,
        window: TrialWindow,
        sink: Sink[T],
        record: FileRecord,
        *,
        name: str,
        max_items: int,
        overflow: Overflow = "drop",
        time_of: Callable[[T], int] = _t_mono_ns,
        sequence_of: Callable[[T], int] | None = None,
        clip: Callable[[T, int, int | None], T | None] | None = None,
        **writer_options: Any,
    ) -> None:
        self.window = window
        self.sink = sink
        self.record = record
        self.name = name
        self.time_of = time_of
        self.sequence_of = sequence_of
        self.clip = clip
        self.written = 0  # samples handed to the sink (writer thread)
        # The causes the stream itself sees; the writer counts queue overflow and errors.
        self._dropped = {"device_sequence_gap": 0, "capture_overflow": 0, "timestamp": 0}
        self._gaps = SequenceGapCounter()
        self.gaps: list[dict[str, Any]] = []
        self._last_t: int | None = None
        self._writer: SinkWriter[T] = SinkWriter(
            _InWindow(sink, self),
            max_queue=max_items,
            overflow=overflow,
            name=name,
            **writer_options,
        )

    async def open(
        self, announce: Callable[[FileRecord], Awaitable[None]] | None = None
    ) -> FileRecord:
        """Start the sink's loop side and its writer (which opens it), then announce the
        record. Raises `SinkError` (one line) when the file cannot be created."""
        loop_side = self.sink if isinstance(self.sink, LoopSide) else None
        if loop_side is not None:
            await loop_side.astart()
        try:
            await self._writer.astart()
        except Exception as exc:
            if loop_side is not None:
                with contextlib.suppress(SinkError):  # the open failure is the one to report
                    await loop_side.astop()
            if isinstance(exc, SinkError):
                raise
            raise SinkError(describe_write_error(self.sink.path, exc)) from exc
        if announce is not None:
            await announce(self.record)
        return self.record

    # -- loop side, per sample -------------------------------------------------------------------
    def offer(self, sample: T) -> bool:
        """Queue `sample` if it belongs to the trial (O(1), never waits). False when it does not
        belong or was dropped (counted by cause)."""
        if self.clip is not None:
            part = self.clip(sample, self.window.start_ns, self.window.stop_ns)
            if part is None:
                return False
            sample = part
        t = self.time_of(sample)
        if not self.window.accepts(t):
            return False
        if self._last_t is not None and t <= self._last_t:
            self._dropped["timestamp"] += 1
            return False
        self._last_t = t
        if self.sequence_of is not None:
            self._dropped["device_sequence_gap"] += self._gaps.update(self.sequence_of(sample))
        return self._writer.submit(sample)  # a refusal is counted by the writer, by cause

    def lost(self, t_mono_ns: int, sequence: int | None = None) -> None:
        """A sample the source lost in its hand-off to the loop (capture overflow): counted if it
        belongs to the trial, and its sequence number is no device gap."""
        if not self.window.accepts(t_mono_ns):
            return
        self._dropped["capture_overflow"] += 1
        if sequence is not None:
            self._dropped["device_sequence_gap"] += self._gaps.update(sequence)

    def gap(
        self, start_ns: int, end_ns: int, missing: int | None = None, reason: str = "no data"
    ) -> None:
        """The device delivered nothing from `start_ns` to `end_ns` (host clock): recorded in
        the file's manifest record, clipped to the window (ignored when outside it)."""
        window = self.window
        start_ns = max(start_ns, window.start_ns)
        if window.stop_ns is not None:
            end_ns = min(end_ns, window.stop_ns)
        if end_ns <= start_ns:
            return
        self.gaps.append(
            {
                "start_mono_ns": start_ns,
                "end_mono_ns": end_ns,
                "samples_missing": missing,
                "reason": reason,
            }
        )

    # -- figures -----------------------------------------------------------------------------
    def dropped_by_cause(self, stats: WriterStats | None = None) -> dict[str, int]:
        """Drops so far, by cause (the writer's refusals and discards included)."""
        stats = stats or self._writer.stats()
        counts = {
            **self._dropped,
            "queue_overflow": stats.dropped_overflow,
            "encoder_error": stats.dropped_error,
        }
        return {cause: counts[cause] for cause in DROP_CAUSES}

    def status(self) -> dict[str, Any]:
        """Live figures for status events."""
        stats = self._writer.stats()
        causes = self.dropped_by_cause(stats)
        return {
            "frames": self.written,
            "dropped": sum(causes.values()),
            "dropped_queue_overflow": causes["queue_overflow"],
            "dropped_capture_overflow": causes["capture_overflow"],
            "dropped_device_gap": causes["device_sequence_gap"],
            "queue_depth": stats.queued,
            "gaps": len(self.gaps),
            "recording_error": stats.error,
        }

    # -- end ---------------------------------------------------------------------------------
    async def close(self) -> FileRecord:
        """Finish the file (off the loop) and return its completed record. Never raises for a
        failed file: the record then says ``"status": "interrupted"`` and why."""
        errors: list[str] = []
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._writer.aclose()
        except SinkError as exc:
            errors.append(str(exc))
        except TimeoutError:
            errors.append(f"{self.sink.path} not finished after {CLOSE_TIMEOUT_S:g} s")
            log.error("%s: %s", self.name, errors[-1])
        if isinstance(self.sink, LoopSide):
            try:
                await self.sink.astop()
            except SinkError as exc:
                errors.append(str(exc))
        causes = self.dropped_by_cause()
        record = self.record
        record.frames = self.written
        record.dropped = sum(causes.values())
        record.extra["dropped_by_cause"] = causes
        if self.gaps:
            record.extra["gaps"] = list(self.gaps)
        if errors:
            record.extra["status"] = "interrupted"
            record.extra["error"] = "; ".join(errors)
        return record
