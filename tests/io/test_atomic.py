"""Atomic replacement of config, state and manifest files (design.md: Principles, 3): a reader
always sees a
whole file, the last write wins, a failure leaves the old file and no litter behind."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from rpi_logger.io import atomic
from rpi_logger.io.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_json_async,
    atomic_write_text,
    atomic_write_text_async,
)


def litter(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_bytes_text_and_json(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "sub" / "b.txt", "héllo\n")  # missing folder is created
    atomic_write_json(tmp_path / "session.json", {"schema": "rpi-logger/session/1", "n": [1.5]})
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "sub" / "b.txt").read_text(encoding="utf-8") == "héllo\n"
    text = (tmp_path / "session.json").read_text(encoding="utf-8")
    assert json.loads(text) == {"schema": "rpi-logger/session/1", "n": [1.5]}
    assert text.endswith("\n") and '\n  "schema"' in text  # indent=2
    assert litter(tmp_path) == [] and litter(tmp_path / "sub") == []


def test_file_and_folder_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        kinds.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", spy)
    atomic_write_json(tmp_path / "s.json", {"a": 1})
    assert kinds == ["file", "dir"]


def test_failure_leaves_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    atomic_write_json(target, {"version": 1})

    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})  # fails before touching the disk

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        atomic_write_json(target, {"version": 2})
    assert json.loads(target.read_text()) == {"version": 1}
    assert litter(tmp_path) == []


def test_permissions_kept_or_given(tmp_path: Path) -> None:
    target = tmp_path / "token"
    atomic_write_text(target, "secret", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    atomic_write_text(target, "secret2")  # an existing file keeps its mode
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    fresh = tmp_path / "fresh.json"
    atomic_write_json(fresh, {})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask  # like a plain open()


async def test_concurrent_async_writes_last_call_wins_and_file_always_valid(
    tmp_path: Path,
) -> None:
    target = tmp_path / "session.json"
    atomic_write_json(target, {"n": -1})
    stop = threading.Event()
    bad: list[str] = []
    reads = 0

    def reader() -> None:  # another process polling the manifest
        nonlocal reads
        while not stop.is_set():
            text = target.read_text(encoding="utf-8")
            reads += 1
            try:
                json.loads(text)
            except ValueError:
                bad.append(text)

    t = threading.Thread(target=reader)
    t.start()
    try:
        payloads = [{"n": i, "pad": "x" * (i * 997 % 20_000)} for i in range(60)]
        await asyncio.gather(*(atomic_write_json_async(target, p) for p in payloads))
    finally:
        stop.set()
        await asyncio.to_thread(t.join)
    assert not bad, f"reader saw a partial file: {bad[0][:80]!r}"
    assert reads > 0
    assert json.loads(target.read_text())["n"] == 59
    assert litter(tmp_path) == []


async def test_async_write_snapshots_the_object_at_call_time(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    manifest: dict[str, Any] = {"trials": [1]}
    task = asyncio.create_task(atomic_write_json_async(target, manifest))
    await asyncio.sleep(0)  # the write has started and is now off the loop
    manifest["trials"].append(2)  # the loop keeps mutating its manifest meanwhile
    await task
    assert json.loads(target.read_text()) == {"trials": [1]}


async def test_threads_and_coroutines_writing_one_path_never_tear_it(tmp_path: Path) -> None:
    target = tmp_path / "state.json"

    def thread_writer(k: int) -> None:
        for i in range(20):
            atomic_write_json(target, {"w": f"t{k}", "i": i, "pad": "y" * 5000})

    threads = [threading.Thread(target=thread_writer, args=(k,)) for k in range(3)]
    for th in threads:
        th.start()
    for i in range(20):
        await atomic_write_text_async(target, json.dumps({"w": "async", "i": i}))
    for th in threads:
        await asyncio.to_thread(th.join)
    assert json.loads(target.read_text())["i"] == 19
    assert litter(tmp_path) == []
