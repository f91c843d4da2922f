"""Concurrent writers: threads, coroutines, both APIs, several processes; no lost updates."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rpi_logger.config import (
    ConfigManager,
    read_config,
    read_config_async,
    write_config,
    write_config_async,
)
from rpi_logger.config import manager as manager_mod

ROUNDS = 100
KEYS_PER_WRITER = 10
HEADER = '# shared config\nbase = "always here"  # must never vanish\n\n'


def _keys(name: str, i: int) -> dict[str, int]:
    """Round i of writer `name`: key name_{i % 10} = i, plus a counter. Expected final value of
    name_k is 90 + k, so a lost update in the last ten rounds of any writer shows up."""
    return {f"{name}_{i % KEYS_PER_WRITER}": i, f"{name}_n": i}


def _expected(names: list[str]) -> dict[str, str]:
    out = {"base": "always here"}
    for name in names:
        for k in range(KEYS_PER_WRITER):
            out[f"{name}_{k}"] = str(ROUNDS - KEYS_PER_WRITER + k)
        out[f"{name}_n"] = str(ROUNDS - 1)
    return out


def _check_own(cfg: dict[str, str], name: str, last: int) -> None:
    """A writer's own keys must still hold what it wrote last: nobody else writes them, so any
    other value is an update lost to a concurrent read-modify-write."""
    got = cfg.get(f"{name}_n")
    assert got == str(last), f"{name}: lost update, counter is {got!r}, wrote {last}"


@pytest.mark.timeout(60)
def test_threads_and_coroutines_mixing_apis_lose_nothing(tmp_path: Path) -> None:
    """8 threads (4 sync API, 4 asyncio.run of the async API) and 8 coroutines on one loop
    (4 calling the sync API on the loop thread, 4 the async API), plus a polling reader.

    The asyncio part runs in its own thread and loop, joined with a timeout: a deadlock then
    fails the test with a message instead of wedging pytest's loop (a timeout signal can only
    unblock a wedged loop once; the next blocked coroutine would hang the run).
    """
    path = tmp_path / "config.txt"
    path.write_text(HEADER, encoding="utf-8")
    errors: list[BaseException] = []
    reader_stats = {"reads": 0}
    done = threading.Event()

    def reader() -> None:
        # Polls without any lock: atomic replacement means every read sees a whole file.
        while not done.is_set():
            try:
                cfg = read_config(path)
                assert cfg["base"] == "always here", cfg
            except BaseException as exc:  # collected and re-raised in the test
                errors.append(exc)
                return
            reader_stats["reads"] += 1
            # Poll, don't spin: a spinning thread hogs the GIL and slows every writer ~5x.
            time.sleep(0.001)

    def sync_thread(name: str) -> None:
        try:
            for i in range(ROUNDS):
                write_config(path, _keys(name, i))
                if i % 10 == 0:
                    _check_own(read_config(path), name, i)
        except BaseException as exc:
            errors.append(exc)

    def async_thread(name: str) -> None:
        async def run() -> None:
            mgr = ConfigManager()  # a second manager instance must share the same locks
            for i in range(ROUNDS):
                await mgr.write_config_async(path, _keys(name, i))
                if i % 10 == 0:
                    _check_own(await mgr.read_config_async(path), name, i)

        try:
            asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)

    async def sync_on_loop(name: str) -> None:
        # The sync API straight on the event loop's thread, while async writers hold the lock
        # from worker threads: must neither deadlock nor lose updates.
        for i in range(ROUNDS):
            write_config(path, _keys(name, i))
            if i % 10 == 0:
                _check_own(read_config(path), name, i)
            await asyncio.sleep(0)  # let the other coroutines run

    async def async_coro(name: str) -> None:
        for i in range(ROUNDS):
            await write_config_async(path, _keys(name, i))
            if i % 10 == 0:
                _check_own(await read_config_async(path), name, i)

    # Daemon threads: if a bug deadlocks them, the test fails instead of hanging pytest's exit.
    threads = [threading.Thread(target=reader, daemon=True)]
    names: list[str] = []
    for n in range(8):
        name = f"t{n}"
        names.append(name)
        target = sync_thread if n % 2 == 0 else async_thread
        threads.append(threading.Thread(target=target, args=(name,), daemon=True))
    coros = []
    for n in range(8):
        name = f"c{n}"
        names.append(name)
        coros.append(sync_on_loop(name) if n % 2 == 0 else async_coro(name))

    async def main() -> None:
        for t in threads:
            t.start()
        tasks = [asyncio.create_task(c) for c in coros]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:  # on failure, stop the rest at their next await
                task.cancel()
            deadline = time.monotonic() + 20
            for t in threads[1:]:
                await asyncio.to_thread(t.join, max(0.0, deadline - time.monotonic()))
            done.set()
            await asyncio.to_thread(threads[0].join, 5)

    def run_loop() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    runner = threading.Thread(target=run_loop, daemon=True)
    runner.start()
    runner.join(timeout=45)
    assert not runner.is_alive(), "deadlock: the event loop of the test never finished"
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads still blocked (deadlock?): {stuck}"
    if errors:
        raise errors[0]
    final = read_config(path)
    assert final == _expected(names)
    assert path.read_text(encoding="utf-8").startswith(HEADER)
    assert reader_stats["reads"] > 10


@pytest.mark.timeout(60)
def test_sync_api_on_loop_thread_does_not_deadlock_with_async_writers(tmp_path: Path) -> None:
    """Run the scenario in its own thread + loop so a deadlock fails the test instead of
    hanging it: the loop thread calls the sync API while many async writes are in flight."""
    path = tmp_path / "config.txt"
    outcome: list[object] = []

    async def scenario() -> None:
        async def async_writer(n: int) -> None:
            for i in range(30):
                await write_config_async(path, {f"a{n}": i})

        tasks = [asyncio.create_task(async_writer(n)) for n in range(6)]
        await asyncio.sleep(0)  # let them all reach their first write
        for i in range(30):
            write_config(path, {"loop": i})  # sync API on the loop thread
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)

    def run() -> None:
        try:
            asyncio.run(scenario())
            outcome.append("ok")
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "deadlock: sync write_config on the loop thread never returned"
    assert outcome == ["ok"], outcome
    final = read_config(path)
    assert final == {"loop": "29", **{f"a{n}": "29" for n in range(6)}}


@pytest.mark.timeout(60)
def test_in_process_serialization_does_not_rely_on_flock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without fcntl (non-POSIX) the per-path thread lock alone must keep updates."""
    monkeypatch.setattr(manager_mod, "fcntl", None)
    path = tmp_path / "config.txt"
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(60):
                write_config(path, {f"{name}_{i}": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert read_config(path) == {f"w{n}_{i}": str(i) for n in range(6) for i in range(60)}


CHILD = textwrap.dedent(
    """
    import os, sys, time
    from rpi_logger.config import write_config
    path, name, ready, go = sys.argv[1:5]
    open(ready, "w").close()
    deadline = time.monotonic() + 20
    while not os.path.exists(go):  # start together so the writes really overlap
        if time.monotonic() > deadline:
            sys.exit("never got the go signal")
        time.sleep(0.001)
    for i in range(50):
        write_config(path, {f"{name}_{i}": i, f"{name}_n": i})
    """
)


@pytest.mark.timeout(60)
def test_processes_writing_one_file_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config.txt"
    path.write_text("# shared by processes\n", encoding="utf-8")
    go = tmp_path / "go"
    names = ["p0", "p1", "p2"]
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                str(path),
                name,
                str(tmp_path / f"ready_{name}"),
                str(go),
            ],
            env=env,
            stderr=subprocess.PIPE,
        )
        for name in names
    ]
    try:
        deadline = time.monotonic() + 20
        while not all((tmp_path / f"ready_{n}").exists() for n in names):
            assert time.monotonic() < deadline, "children did not start"
            assert all(p.poll() is None for p in procs), "a child died early"
            time.sleep(0.005)
        go.touch()
        for p in procs:
            _, err = p.communicate(timeout=30)
            assert p.returncode == 0, err.decode()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    final = read_config(path)
    expected = {f"{n}_{i}": str(i) for n in names for i in range(50)}
    expected.update({f"{n}_n": "49" for n in names})
    missing = sorted(set(expected) - set(final))
    assert not missing, f"{len(missing)} updates lost, e.g. {missing[:5]}"
    assert final == expected
    assert path.read_text(encoding="utf-8").startswith("# shared by processes\n")
