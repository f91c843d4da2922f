"""ConfigManager: atomic replacement, durability, layout, and the sync/async contracts."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from pathlib import Path

import pytest

import rpi_logger.config as config
from rpi_logger.config import ConfigError, ConfigManager, lock_path_for, read_config, write_config
from rpi_logger.config import manager as manager_mod


def test_create_update_append_and_keep_comments(tmp_path: Path) -> None:
    path = tmp_path / "config.txt"
    write_config(path, {"fps": 30, "enabled": True, "device": None, "path": tmp_path})
    assert path.read_text() == f"fps = 30\nenabled = true\ndevice =\npath = {tmp_path}\n"
    path.write_text("# Cameras\n\n  fps = 30  # frames per second\nenabled = true\n")
    write_config(path, {"fps": 60, "new": "a # b"})
    assert path.read_text() == (
        '# Cameras\n\n  fps = 60  # frames per second\nenabled = true\nnew = "a # b"\n'
    )
    assert read_config(path) == {"fps": "60", "enabled": "true", "new": "a # b"}


def test_read_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_config(tmp_path / "missing.txt")


def test_invalid_update_leaves_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "config.txt"
    path.write_text("a = 1\n")
    with pytest.raises(ConfigError):
        write_config(path, {"a": 2, "bad=key": 1})
    with pytest.raises(ConfigError):
        write_config(path, {"a": "two\nlines"})
    assert path.read_text() == "a = 1\n"


def test_malformed_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "config.txt"
    path.write_text("a = 1\nthis line is broken\n")
    with pytest.raises(ConfigError, match=r"config\.txt:2:"):
        write_config(path, {"a": 2})
    assert path.read_text() == "a = 1\nthis line is broken\n"


def test_undecodable_file_is_a_config_error_with_line(tmp_path: Path) -> None:
    path = tmp_path / "config.txt"
    path.write_bytes(b"a = 1\nb = caf\xe9\n")
    with pytest.raises(ConfigError, match=r"config\.txt:2: not valid utf-8"):
        read_config(path)
    with pytest.raises(ConfigError, match=r"config\.txt:2: not valid utf-8"):
        write_config(path, {"a": 2})
    assert path.read_bytes() == b"a = 1\nb = caf\xe9\n"


def test_write_is_durable_and_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Temp file in the same folder, fsync(file), os.replace, fsync(folder): in that order."""
    path = tmp_path / "config.txt"
    path.write_text("# keep\na = 1\n")
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def spy_fsync(fd: int) -> None:
        st = os.fstat(fd)
        events.append(("fsync", "dir" if stat.S_ISDIR(st.st_mode) else "file"))
        if stat.S_ISREG(st.st_mode):
            # The fsynced file must already hold the complete new content.
            events.append(("size", str(st.st_size)))
        real_fsync(fd)

    def spy_replace(src: str, dst: str) -> None:
        assert Path(src).parent == path.parent  # same folder: rename is atomic
        assert Path(dst) == path
        events.append(("replace", Path(src).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    write_config(path, {"a": 2})
    new_size = str(len(b"# keep\na = 2\n"))
    kinds = [e for e in events if e[0] != "replace"]
    assert kinds == [("fsync", "file"), ("size", new_size), ("fsync", "dir")]
    assert [e[0] for e in events] == ["fsync", "size", "replace", "fsync"]
    assert path.read_text() == "# keep\na = 2\n"


def test_failed_replace_keeps_old_file_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.txt"
    path.write_text("a = 1\n")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        write_config(path, {"a": 2})
    assert path.read_text() == "a = 1\n"
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == [".config.txt.lock", "config.txt"]


def test_never_truncates_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The config's own inode is never opened for writing (that is not atomic)."""
    path = tmp_path / "config.txt"
    path.write_text("a = 1\n")
    inode = path.stat().st_ino
    write_config(path, {"a": 2})
    assert path.stat().st_ino != inode


def test_permissions_and_symlink_are_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("a = 1\n")
    real.chmod(0o600)
    link = tmp_path / "config.txt"
    link.symlink_to(real)
    write_config(link, {"a": 2})
    assert link.is_symlink()
    assert real.read_text() == "a = 2\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    # The lock file sits next to the resolved file.
    assert lock_path_for(link) == tmp_path / ".real.txt.lock"
    assert (tmp_path / ".real.txt.lock").exists()


def test_unchanged_write_skips_io(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.txt"
    path.write_text("a = 1\n")
    inode = path.stat().st_ino
    write_config(path, {"a": "1"})
    assert path.stat().st_ino == inode


def test_sync_write_runs_inline_on_the_calling_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real = manager_mod.atomic_write_bytes

    def spy(*args: object, **kwargs: object) -> None:
        threads.append(threading.get_ident())
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(manager_mod, "atomic_write_bytes", spy)
    write_config(tmp_path / "c.txt", {"a": 1})
    assert threads == [threading.get_ident()]


async def test_async_api_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "config.txt"
    await config.write_config_async(path, {"x": "1 # one", "y": None})
    assert await config.read_config_async(path) == {"x": "1 # one", "y": ""}
    mgr = ConfigManager()
    await mgr.write_config_async(path, {"x": 2})
    assert await mgr.read_config_async(path) == {"x": "2", "y": ""}
    entries = await mgr.read_entries_async(path)
    assert [(e.key, e.line) for e in entries] == [("x", 1), ("y", 2)]


async def test_async_write_never_blocks_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow fsyncs and a lock held by another thread must not stall the event loop."""
    path = tmp_path / "config.txt"
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(0.15)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    # Another thread holds the lock (two slow fsyncs) while the coroutine wants it.
    holder = threading.Thread(target=write_config, args=(path, {"holder": 1}))
    holder.start()
    await asyncio.sleep(0.02)

    gaps: list[float] = []
    stop = False

    async def ticker() -> None:
        last = time.monotonic()
        while not stop:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await config.write_config_async(path, {"mine": 2})
    await config.read_config_async(path)
    stop = True
    await tick
    holder.join()
    assert read_config(path) == {"holder": "1", "mine": "2"}
    assert len(gaps) > 20
    assert max(gaps) < 0.1, f"event loop stalled for {max(gaps):.3f} s"
