"""The encoder interface: frames in from the event loop, a video file out from a worker thread.

Life cycle, all from the event loop thread::

    enc = PyAVEncoder(on_written=callback)
    await enc.open(path, width, height, fps_hint, trial_start_mono_ns)
    enc.submit(frame)        # O(1), never blocks; False when the frame was dropped
    ...
    stats = await enc.close()  # flush and finalise off the loop; raises EncoderError on failure

Presentation times follow SPEC §5: a frame's PTS is ``t_mono_ns - trial_start_mono_ns`` in
microseconds (the streams' time base is 1/1_000_000), so the first frame keeps its offset from the
trial start and variable intervals stay variable.

Drops are counted by cause:

- ``dropped_queue_overflow``: the bounded queue to the encoder thread was full at `submit`.
- ``dropped_timestamp``: the frame's PTS was not after the previous one (or before the trial
  start); muxers reject such packets, so the frame is left out.
- ``dropped_error``: the encoder failed (disk full, ffmpeg died); later frames are discarded and
  `close()` raises `EncoderError` with the reason.

For the timing CSV, the encoder thread calls ``on_written(WrittenFrame)`` once per frame, in file
order, just before the frame's packet goes to the muxer (or the pipe); ``WrittenFrame.frame_index``
is the frame's index in the video. The callback runs **on the encoder thread**: keep it short and
thread-safe (e.g. hand the row to a CSV writer's queue). An exception in it is logged, not fatal.

**Timing rows never lag the video.** With ``flush_rows`` given, the encoder thread calls
``flush_rows(durable)`` before any byte reaches the video file (PyAV) or ffmpeg's pipe whenever
frames were passed to ``on_written`` since the last call, and ``flush_rows(True)`` before it
fsyncs the video. The callback must return only once every row handed over so far is flushed to
the OS (and fsynced when ``durable``). So at any instant, even after ``kill -9``, the timing file
on disk holds a row for every frame in the video on disk (it may hold a few more: rows ⊇ frames,
row *i* describing frame *i*); after an fsync of the video the same holds for a power cut. If
``flush_rows`` raises, nothing more is written to the video and the encoder fails with the reason.

`set_stop(stop_mono_ns)` makes the thread discard frames captured at or after the trial's stop
that are still queued (the stop instant can become known after they were submitted); they are
counted in ``discarded_after_stop``, not as drops.

Failures are reported once, in one log line ("disk full: <path>" for ENOSPC); `close()` then
returns promptly with `EncoderError` (message from `describe_write_error`).
"""

from __future__ import annotations

import abc
import asyncio
import io
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpi_logger.io.csv_writer import describe_write_error, is_disk_full
from rpi_logger.modules.cameras.frames import Frame

log = logging.getLogger(__name__)

#: Columns of the video timing CSV this encoder can fill (SPEC §5 names first, then extras).
TIMING_COLUMNS: tuple[str, ...] = (
    "frame_index",
    "t_mono_ns",
    "t_wall_unix",
    "t_device_ns",
    "sequence",
    "pts_us",
    "queue_delay_ns",
    "encode_ns",
)

TIME_BASE_US = 1_000_000  # stream time base 1/1_000_000 s


class EncoderError(RuntimeError):
    """The encoder could not start or failed while writing; the message says why."""


@dataclass(frozen=True, slots=True)
class WrittenFrame:
    """One frame as it went into the file (passed to ``on_written`` on the encoder thread)."""

    frame_index: int  # 0-based index of the frame in the video file
    frame: Frame
    pts_us: int  # presentation time in the file, µs from the trial start
    queue_delay_ns: int  # submit() -> the encoder thread took the frame
    encode_ns: int  # the encoder thread took the frame -> its packet went to the muxer/pipe

    def timing_values(self) -> tuple[Any, ...]:
        """The frame's timing CSV row as a tuple in `TIMING_COLUMNS` order (the fast form for
        `CsvStreamWriter.write_row`)."""
        f = self.frame
        return (self.frame_index, f.t_mono_ns, f"{f.t_wall_unix:.6f}",
                "" if f.t_device_ns is None else f.t_device_ns, f.sequence, self.pts_us,
                self.queue_delay_ns, self.encode_ns)

    def timing_row(self) -> dict[str, Any]:
        """The frame's row of the timing CSV, keyed by `TIMING_COLUMNS`."""
        f = self.frame
        return {
            "frame_index": self.frame_index,
            "t_mono_ns": f.t_mono_ns,
            "t_wall_unix": f"{f.t_wall_unix:.6f}",
            "t_device_ns": "" if f.t_device_ns is None else f.t_device_ns,
            "sequence": f.sequence,
            "pts_us": self.pts_us,
            "queue_delay_ns": self.queue_delay_ns,
            "encode_ns": self.encode_ns,
        }


