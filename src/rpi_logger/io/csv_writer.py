"""CSV rows to disk from an asyncio loop (or any thread) without ever blocking the loop.

`CsvStreamWriter.write_row` only appends the row to an in-memory queue (a list swapped out whole
by the writer thread, guarded by one uncontended lock): it costs well under a microsecond and
never touches the disk. A dedicated writer thread drains the queue in batches, formats rows with
the `csv` module and writes them, flushes to the OS at least every `flush_interval_s` (so another
process, or a reader after `kill -9`, sees every row older than that), fsyncs every
`fsync_interval_s` (power-cut durability) and on `sync()` / close.

Overflow policy (queue holds `max_queue` rows not yet picked up by the writer thread):

* ``overflow="drop"``: a row offered to a full queue is dropped, counted in `rows_dropped`, and
  `write_row` returns False. The first drop is logged; the total is logged at close.
* ``overflow="block"``:
  - `write_row` on a thread **without** a running event loop waits for room, then returns True.
  - `write_row` on a thread **with** a running event loop never waits: the row is dropped and
    counted exactly as with "drop" (logged once), and it returns False. Blocking there would
    stall every task on the loop, which is the one thing this product must never do.
  - `await write_row_async(row)` waits for room without blocking the loop; use it on the loop
    when a row must not be dropped.

After a write error the writer stops: the error is logged once, in one line ("disk full: <path>"
for ENOSPC, see `describe_write_error`); the file is closed and cut back to its last good flush
(a full disk must not leave a torn last row; `rows_written` then counts the rows kept, the lost
ones count in `rows_dropped`); later rows are dropped at once (counted, `write_row` returns
False, a producer waiting for room under "block" is released); and `sync()`, `flush_blocking()`,
`close()` and `aclose()` raise `CsvWriterError` (message from `describe_write_error`) chained to
the original `OSError`, promptly. Rows offered after close began raise `WriterClosedError`.

A producer waiting for room when close begins gets `WriterClosedError` too.

Values are written as the `csv` module writes them: floats with `repr` (shortest exact form, so a
`t_wall_unix` keeps its full precision), None as an empty cell, everything else with `str`.
Lines end with "\n"; a value holding a carriage return is quoted so it stays one field. The file
is UTF-8; a lone surrogate (possible in JSON input) is written as "\\udXXX" text rather than
stopping the writer.

Blocking methods (`start`, `close`, `sync_blocking`) raise RuntimeError on a thread whose event
loop is running; use `astart`, `aclose`, `sync` there (`async with` does).
"""

from __future__ import annotations

import asyncio
import csv
import errno
import io
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TextIO

from .atomic import fsync_dir

__all__ = [
    "CsvStreamWriter",
    "CsvWriterError",
    "WriterClosedError",
    "describe_write_error",
    "is_disk_full",
]

log = logging.getLogger(__name__)

# The C-level "is an event loop running on this thread" check: cheap enough for hot paths.
_running_loop = asyncio.events._get_running_loop

# Rows formatted per csv.writerows call. csv formatting holds the GIL for the whole call (~2 µs a
# row, float repr dominates); chunking bounds how long the writer thread can keep the loop thread
# from running to well under a millisecond.
_CHUNK_ROWS = 256


