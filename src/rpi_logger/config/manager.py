"""Read and update ``config.txt`` files safely from threads, coroutines and processes.

Every write is a read-modify-write of the whole (small) file, done under two locks:

1. a per-path FIFO lock shared by all threads of this process (and so by both APIs), and
2. an advisory ``fcntl.flock`` on a sidecar file ``.<name>.lock`` next to the config, so other
   processes writing the same file wait their turn too.

The file is then replaced atomically (temp file in the same folder, fsync, ``os.replace``, fsync
of the folder), so readers never need a lock: they see either the old or the new file.

The async API never holds a lock across an ``await``: each call runs the whole locked
read-modify-write in one worker thread. That is what lets the sync API be called from the event
loop's own thread without deadlocking: whoever holds the lock is a thread doing a bounded amount
of file work, never a coroutine waiting for the (blocked) loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from rpi_logger.io.atomic import atomic_write_bytes

from .parser import (
    MAX_CONFIG_BYTES,
    ConfigDocument,
    ConfigEntry,
    ConfigError,
    ConfigTooLargeError,
    validate_key,
    validate_value,
)

try:  # POSIX only; the product targets Linux and macOS.
    import fcntl
except ImportError:  # pragma: no cover - e.g. Windows: only in-process serialization
    fcntl = None  # type: ignore[assignment]

__all__ = ["ConfigManager", "default_manager", "lock_path_for", "to_config_value"]

StrPath = str | os.PathLike[str]

_ENCODING = "utf-8"


class _FifoLock:
    """A lock granted in arrival order, handed directly from owner to the next waiter.

    ``threading.Lock`` is not fair: a busy writer thread can re-acquire it again and again while
    the event loop's thread waits. Here a waiter's wait is bounded by the writers queued before
    it, and a release wakes exactly one thread (no thundering herd). Not re-entrant.
    """

    __slots__ = ("_guard", "_locked", "_waiters")

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locked = False
        self._waiters: deque[threading.Lock] = deque()

    def __enter__(self) -> None:
        with self._guard:
            if not self._locked:
                self._locked = True
                return
            gate = threading.Lock()
            gate.acquire()
            self._waiters.append(gate)
        try:
            gate.acquire()  # released by the previous owner: ownership is handed over
        except BaseException:
            # Interrupted (e.g. KeyboardInterrupt): leave the queue, or pass on the ownership
            # we were handed in the meantime, so nobody waits forever.
            with self._guard:
                try:
                    self._waiters.remove(gate)
                    handed_over = False
                except ValueError:
                    handed_over = True
            if handed_over:
                self.__exit__()
            raise

    def __exit__(self, *exc: object) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().release()  # stays locked, now owned by that waiter
            else:
                self._locked = False


# One lock per resolved path, shared by every ConfigManager in the process so that two managers
# (or the module-level functions and a private manager) still serialize on the same file.
_path_locks: dict[str, _FifoLock] = {}
_path_locks_guard = threading.Lock()


def _reset_locks_after_fork() -> None:
    # A forked child inherits lock state from threads that no longer exist in it; start fresh.
    global _path_locks_guard
    _path_locks.clear()
    _path_locks_guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_after_fork)


def _lock_for(resolved: str) -> _FifoLock:
    with _path_locks_guard:
        lock = _path_locks.get(resolved)
        if lock is None:
            lock = _path_locks[resolved] = _FifoLock()
        return lock


def lock_path_for(path: StrPath) -> Path:
    """The sidecar lock file used for ``path``: ``.<name>.lock`` in the same folder."""
    p = Path(os.path.realpath(path))
    return p.with_name(f".{p.name}.lock")


def to_config_value(value: object) -> str | None:
    """Convert an update value to config text: ``None`` stays ``None`` (written as unset),
    booleans become ``true``/``false``, everything else ``str(value)``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # type: ignore[return-value]
    return str(value)


def _read_limited(fh: BinaryIO, shown: str) -> bytes:
    """The file's bytes, or ConfigTooLargeError when it holds more than MAX_CONFIG_BYTES."""
    size = os.fstat(fh.fileno()).st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigTooLargeError(shown, size)
    data = fh.read(MAX_CONFIG_BYTES + 1)  # bounded even for files that grow or lie about size
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigTooLargeError(shown, max(size, len(data)))
    return data