OnWritten = Callable[[WrittenFrame], None]
#: ``flush_rows(durable)``: see the module docstring.
FlushRows = Callable[[bool], None]


@dataclass(frozen=True, slots=True)
class EncoderStats:
    """A snapshot of an encoder's counters."""

    frames_submitted: int
    frames_written: int
    dropped_queue_overflow: int
    dropped_timestamp: int
    dropped_error: int
    queue_depth: int
    queue_depth_max: int
    queue_delay_ns_max: int
    encode_ns_mean: float
    encode_ns_max: int
    discarded_after_stop: int = 0  # queued frames captured at/after the stop (not drops)

    @property
    def dropped(self) -> int:
        """All frames submitted but not written."""
        return self.dropped_queue_overflow + self.dropped_timestamp + self.dropped_error


_STOP = object()


def _reason(exc: BaseException) -> str:
    """A failure's one-line reason (a CsvWriterError already reads "disk full: <path>")."""
    return str(exc) or type(exc).__name__


def pts_us_of(t_mono_ns: int, trial_start_mono_ns: int) -> int:
    """PTS in µs of a frame captured at ``t_mono_ns`` (rounded to the nearest µs)."""
    return (t_mono_ns - trial_start_mono_ns + 500) // 1000


def keyframe_interval_us(fps_hint: float, max_interval_s: float = 1.0) -> int:
    """Force a keyframe once this long has passed since the last one: half a nominal frame short
    of ``max_interval_s``, so keyframe-to-keyframe spans stay within it."""
    period_us = 1e6 / fps_hint if fps_hint > 0 else 0.0
    return max(1, int(max_interval_s * 1e6 - period_us / 2))


class GatedFile(io.FileIO):
    """An unbuffered binary file (a path, or a file descriptor such as a pipe's write end) whose
    every write first calls ``before_write()``, which may raise to refuse the write."""

    def __init__(self, target: str | os.PathLike[str] | int, before_write: Callable[[], None]
                 ) -> None:
        super().__init__(target, "wb")
        self._before_write = before_write

    def write(self, data: Any) -> int:  # type: ignore[override]
        self._before_write()
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):  # a pipe may take a large buffer in parts
            n = super().write(view[done:])
            if n is None:  # only a non-blocking descriptor does this
                raise BlockingIOError(f"{self.name}: write would block")
            done += n
        return done