def describe_write_error(path: str | os.PathLike[str], exc: BaseException) -> str:
    """One line saying why writing `path` failed: "disk full: <path>" for ENOSPC (and a full
    quota), else the error itself (e.g. "writing <path> failed: [Errno 5] Input/output error")."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full: {path}"
    return f"writing {path} failed: {exc}"


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` (or the error it wraps, through `__cause__`) is a full disk or quota."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc, seen = exc.__cause__, seen + 1
    return False


class CsvWriterError(RuntimeError):
    """Writing, flushing or fsyncing the file failed in the writer thread.

    `__cause__` is the original exception (usually an `OSError` such as ENOSPC).
    """


class WriterClosedError(RuntimeError):
    """A row was offered after `close()`/`aclose()` began."""


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():  # the waiting task was cancelled
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)


class _Waiter:
    """Something a caller waits on, resolved exactly once by another thread.

    With a loop, resolution is delivered with `call_soon_threadsafe` to an asyncio future (no
    polling, no executor thread parked on an Event); without one, through a `threading.Event`.
    In the queue it is a sync marker: resolved once every row before it is on disk.
    """

    __slots__ = ("done", "error", "event", "fsync", "future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, fsync: bool = True) -> None:
        self.loop = loop
        self.fsync = fsync  # as a sync marker: fsync too, not only flush to the OS
        self.future: asyncio.Future[None] | None = loop.create_future() if loop else None
        self.event: threading.Event | None = None if loop else threading.Event()
        self.done = False
        self.error: BaseException | None = None

    def resolve(self, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        self.error = error
        if self.event is not None:
            self.event.set()
            return
        assert self.loop is not None and self.future is not None
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, error)
        except RuntimeError:  # loop already closed: nobody is left waiting
            pass


def _format_with_cr(rows: list[Any]) -> str:
    """Format rows of which some hold a carriage return in a value.

    With a "\\n" line terminator the csv module (3.11) leaves a bare "\\r" unquoted, and readers
    then split the row there (a note typed in a Windows browser ends lines with "\\r\\n"). Such
    rows are written with every field quoted, which keeps the "\\r" inside the field.
    """
    out = io.StringIO()
    plain = csv.writer(out, lineterminator="\n")
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        start = out.tell()
        plain.writerow(row)
        if "\r" in out.getvalue()[start:]:
            out.seek(start)
            out.truncate()
            quoted.writerow(row)
    return out.getvalue()


def _refuse_on_loop(method: str, instead: str) -> None:
    if _running_loop() is not None:
        raise RuntimeError(
            f"CsvStreamWriter.{method}() blocks and was called on a thread running an asyncio "
            f"event loop; use `await {instead}()` there"
        )


# Writers not yet closed. At interpreter shutdown (before non-daemon threads are joined) they are
# told to close, so a forgotten close() still gets the data flushed and never hangs the exit.
_live: weakref.WeakSet[CsvStreamWriter] = weakref.WeakSet()
_live_lock = threading.Lock()
_atexit_registered = False


def _close_all_at_exit() -> None:
    with _live_lock:
        writers = list(_live)
    for w in writers:
        w._begin_close()


def _register(writer: CsvStreamWriter) -> None:
    global _atexit_registered
    with _live_lock:
        _live.add(writer)
        if not _atexit_registered:
            register = getattr(threading, "_register_atexit", None)
            if register is not None:
                try:
                    register(_close_all_at_exit)
                    _atexit_registered = True
                except RuntimeError:  # already shutting down
                    pass


class CsvStreamWriter:
    """Append CSV rows to `path` from any thread or the event loop; a writer thread does the I/O.

    Usage::

        async with CsvStreamWriter(path, ["frame_index", "t_mono_ns", "t_wall_unix"]) as w:
            w.write_row((i, t, wall))        # O(1), never blocks the loop
            await w.sync()                   # everything so far is flushed and fsynced

    `append=True` (default) appends to an existing non-empty file whose header matches
    `columns` (a mismatch raises ValueError; a truncated last line is terminated first), and
    writes the header to a new or empty file. `append=False` truncates.

    Counters (read-only, for the manifest and status): `rows_enqueued`, `rows_written` (handed to
    the file; on disk after the next flush), `rows_dropped`, `flushes`, `fsyncs`,
    `max_queue_depth`, `write_errors`; `stats()` returns them as a dict.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        columns: Sequence[str],
        *,
        flush_interval_s: float = 1.0,
        max_queue: int = 10_000,
        overflow: Literal["block", "drop"] = "block",
        name: str | None = None,
        append: bool = True,
        fsync_interval_s: float | None = 1.0,
    ) -> None:
        cols = tuple(columns)
        if isinstance(columns, str) or not cols or not all(isinstance(c, str) for c in cols):
            raise ValueError(f"columns must be a non-empty sequence of names, got {columns!r}")
        if len(set(cols)) != len(cols):
            raise ValueError(f"duplicate column names in {cols!r}")
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s!r}")
        if fsync_interval_s is not None and not fsync_interval_s >= 0:
            raise ValueError(f"fsync_interval_s must be >= 0 or None, got {fsync_interval_s!r}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue!r}")
        if overflow not in ("block", "drop"):
            raise ValueError(f'overflow must be "block" or "drop", got {overflow!r}')

        self.path = Path(path)
        self.columns: tuple[str, ...] = cols
        self.name = name or self.path.stem
        self.flush_interval_s = float(flush_interval_s)
        self.fsync_interval_s = fsync_interval_s
        self.max_queue = int(max_queue)
        self.overflow: Literal["block", "drop"] = overflow
        self.append = append

        self._ncols = len(cols)
        self._colset = frozenset(cols)
        # Producer/consumer state, all guarded by _lock.
        self._lock = threading.Lock()
        self._buf: list[Any] = []  # row tuples and _Waiter sync markers, in order
        self._depth = 0  # rows (not markers) in _buf
        self._markers = 0  # markers in _buf
        # The fast path's single test: max_queue while accepting rows, -1 once closing/failed.
        self._limit = self.max_queue
        self._taken = 0  # rows the writer thread has taken out of _buf (or discarded)
        self._started = False
        self._closing = False
        self._finished = False  # writer thread done (or never started and closed)
        self._error: BaseException | None = None
        self._error_reported = False
        self._sleeping = False  # writer thread idle: producers wake it only when needed
        self._room_waiters: list[_Waiter] = []
        self._done_waiters: list[_Waiter] = []
        self._wake = threading.Event()
        self._room = threading.Event()
        # Normal rates never reach this and are written at the periodic tick in one batch; a
        # burst wakes the thread early so the queue keeps room.
        self._wake_at = max(1, self.max_queue // 4)
        self._warned_drop = False
        self._warned_loop_full = False

        self._thread: threading.Thread | None = None
        self._file: TextIO | None = None
        self._dirty = False  # written since the last flush
        # File size and rows after the last good flush: a failed write is cut back to it, so the
        # file never ends in a torn row (a full disk can take half of one).
        self._good_size = 0
        self._good_rows = 0
        self._unsynced = False  # flushed since the last fsync

        self.rows_written = 0
        self.rows_dropped = 0
        self.flushes = 0
        self.fsyncs = 0
        self.max_queue_depth = 0
        self.write_errors = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open the file (creating folders, writing the header) and start the writer thread.

        Blocking (file open and an fsync of the header): on the event loop use `await astart()`.
        Rows written before start are queued and written once started.
        """
        _refuse_on_loop("start", "astart")
        with self._lock:
            if self._started or self._closing:
                raise RuntimeError(f"{self.name}: writer already started or closed")
            self._started = True
        try:
            self._file = self._open()
            self._good_size = os.fstat(self._file.fileno()).st_size
        except BaseException:
            with self._lock:
                self._started = False
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"csv-writer:{self.name}", daemon=False
        )
        _register(self)
        self._thread.start()

    async def astart(self) -> None:
        """`start()` without blocking the event loop."""
        await asyncio.to_thread(self.start)

    def close(self, timeout: float | None = 30.0) -> None:
        """Drain the queue, flush, fsync, close the file and join the writer thread (blocking).

        Raises `TimeoutError` if the thread has not finished within `timeout` (it keeps
        draining) and `CsvWriterError` if a write failed (once; later calls return quietly).
        On the event loop use `await aclose()`.
        """
        _refuse_on_loop("close", "aclose")
        self._begin_close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"{self.name}: writer thread still draining after {timeout} s")
        self._raise_unreported()

    async def aclose(self) -> None:
        """Like `close()`, but awaits the writer thread's completion signal: never blocks the loop.

        Wrap in `asyncio.timeout()` to bound the wait; the thread keeps draining regardless.
        """
        loop = asyncio.get_running_loop()
        waiter: _Waiter | None = None
        with self._lock:
            if self._started and not self._finished:
                waiter = _Waiter(loop)
                self._done_waiters.append(waiter)
        self._begin_close()
        if waiter is not None:
            assert waiter.future is not None
            try:
                await waiter.future
            except CsvWriterError:
                pass  # raised below, once across close()/aclose()
        self._raise_unreported()

    def __enter__(self) -> CsvStreamWriter:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> CsvStreamWriter:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ producers

    def write_row(self, row: Sequence[Any] | Mapping[str, Any]) -> bool:
        """Queue one row (a sequence in column order, or a mapping by column name; missing
        keys are empty cells). Returns False if the row was dropped (see the overflow policy in
        the module docstring). Never does I/O; never blocks a thread running an event loop.
        """
        # Hot path, kept to one lock round trip and a few attribute reads (see the benchmark).
        item = row if type(row) is tuple and len(row) == self._ncols else self._coerce(row)
        with self._lock:
            depth = self._depth
            if depth < self._limit:
                self._buf.append(item)
                self._depth = depth = depth + 1
                if depth > self.max_queue_depth:
                    self.max_queue_depth = depth
                if depth >= self._wake_at and self._sleeping:
                    self._wake_locked()
                return True
        return self._write_row_slow(item)

    async def write_row_async(self, row: Sequence[Any] | Mapping[str, Any]) -> bool:
        """Queue one row; with overflow="block" wait (without blocking the loop) for room.

        Returns False only if the row was dropped (overflow="drop" and full, or after a write
        error).
        """
        item = self._coerce(row)
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._depth < self._limit:
                    self._append_locked(item)
                    return True
                if self._closing:
                    raise WriterClosedError(f"{self.name}: row offered after close")
                if self._error is not None or self.overflow == "drop":
                    self._drop_locked()
                    return False
                if not self._started:
                    raise RuntimeError(f"{self.name}: queue full and the writer is not started")
                waiter = _Waiter(loop)
                self._room_waiters.append(waiter)
                self._wake_locked()
            assert waiter.future is not None
            await waiter.future

    def _coerce(self, row: Sequence[Any] | Mapping[str, Any]) -> tuple[Any, ...]:
        # Rows are snapshotted as tuples now: callers may reuse their list/dict right away.
        t = type(row)
        if t is tuple:
            item: tuple[Any, ...] = row  # type: ignore[assignment]
        elif t is list:
            item = tuple(row)  # type: ignore[arg-type]
        elif isinstance(row, Mapping):
            extra = row.keys() - self._colset
            if extra:
                raise ValueError(f"{self.name}: unknown columns {sorted(extra)!r}")
            return tuple(map(row.get, self.columns))
        elif isinstance(row, str | bytes):
            raise TypeError(f"{self.name}: a row must be a sequence of values, not {t.__name__}")
        else:
            item = tuple(row)
        if len(item) != self._ncols:
            raise ValueError(
                f"{self.name}: row has {len(item)} values, expected {self._ncols} "
                f"({', '.join(self.columns)})"
            )
        return item

    def _append_locked(self, item: tuple[Any, ...]) -> None:
        self._buf.append(item)
        depth = self._depth = self._depth + 1
        if depth > self.max_queue_depth:
            self.max_queue_depth = depth
        if self._sleeping and depth >= self._wake_at:
            self._wake_locked()

    def _wake_locked(self) -> None:
        self._sleeping = False
        self._wake.set()

    def _drop_locked(self) -> None:
        self.rows_dropped += 1
        if not self._warned_drop and self._error is None:
            self._warned_drop = True
            log.warning(
                "%s: queue full (%d rows), dropping rows; the total is reported at close",
                self.name,
                self.max_queue,
            )

    def _write_row_slow(self, item: tuple[Any, ...]) -> bool:
        while True:
            with self._lock:
                if self._closing:
                    raise WriterClosedError(f"{self.name}: row offered after close")
                if self._error is not None:
                    self._drop_locked()
                    return False
                if self._depth < self.max_queue:  # room appeared meanwhile
                    self._append_locked(item)
                    return True
                if self.overflow == "drop":
                    self._drop_locked()
                    return False
                if _running_loop() is not None:
                    # Block policy, but on the loop: dropping is the lesser evil.
                    self.rows_dropped += 1
                    if not self._warned_loop_full:
                        self._warned_loop_full = True
                        log.warning(
                            "%s: queue full on the event-loop thread; rows dropped instead of "
                            "blocking the loop (use `await write_row_async()` to wait)",
                            self.name,
                        )
                    return False
                if not self._started:
                    raise RuntimeError(f"{self.name}: queue full and the writer is not started")
                # Cleared under the lock; the writer sets it after swapping the queue out, which
                # happens after this point, so the wake-up cannot be lost.
                self._room.clear()
                self._wake_locked()
            self._room.wait(0.5)

    # ------------------------------------------------------------------ sync

    async def sync(self) -> None:
        """Return once every row queued before the call is written, flushed and fsynced.

        Raises `CsvWriterError` if the writer failed, RuntimeError if it was never started.
        The completion is delivered by the writer thread with `call_soon_threadsafe`.
        """
        waiter = self._enqueue_marker(asyncio.get_running_loop())
        if waiter is None:
            return
        assert waiter.future is not None
        await waiter.future

    def sync_blocking(self, timeout: float | None = None) -> None:
        """`sync()` for threads without an event loop; raises TimeoutError after `timeout` s."""
        _refuse_on_loop("sync_blocking", "sync")
        self._wait_marker(timeout, fsync=True)

    def flush_blocking(self, timeout: float | None = None, *, fsync: bool = False) -> None:
        """Return once every row queued before the call (from any thread) is written and flushed
        to the OS, so another process (or a reader after `kill -9`) sees it; with `fsync=True`
        also fsynced. For threads without an event loop (e.g. an encoder thread that must not
        let a video get ahead of its timing rows).

        Raises `CsvWriterError` if the writer failed (at once once it has), TimeoutError after
        `timeout` s.
        """
        _refuse_on_loop("flush_blocking", "sync")
        self._wait_marker(timeout, fsync=fsync)

    def _wait_marker(self, timeout: float | None, fsync: bool) -> None:
        waiter = self._enqueue_marker(None, fsync)
        if waiter is None:
            return
        assert waiter.event is not None
        if not waiter.event.wait(timeout):
            raise TimeoutError(f"{self.name}: rows not flushed after {timeout} s")
        if waiter.error is not None:
            raise waiter.error

    def _enqueue_marker(
        self, loop: asyncio.AbstractEventLoop | None, fsync: bool = True
    ) -> _Waiter | None:
        with self._lock:
            if self._error is not None:
                raise self._wrapped_error()
            if not self._started:
                raise RuntimeError(f"{self.name}: sync() before start()")
            if self._finished:
                return None  # closed cleanly: everything is already fsynced
            waiter = _Waiter(loop, fsync)
            if self._closing:
                # No more rows can arrive; the close drains, flushes and fsyncs everything.
                self._done_waiters.append(waiter)
            else:
                self._buf.append(waiter)
                self._markers += 1
                self._wake_locked()
            return waiter

    # ------------------------------------------------------------------ status

    @property
    def rows_enqueued(self) -> int:
        """Rows accepted by `write_row`/`write_row_async` so far."""
        return self._taken + self._depth

    @property
    def queue_depth(self) -> int:
        """Rows queued and not yet picked up by the writer thread."""
        return self._depth

    @property
    def error(self) -> BaseException | None:
        """The write error that stopped the writer, if any."""
        return self._error

    @property
    def closed(self) -> bool:
        """True once close began."""
        return self._closing

    def stats(self) -> dict[str, Any]:
        """Counters for the manifest and status displays."""
        return {
            "name": self.name,
            "path": str(self.path),
            "rows_enqueued": self.rows_enqueued,
            "rows_written": self.rows_written,
            "rows_dropped": self.rows_dropped,
            "flushes": self.flushes,
            "fsyncs": self.fsyncs,
            "max_queue_depth": self.max_queue_depth,
            "queue_depth": self._depth,
            "write_errors": self.write_errors,
            "error": None if self._error is None else repr(self._error),
        }

    def __repr__(self) -> str:
        return f"<CsvStreamWriter {self.name} {str(self.path)!r} enqueued={self.rows_enqueued}>"

    # ------------------------------------------------------------------ internals

    def _wrapped_error(self) -> CsvWriterError:
        # A fresh exception per raise: re-raising one object from several places would keep
        # growing its traceback.
        assert self._error is not None
        err = CsvWriterError(describe_write_error(self.path, self._error))
        err.__cause__ = self._error
        return err

    def _raise_unreported(self) -> None:
        with self._lock:
            if self._error is None or self._error_reported:
                return
            self._error_reported = True
        raise self._wrapped_error()

    def _begin_close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._limit = -1
            if self._started:
                self._wake_locked()
                return
            # Never started: nothing will write the queued rows.
            self._finished = True
            discarded, self._depth = self._depth, 0
            self._taken += discarded
            self.rows_dropped += discarded
            self._buf = []
            self._markers = 0
            waiters, self._room_waiters = self._room_waiters, []
        for w in waiters:
            w.resolve()
        if discarded:
            log.warning("%s: closed before start; %d queued rows discarded", self.name, discarded)

    def _open(self) -> TextIO:
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        nonempty = self.append and not created and path.stat().st_size > 0
        terminate_line = False
        if nonempty:
            with open(path, encoding="utf-8", newline="") as f:
                header = next(csv.reader(f), None)
            if header != list(self.columns):
                raise ValueError(
                    f"{path}: existing header {header!r} does not match columns "
                    f"{list(self.columns)!r}; refusing to append"
                )
            with open(path, "rb") as fb:
                fb.seek(-1, os.SEEK_END)
                # A crash can leave a partial last line; end it so new rows start cleanly.
                terminate_line = fb.read(1) != b"\n"
        # backslashreplace: a lone surrogate (valid in JSON input, e.g. a note) must not stop
        # the writer with an encoding error; it is kept visibly as "\\udXXX" text instead.
        f = open(  # closed by the writer thread
            path,
            "a" if self.append else "w",
            encoding="utf-8",
            errors="backslashreplace",
            newline="",
        )
        try:
            if terminate_line:
                f.write("\n")
            if not nonempty:
                csv.writer(f, lineterminator="\n").writerow(self.columns)
            f.flush()
            os.fsync(f.fileno())
            if created:
                fsync_dir(path.parent)  # the new directory entry must survive a power cut too
        except BaseException:
            f.close()
            raise
        return f

    def _run(self) -> None:
        """Writer thread: drain, format, write; flush on the periodic tick; resolve markers."""
        sio = io.StringIO()
        writer = csv.writer(sio, lineterminator="\n")
        interval = self.flush_interval_s
        now = time.monotonic()
        deadline = now + interval
        last_fsync = now
        batch: list[Any] = []
        main = threading.main_thread()
        try:
            while True:
                with self._lock:
                    batch, self._buf = self._buf, []
                    self._taken += self._depth
                    self._depth = 0
                    nmarkers, self._markers = self._markers, 0
                    room_waiters, self._room_waiters = self._room_waiters, []
                    if not batch and self._closing:
                        break
                    # Idle: from now on producers wake us only for a burst, a marker or close;
                    # ordinary rows wait for the periodic tick and are written as one batch.
                    idle = self._sleeping = not batch
                    if idle:
                        self._wake.clear()
                self._room.set()
                for w in room_waiters:
                    w.resolve()
                if batch:
                    self._write_batch(batch, nmarkers, sio, writer)
                    batch = []
                now = time.monotonic()
                if now >= deadline:
                    fsync = self.fsync_interval_s is not None and (
                        now - last_fsync >= self.fsync_interval_s
                    )
                    if self._flush(fsync):
                        last_fsync = now
                    deadline = now + interval
                    if not main.is_alive():  # interpreter exiting without close(): finish up
                        self._begin_close()
                    continue
                if idle:
                    self._wake.wait(deadline - now)
            self._flush(True)
            assert self._file is not None
            self._file.close()
        except BaseException as exc:  # the thread must never die silently
            self._fail(exc, batch)
        finally:
            self._finish()

    def _write_batch(self, batch: list[Any], nmarkers: int, sio: io.StringIO, writer: Any) -> None:
        if not nmarkers:
            self._write_rows(batch, sio, writer)
            return
        start = 0
        for i, item in enumerate(batch):
            if type(item) is _Waiter:
                if i > start:
                    self._write_rows(batch[start:i], sio, writer)
                start = i + 1
                self._flush(item.fsync)
                item.resolve()
        if start < len(batch):
            self._write_rows(batch[start:], sio, writer)

    def _write_rows(self, rows: list[Any], sio: io.StringIO, writer: Any) -> None:
        f = self._file
        assert f is not None
        for i in range(0, len(rows), _CHUNK_ROWS):
            chunk = rows[i : i + _CHUNK_ROWS] if len(rows) > _CHUNK_ROWS else rows
            sio.seek(0)
            sio.truncate()
            writer.writerows(chunk)
            text = sio.getvalue()
            if "\r" in text:  # rare: one C-level scan keeps the common case free
                text = _format_with_cr(chunk)
            f.write(text)  # one write call per chunk of rows
            self.rows_written += len(chunk)
            self._dirty = True

    def _flush(self, fsync: bool) -> bool:
        """Flush pending writes to the OS; fsync too if asked and needed. True if fsynced."""
        f = self._file
        assert f is not None
        if self._dirty:
            f.flush()
            self._dirty = False
            self._unsynced = True
            self.flushes += 1
            self._good_size = os.fstat(f.fileno()).st_size
            self._good_rows = self.rows_written
        if fsync and self._unsynced:
            os.fsync(f.fileno())
            self._unsynced = False
            self.fsyncs += 1
            return True
        return False

    def _fail(self, exc: BaseException, batch: list[Any]) -> None:
        with self._lock:
            if self._error is None:
                self._error = exc
            self._limit = -1
            self.write_errors += 1
            pending, self._buf = self._buf, []
            self._taken += self._depth
            self._depth = 0
            self._markers = 0
            # Rows not on the OS at the last good flush are lost (the file is cut back to it).
            self.rows_written = self._good_rows
            self.rows_dropped += max(0, self._taken - self._good_rows)
        if isinstance(exc, OSError):  # expected (full disk, I/O error): one line, no traceback
            log.error("%s", describe_write_error(self.path, exc))
        else:
            log.error(
                "%s: writing %s failed; the writer stopped and later rows are dropped: %r",
                self.name,
                self.path,
                exc,
                exc_info=exc,
            )
        for item in (*batch, *pending):
            if type(item) is _Waiter:
                item.resolve(self._wrapped_error())
        if self._file is not None:
            try:
                self._file.close()
            except OSError:  # the same failure again while flushing the buffer
                pass
            try:  # cut a torn last row; needs no free space
                if os.stat(self.path).st_size > self._good_size:
                    os.truncate(self.path, self._good_size)
            except OSError:
                pass

    def _finish(self) -> None:
        with self._lock:
            self._finished = True
            self._limit = -1
            done, self._done_waiters = self._done_waiters, []
            room_waiters, self._room_waiters = self._room_waiters, []
        self._room.set()
        for w in room_waiters:
            w.resolve()
        for w in done:
            w.resolve(None if self._error is None else self._wrapped_error())
        if self.rows_dropped and self._error is None:  # after an error: said once already
            log.warning("%s: %d rows dropped in total", self.name, self.rows_dropped)
        log.debug("%s: closed after %d rows", self.name, self.rows_written)
        with _live_lock:
            _live.discard(self)