@contextmanager
def _flock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_file`` (created if missing, never deleted).

    The lock file is never removed: deleting it would let a process lock a stale inode while
    another locks the new one.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class ConfigManager:
    """Reads and writes ``config.txt`` files; safe from any thread, coroutine or process.

    Reads need no lock (files are only ever replaced atomically). Writes are serialized per
    resolved path across threads, coroutines, both APIs and ConfigManager instances, and across
    processes with an advisory lock file.
    """

    def __init__(self, encoding: str = _ENCODING) -> None:
        self.encoding = encoding

    # ---- sync API -------------------------------------------------------------------------

    def read_document(self, path: StrPath) -> ConfigDocument:
        """Parse ``path`` into an editable :class:`ConfigDocument` (raises FileNotFoundError).

        A file over ``MAX_CONFIG_BYTES`` raises :class:`ConfigTooLargeError` without being read.
        """
        with open(path, "rb") as fh:
            data = _read_limited(fh, os.fspath(path))
        # newline="" semantics: decode bytes ourselves so "\r" is never turned into "\n".
        return ConfigDocument.parse(self._decode(data, os.fspath(path)), os.fspath(path))

    def read_entries(self, path: StrPath) -> list[ConfigEntry]:
        """Entries of ``path`` in file order, with 1-based line numbers."""
        return self.read_document(path).entries()

    def read_config(self, path: StrPath) -> dict[str, str]:
        """Return ``{key: value}`` for ``path`` (last occurrence of a repeated key wins).

        Raises FileNotFoundError if missing and ConfigError (file:line) if malformed.
        """
        return self.read_document(path).to_dict()

    def write_config(self, path: StrPath, updates: Mapping[str, object]) -> None:
        """Set ``updates`` in ``path`` (created if missing), keeping comments, order and layout.

        Safe from any thread, the event loop's thread included: the work is done inline on the
        calling thread and costs a read of a small file, a write and 2 fsyncs (file and folder),
        plus waiting for the writers of the same file queued before this call (FIFO; in other
        processes: the one holding the file lock), each doing that same bounded work; the async
        API never holds the lock while awaiting. Values are converted with
        :func:`to_config_value`; ``None`` writes an unset value (``key =``). Empty ``updates``
        write nothing; unchanged content skips the write.
        """
        clean = self._clean_updates(updates)
        if not clean:
            return
        resolved = os.path.realpath(path)
        # Same order everywhere (thread lock, then file lock) so nobody can deadlock.
        with _lock_for(resolved), _flock(lock_path_for(resolved)):
            self._update_locked(resolved, os.fspath(path), clean)

    # ---- async API ------------------------------------------------------------------------

    async def read_config_async(self, path: StrPath) -> dict[str, str]:
        """Like :meth:`read_config`, with the file read in a worker thread."""
        return await asyncio.to_thread(self.read_config, path)

    async def read_entries_async(self, path: StrPath) -> list[ConfigEntry]:
        """Like :meth:`read_entries`, with the file read in a worker thread."""
        return await asyncio.to_thread(self.read_entries, path)

    async def write_config_async(self, path: StrPath, updates: Mapping[str, object]) -> None:
        """Like :meth:`write_config`; lock waits and file I/O all run in one worker thread.

        The lock is taken and released inside that thread, never held across an ``await``.
        If the awaiting task is cancelled the write may still complete.
        """
        # Snapshot the updates now: the caller may mutate its mapping while we wait.
        clean = self._clean_updates(updates)
        if not clean:
            return
        await asyncio.to_thread(self.write_config, path, clean)

    # ---- internals ------------------------------------------------------------------------

    @staticmethod
    def _clean_updates(updates: Mapping[str, object]) -> dict[str, str | None]:
        # Validate before taking any lock so a bad key/value never costs other writers time.
        clean: dict[str, str | None] = {}
        for key, value in updates.items():
            validate_key(key)
            text = to_config_value(value)
            clean[key] = None if text is None else validate_value(key, text)
        return clean

    def _decode(self, data: bytes, shown: str) -> str:
        try:
            return data.decode(self.encoding)
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise ConfigError(
                f"{shown}:{line}: not valid {self.encoding} text ({exc.reason})",
                source=shown,
                line=line,
            ) from None

    def _update_locked(self, resolved: str, shown: str, updates: dict[str, str | None]) -> None:
        try:
            with open(resolved, "rb") as fh:
                old = _read_limited(fh, shown)
                mode: int | None = os.fstat(fh.fileno()).st_mode & 0o7777
        except FileNotFoundError:
            old, mode = b"", None
        doc = ConfigDocument.parse(self._decode(old, shown), shown)
        doc.update(updates)
        new = doc.render().encode(self.encoding)
        if new == old and mode is not None:
            return  # nothing changed: skip the write and its fsyncs
        # Temp file in the same folder, fsync, rename, fsync the folder (io.atomic).
        atomic_write_bytes(resolved, new, mode=mode)


default_manager = ConfigManager()
"""The shared manager behind the module-level functions."""