class Encoder(abc.ABC):
    """Common machinery: bounded hand-off queue, encoder thread, PTS rule, counters.

    Subclasses implement the thread-side `_thread_open`, `_thread_encode`, `_thread_finish`,
    and may extend the loop-side `_async_start` / `_async_stop` (e.g. to run a subprocess).
    """

    name = "abstract"

    def __init__(
        self,
        *,
        queue_size: int | None = None,
        on_written: OnWritten | None = None,
        flush_rows: FlushRows | None = None,
    ) -> None:
        self._queue_size_arg = queue_size
        self.queue_size = queue_size or 0
        self.on_written = on_written
        self.flush_rows = flush_rows
        self._rows_unflushed = False  # on_written called since the last flush_rows
        self._rows_error: BaseException | None = None  # flush_rows failed: the video stops
        self._stop_ns: int | None = None
        self._after_stop = 0
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._state = "new"  # new -> open -> closing -> closed
        self._error: BaseException | None = None
        self.path: Path | None = None
        self.width = 0
        self.height = 0
        self.fps_hint = 0.0
        self.trial_start_mono_ns = 0
        self._last_pts_us: int | None = None
        # Counters. Each is written by one thread only (submit side or encoder side).
        self._submitted = 0
        self._overflow = 0
        self._bad_ts = 0
        self._err_drops = 0
        self._written = 0
        self._depth_max = 0
        self._qdelay_max = 0
        self._enc_total = 0
        self._enc_max = 0

    # -- loop side ---------------------------------------------------------------------------
    async def open(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps_hint: float,
        trial_start_mono_ns: int,
    ) -> None:
        """Create the file and start the encoder thread; raises `EncoderError` on failure."""
        if self._state != "new":
            raise EncoderError(f"{self.name} encoder: open() called twice")
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise EncoderError(f"{self.name} encoder: size must be positive and even, got "
                               f"{width}x{height}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.fps_hint = float(fps_hint) if fps_hint and fps_hint > 0 else 30.0
        self.trial_start_mono_ns = int(trial_start_mono_ns)
        if not self._queue_size_arg:
            # About one second of frames: rides out a stall without holding much memory.
            self.queue_size = min(120, max(8, math.ceil(self.fps_hint)))
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        self._done = self._loop.create_future()
        await self._async_start()
        self._thread = threading.Thread(
            target=self._thread_main, name=f"encoder-{self.name}-{self.path.name}", daemon=True
        )
        self._thread.start()
        try:
            await asyncio.shield(self._ready)
        except BaseException:
            # Thread failed to open the file: wait for it to wind down, then clean up.
            await asyncio.shield(self._done)
            await self._async_stop(failed=True)
            self._state = "closed"
            raise
        self._state = "open"

    def set_stop(self, stop_mono_ns: int | None) -> None:
        """The trial's stop instant (loop thread): from now on, frames captured at or after it
        are refused by `submit` and discarded by the thread if already queued."""
        self._stop_ns = stop_mono_ns

    def submit(self, frame: Frame) -> bool:
        """Queue a frame for encoding (loop thread, O(1), never blocks).

        Returns False when the frame was dropped: queue full (``dropped_queue_overflow``),
        timestamp not after the previous frame's (``dropped_timestamp``) or encoder failed /
        closed (``dropped_error``).
        """
        self._submitted += 1
        if self._state != "open" or self._error is not None:
            self._err_drops += 1
            return False
        stop = self._stop_ns
        if stop is not None and frame.t_mono_ns >= stop:
            self._after_stop += 1
            return False
        depth = self._q.qsize()
        if depth >= self.queue_size:
            self._overflow += 1
            return False
        pts = pts_us_of(frame.t_mono_ns, self.trial_start_mono_ns)
        if pts < 0 or (self._last_pts_us is not None and pts <= self._last_pts_us):
            self._bad_ts += 1
            return False
        self._last_pts_us = pts
        self._q.put((frame, pts, time.monotonic_ns()))
        if depth + 1 > self._depth_max:
            self._depth_max = depth + 1
        return True

    async def close(self) -> EncoderStats:
        """Encode what is queued, finalise the file and stop the thread, all off the loop.

        Raises `EncoderError` if encoding failed at any point (the file keeps what was written).
        Safe to call twice; cancelling the caller does not interrupt the finalisation.
        """
        if self._state in ("new", "closed"):
            return self.stats
        if self._state == "open":
            self._state = "closing"
            self._q.put(_STOP)
        await self._wait_thread()
        await self._async_stop(failed=self._error is not None)
        self._state = "closed"
        if self._error is not None:
            raise EncoderError(self.error_text) from self._error
        return self.stats

    @property
    def error_text(self) -> str | None:
        """The failure in one line ("disk full: <path>" for ENOSPC), or None."""
        err = self._error
        if err is None:
            return None
        if isinstance(err, EncoderError):
            return str(err)
        return describe_write_error(self.path or "?", err)

    @property
    def stats(self) -> EncoderStats:
        """Current counters (cheap; call from the loop whenever)."""
        written = self._written
        return EncoderStats(
            frames_submitted=self._submitted,
            frames_written=written,
            dropped_queue_overflow=self._overflow,
            dropped_timestamp=self._bad_ts,
            dropped_error=self._err_drops,
            queue_depth=self._q.qsize(),
            queue_depth_max=self._depth_max,
            queue_delay_ns_max=self._qdelay_max,
            encode_ns_mean=self._enc_total / written if written else 0.0,
            encode_ns_max=self._enc_max,
            discarded_after_stop=self._after_stop,
        )

    @property
    def error(self) -> BaseException | None:
        """The failure that stopped the encoder, if any."""
        return self._error

    @property
    def is_open(self) -> bool:
        """True between `open()` and `close()`."""
        return self._state == "open"

    async def _wait_thread(self) -> None:
        """Wait for the encoder thread to finish (after the stop marker was queued)."""
        assert self._done is not None
        await asyncio.shield(self._done)

    async def _async_start(self) -> None:
        """Loop-side set-up before the thread starts (e.g. spawn a process)."""
        return None

    async def _async_stop(self, failed: bool) -> None:
        """Loop-side tear-down after the thread finished (e.g. reap the process)."""
        return None

    # -- thread side -------------------------------------------------------------------------
    def _signal(self, fut: asyncio.Future[None] | None, exc: BaseException | None = None) -> None:
        loop = self._loop
        if fut is None or loop is None:
            return

        def settle() -> None:
            if fut.done():
                return
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:  # loop closed: nobody is waiting any more
            pass

    def _thread_main(self) -> None:
        try:
            self._thread_open()
        except Exception as exc:  # report to open(); the file could not be created
            log.debug("%s encoder: open failed", self.name, exc_info=True)
            self._error = exc
            if is_disk_full(exc):
                why = describe_write_error(self.path or "?", exc)
            else:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                why = f"{self.name} encoder cannot open {self.path}: {reason}"
            self._signal(self._ready, EncoderError(why))
            self._safe_finish()
            self._signal(self._done)
            return
        self._signal(self._ready)
        while True:
            item = self._q.get()
            if item is _STOP:
                break
            frame, pts_us, t_submit = item
            if self._error is not None:
                self._err_drops += 1
                continue
            stop = self._stop_ns
            if stop is not None and frame.t_mono_ns >= stop:
                self._after_stop += 1
                continue
            t_take = time.monotonic_ns()
            qdelay = t_take - t_submit
            if qdelay > self._qdelay_max:
                self._qdelay_max = qdelay
            try:
                self._thread_encode(frame, pts_us, qdelay, t_take)
            except Exception as exc:  # keep draining so submit() never backs up
                self._fail(exc)
                self._err_drops += 1
        self._safe_finish()
        self._signal(self._done)

    def _fail(self, exc: BaseException) -> None:
        """Record the first failure and log it once, in one line (thread side)."""
        if self._rows_error is not None and exc is not self._rows_error:
            exc = self._rows_error  # the muxer's error is the echo of the rows' failure
        if self._error is not None:
            return
        self._error = exc
        log.error("%s", self.error_text)

    def _safe_finish(self) -> None:
        try:
            self._thread_finish()
        except Exception as exc:
            self._fail(exc)

    def _flush_rows(self, durable: bool = False) -> None:
        """Thread side: make the rows of every frame emitted so far reach the OS (fsynced when
        ``durable``) before more bytes reach the video. Raises if that cannot be done."""
        if self._rows_error is not None:
            raise self._rows_error
        cb = self.flush_rows
        if cb is None or not (self._rows_unflushed or durable):
            return
        try:
            cb(durable)
        except Exception as exc:
            err = EncoderError(f"timing rows not saved, video stopped: {_reason(exc)}")
            err.__cause__ = exc
            self._rows_error = err
            raise err from exc
        self._rows_unflushed = False

    def _emit(self, frame: Frame, pts_us: int, qdelay_ns: int, t_take_ns: int) -> None:
        """Record one frame as going into the file (thread side) and call ``on_written``;
        called before the frame's bytes are handed to the muxer or pipe."""
        enc_ns = time.monotonic_ns() - t_take_ns
        self._enc_total += enc_ns
        if enc_ns > self._enc_max:
            self._enc_max = enc_ns
        index = self._written
        self._written += 1
        cb = self.on_written
        if cb is not None:
            self._rows_unflushed = True
            try:
                cb(WrittenFrame(index, frame, pts_us, qdelay_ns, enc_ns))
            except Exception:
                log.exception("%s encoder: on_written callback failed", self.name)

    @abc.abstractmethod
    def _thread_open(self) -> None:
        """Create the output (encoder thread)."""

    @abc.abstractmethod
    def _thread_encode(self, frame: Frame, pts_us: int, qdelay_ns: int, t_take_ns: int) -> None:
        """Encode one frame; call `_emit` for each frame that reaches the file, in order."""

    @abc.abstractmethod
    def _thread_finish(self) -> None:
        """Flush and close the output (encoder thread); must tolerate a failed open."""
