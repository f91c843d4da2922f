"""The threaded source every device uses: samples reach the loop in order, losses are reported
as what they were, failures arrive as one-line errors, and a flooding device cannot starve the
loop's other work (heartbeats, commands)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import NamedTuple

import pytest

from rpi_logger.framework.source import Lost, SourceError, ThreadedSource


class Tick(NamedTuple):
    t_mono_ns: int
    sequence: int


class _Burst(ThreadedSource[Tick, str]):
    """Emits `count` samples at once, then idles until closed (or fails, if told to)."""

    backend = "test"

    def __init__(self, count: int, queue_size: int, fail_open: str = "", fail_after: str = ""):
        super().__init__("burst", "asked", queue_size)
        self.count, self.fail_open, self.fail_after = count, fail_open, fail_after
        self.one_more = threading.Event()  # set: emit one more sample after the burst

    def _device_open(self) -> str:
        if self.fail_open:
            raise OSError(self.fail_open)
        return "opened"

    def _device_loop(self) -> None:
        for k in range(self.count):
            self._emit(Tick(1_000 + k, k))
        if self.fail_after:
            raise OSError(self.fail_after)
        while not self._stop.wait(0.005):
            if self.one_more.is_set():
                self.one_more.clear()
                self._emit(Tick(1_000 + self.count, self.count))

    def _device_close(self) -> None:
        return None


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - a thread sets what we poll
            await asyncio.sleep(0.005)


async def test_a_flooding_device_does_not_starve_the_loop() -> None:
    source = _Burst(5_000, queue_size=5_000)
    ticks = 0

    async def other_work() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    async with source:
        assert source.info == "opened"
        await _until(lambda: source.stats.captured == 5_000)  # all queued before we read
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(other_work())
            got = []
            async for tick in source:
                got.append(tick.sequence)
                if len(got) == 5_000:
                    break
            during = ticks
            task.cancel()
    assert got == list(range(5_000))
    # Without a turn per sample the other task would not run once while 5,000 were queued.
    assert during >= 4_000


async def test_hand_off_losses_are_reported_before_the_next_sample() -> None:
    source = _Burst(10, queue_size=4)
    lost: list[Lost] = []
    source.on_overflow = lost.append
    async with source:
        await _until(lambda: source.stats.captured == 10)
        received = []
        async for tick in source:
            received.append(tick.sequence)
            if len(received) == 4:
                assert lost == []  # not yet: losses travel with the next delivered sample
                source.one_more.set()
            if len(received) == 5:
                break
    assert received == [0, 1, 2, 3, 10]
    assert source.stats.dropped_queue_overflow == 6
    assert lost == [Lost(1_000 + k, k, 1) for k in range(4, 10)]


async def test_open_and_device_failures_are_one_line_errors() -> None:
    with pytest.raises(SourceError, match=r"^burst: no such device$"):
        await _Burst(0, 4, fail_open="no such device").open()
    source = _Burst(3, 8, fail_after="unplugged")
    async with source:
        with pytest.raises(SourceError, match=r"^burst: unplugged$"):
            async for _tick in source:
                pass


class _SlowOpen(_Burst):
    def __init__(self) -> None:
        super().__init__(0, 4)
        self.closed = threading.Event()

    def _device_open(self) -> str:
        time.sleep(0.3)  # a device that takes its time to connect
        return "opened"

    def _device_close(self) -> None:
        self.closed.set()


async def test_an_open_cancelled_midway_leaves_no_device_thread_behind() -> None:
    source = _SlowOpen()
    task = asyncio.create_task(source.open())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not source.is_open
    await source.close()  # joins the thread that was still connecting
    assert source.closed.is_set()
    assert not [t for t in threading.enumerate() if t.name == "test-burst" and t.is_alive()]
