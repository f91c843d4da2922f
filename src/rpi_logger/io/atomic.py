"""Atomic file replacement: a reader (or a power cut) sees the old file or the new one, never half.

Every function writes a temporary file in the target's folder (same file system, so the rename is
atomic), flushes and fsyncs it, `os.replace`s it over the target and then fsyncs the folder so the
rename itself is durable. On any error the temporary file is removed and the target is untouched.

Writes of one path are serialized by a per-path lock shared by threads and coroutines, so
concurrent writers never interleave: the last write to complete wins and the file is always whole.
The async variants additionally queue in call order (FIFO per path and event loop), so among
coroutines the last *call* wins.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import json
import os
import tempfile
import threading
import weakref
from typing import Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_bytes_async",
    "atomic_write_json",
    "atomic_write_json_async",
    "atomic_write_text",
    "atomic_write_text_async",
    "fsync_dir",
]

StrPath = str | os.PathLike[str]

# Per-path locks. Thread locks serialize every writer of a path (sync and async APIs alike);
# weak values so paths written once do not pin a lock forever.
_registry_lock = threading.Lock()
_thread_locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
# asyncio.Lock is bound to one event loop, hence one table per loop (dropped with the loop).
_async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _key(path: StrPath) -> str:
    return os.path.abspath(os.fspath(path))


def _thread_lock(path: StrPath) -> threading.Lock:
    key = _key(path)
    with _registry_lock:
        lock = _thread_locks.get(key)
        if lock is None:
            lock = threading.Lock()
            _thread_locks[key] = lock
        return lock


def _async_lock(path: StrPath) -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    with _registry_lock:
        table = _async_locks.setdefault(loop, {})
        return table.setdefault(_key(path), asyncio.Lock())


@functools.cache
def _umask() -> int:
    # Reading the umask with os.umask() would briefly change it for every thread, so read it from
    # /proc where available (Linux); elsewhere assume the usual 022.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _default_mode(path: str) -> int:
    """Keep an existing file's permissions; a new file gets 0o666 minus the umask (like open())."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def fsync_dir(path: StrPath) -> None:
    """fsync a folder so that entries created or renamed in it survive a power cut."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):  # e.g. a folder we may write but not read
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems (and platforms) cannot fsync a folder; the data itself is synced.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def atomic_write_bytes(path: StrPath, data: bytes, *, mode: int | None = None) -> None:
    """Replace `path` with `data` atomically and durably (creates missing parent folders).

    `mode` sets the file's permissions; by default an existing file keeps its own.
    """
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    with _thread_lock(target):
        os.makedirs(folder, exist_ok=True)
        perm = _default_mode(target) if mode is None else mode
        prefix = f".{os.path.basename(target)}."
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), perm)
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        fsync_dir(folder)


def atomic_write_text(
    path: StrPath, text: str, *, encoding: str = "utf-8", mode: int | None = None
) -> None:
    """Replace `path` with `text` atomically and durably."""
    atomic_write_bytes(path, text.encode(encoding), mode=mode)


def _json_bytes(obj: Any, indent: int | None) -> bytes:
    return (json.dumps(obj, indent=indent, ensure_ascii=False) + "\n").encode("utf-8")


def atomic_write_json(
    path: StrPath, obj: Any, *, indent: int | None = 2, mode: int | None = None
) -> None:
    """Replace `path` with `obj` as JSON (UTF-8, trailing newline) atomically and durably.

    `obj` is serialized before the disk is touched, so an unserializable object leaves no trace.
    """
    atomic_write_bytes(path, _json_bytes(obj, indent), mode=mode)


async def atomic_write_bytes_async(path: StrPath, data: bytes, *, mode: int | None = None) -> None:
    """`atomic_write_bytes` off the event loop; concurrent calls for one path run in call order."""
    async with _async_lock(path):
        await asyncio.to_thread(atomic_write_bytes, path, data, mode=mode)


async def atomic_write_text_async(
    path: StrPath, text: str, *, encoding: str = "utf-8", mode: int | None = None
) -> None:
    """`atomic_write_text` off the event loop; concurrent calls for one path run in call order."""
    await atomic_write_bytes_async(path, text.encode(encoding), mode=mode)


async def atomic_write_json_async(
    path: StrPath, obj: Any, *, indent: int | None = 2, mode: int | None = None
) -> None:
    """`atomic_write_json` off the event loop; concurrent calls for one path run in call order.

    `obj` is serialized on the calling (loop) thread at call time: the caller may go on mutating
    it (e.g. the session manifest) without racing the writer thread, and what lands on disk is the
    state at the moment of the call. Serializing a manifest-sized object takes well under a ms.
    """
    await atomic_write_bytes_async(path, _json_bytes(obj, indent), mode=mode)
