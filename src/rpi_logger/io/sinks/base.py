"""The sink contract: where a stream's items end up (a CSV, a fragmented MP4, a pipe, a WAV).

A sink is synchronous and knows nothing about threads or loops: it is used by one thread at a
time, and `SinkWriter` (writer.py) decides which (a worker thread, or the caller's own in
blocking mode). Codec and destination vary apart, as picamera2's outputs do: an encoder makes
packets, a sink stores them.

Durability has two steps a sink keeps distinct: `flush` hands what was written to the OS, so
another process, or a reader after `kill -9`, sees it; `sync` also makes it survive a power cut
(fsync). `close` finalizes (e.g. an MP4's last fragment), syncs and releases; after a failure
`abort` releases instead, keeping only what the last good flush left (a CSV cuts a torn row back).

For tests and the benchmark, `set_latency` (or ``RPI_LOGGER_SINK_LATENCY_MS="flush=5,fsync=50"``
in the environment, read at import) adds a delay to every flush and sync of sinks opened from
then on through `with_latency`: an SD card, simulated, to show the loop unaffected by slow storage.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Generic, TypeVar

__all__ = [
    "Sink",
    "SinkError",
    "SinkProxy",
    "describe_write_error",
    "is_disk_full",
    "set_latency",
    "with_latency",
]

T = TypeVar("T")


class SinkError(RuntimeError):
    """Writing a sink failed. The message is one line (`describe_write_error`, e.g. "disk full:
    <path>"); `__cause__` is the original exception (usually an `OSError`)."""


def describe_write_error(path: str | os.PathLike[str], exc: BaseException) -> str:
    """One line saying why writing `path` failed: "disk full: <path>" for ENOSPC (and a full
    quota), a `SinkError`'s own line (it names its file), else the error itself (e.g. "writing
    <path> failed: [Errno 5] Input/output error")."""
    if isinstance(exc, SinkError):
        return str(exc)
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


class Sink(abc.ABC, Generic[T]):
    """One destination of a stream. Synchronous; used by one thread at a time."""

    #: The file the sink writes (named in errors and the manifest).
    path: Path

    @abc.abstractmethod
    def open(self) -> None:
        """Create the destination (and what precedes the items, e.g. a header), durably."""

    @abc.abstractmethod
    def write(self, batch: Sequence[T]) -> None:
        """Add items, in order. They may stay in the sink's buffers until `flush`."""

    def flush(self) -> None:
        """Hand everything written to the OS: other readers, and one after `kill -9`, see it."""

    def sync(self) -> None:
        """`flush`, then make it survive a power cut (fsync)."""
        self.flush()

    @abc.abstractmethod
    def close(self) -> None:
        """Finalize, sync and release. Idempotent."""

    def abort(self) -> None:
        """Release after a failure, keeping what the last good flush left where the format
        allows (default: `close`, its errors ignored: the failure was reported already)."""
        with contextlib.suppress(Exception):  # the same failure again
            self.close()


# Seconds added to each flush, and to each sync (and close), by `with_latency`.
_latency = (0.0, 0.0)


def set_latency(flush_ms: float = 0.0, fsync_ms: float = 0.0) -> None:
    """Make every flush take `flush_ms` longer and every sync `flush_ms + fsync_ms`, for sinks
    wrapped by `with_latency` from now on (tests, benchmark). Zeros turn it off."""
    global _latency
    if flush_ms < 0 or fsync_ms < 0:
        raise ValueError(f"latencies must be >= 0 ms, got flush={flush_ms}, fsync={fsync_ms}")
    _latency = (flush_ms / 1000, fsync_ms / 1000)


def _latency_from_env(text: str) -> None:
    """``"flush=5,fsync=50"`` (milliseconds) -> `set_latency`."""
    values: dict[str, float] = {}
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, value = part.split("=")
            if key.strip() not in ("flush", "fsync"):
                raise ValueError(key)
            values[key.strip() + "_ms"] = float(value)
        set_latency(**values)
    except ValueError:
        raise ValueError(
            f'RPI_LOGGER_SINK_LATENCY_MS={text!r}: expected e.g. "flush=5,fsync=50" (ms)'
        ) from None


class SinkProxy(Sink[T]):
    """A sink that hands every call to `inner`: subclass it to change one step of a sink."""

    def __init__(self, inner: Sink[T]) -> None:
        self.inner = inner
        self.path = inner.path

    def open(self) -> None:
        self.inner.open()

    def write(self, batch: Sequence[T]) -> None:
        self.inner.write(batch)

    def flush(self) -> None:
        self.inner.flush()

    def sync(self) -> None:
        self.inner.sync()

    def close(self) -> None:
        self.inner.close()

    def abort(self) -> None:
        self.inner.abort()


class _Slow(SinkProxy[T]):
    """`inner` with a delay before each flush and sync (see `set_latency`)."""

    def __init__(self, inner: Sink[T], flush_s: float, fsync_s: float) -> None:
        super().__init__(inner)
        self._flush_s = flush_s
        self._sync_s = flush_s + fsync_s

    def flush(self) -> None:
        time.sleep(self._flush_s)
        self.inner.flush()

    def sync(self) -> None:
        time.sleep(self._sync_s)
        self.inner.sync()

    def close(self) -> None:
        time.sleep(self._sync_s)
        self.inner.close()


def with_latency(sink: Sink[T]) -> Sink[T]:
    """`sink` itself, or wrapped to be as slow as `set_latency` says. Whatever runs a sink
    (`SinkWriter`) wraps it here, so every sink gets the same simulated storage."""
    flush_s, fsync_s = _latency
    return _Slow(sink, flush_s, fsync_s) if flush_s or fsync_s else sink


if os.environ.get("RPI_LOGGER_SINK_LATENCY_MS"):
    _latency_from_env(os.environ["RPI_LOGGER_SINK_LATENCY_MS"])
