"""The thread <-> loop bridge: every item arrives once and in order, nothing ends a stream but
`close()`, full bridges drop (counted) or wait as asked, parked parties are released by close,
worker failures reach the awaiting side, and the loop is never blocked.

No timing thresholds: waits are bounded generously and only guard against hangs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rpi_logger.io.bridge import (
    BridgeClosed,
    BridgeReceiver,
    BridgeSender,
    EndOfStream,
    Worker,
    WouldBlock,
    open_bridge,
)

HANG = 20.0  # seconds before a test is considered hung (never reached when it passes)


def wait_until(pred: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


async def await_until(pred: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


def bridge(n: int, overflow: Any = "block") -> tuple[BridgeSender[Any], BridgeReceiver[Any]]:
    return open_bridge(n, overflow=overflow, name="test")


# ----------------------------------------------------------------------------- basics


def test_items_arrive_in_order_and_iteration_ends_at_close_without_sentinels() -> None:
    tx, rx = bridge(10)
    # Values that a sentinel-based queue might mistake for its end marker.
    sent = [None, 0, "", object(), (None,), False]
    for item in sent:
        assert tx.send_nowait(item) is True
    tx.close()
    assert list(rx) == sent  # everything queued before close is drained, then iteration ends
    with pytest.raises(EndOfStream):
        rx.receive_nowait()
    with pytest.raises(EndOfStream):
        rx.receive(timeout=0)


async def test_async_iteration_drains_then_ends() -> None:
    tx, rx = bridge(10)
    for i in range(5):
        tx.send_nowait(i)
    rx.close()  # either half closes the bridge
    assert [i async for i in rx] == [0, 1, 2, 3, 4]
    with pytest.raises(EndOfStream):
        await rx.areceive()


def test_closed_bridge_refuses_sends_and_counts_nothing() -> None:
    for overflow in ("block", "drop"):
        tx, rx = bridge(4, overflow)
        tx.send_nowait(1)
        tx.close()
        tx.close()  # idempotent
        with pytest.raises(BridgeClosed):
            tx.send_nowait(2)
        with pytest.raises(BridgeClosed):
            tx.send(3)
        st = rx.statistics()
        assert (st.sent, st.dropped, st.queued, st.closed) == (1, 0, 1, True)
        assert tx.closed and rx.closed


async def test_asend_after_close_raises() -> None:
    tx, _ = bridge(4)
    tx.close()
    with pytest.raises(BridgeClosed):
        await tx.asend(1)


def test_drop_policy_counts_refused_items_and_keeps_the_oldest() -> None:
    tx, rx = bridge(3, "drop")
    results = [tx.send_nowait(i) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert tx.send(5) is False  # the blocking send drops too under "drop"
    st = tx.statistics()
    assert (st.sent, st.dropped, st.queued, st.max_queued) == (3, 3, 3, 3)
    assert rx.receive_batch(10) == [0, 1, 2]


async def test_drop_policy_asend_drops_instead_of_waiting() -> None:
    tx, _ = bridge(1, "drop")
    assert await tx.asend(1) is True
    assert await tx.asend(2) is False
    assert tx.statistics().dropped == 1


def test_block_policy_send_nowait_raises_when_full() -> None:
    tx, rx = bridge(2)
    tx.send_nowait(1)
    tx.send_nowait(2)
    with pytest.raises(WouldBlock):
        tx.send_nowait(3)
    assert tx.statistics().dropped == 0  # the caller decides; nothing was counted
    assert rx.receive_nowait() == 1
    assert tx.send_nowait(3) is True
    assert rx.receive_batch(5) == [2, 3]
    with pytest.raises(WouldBlock):
        rx.receive_nowait()


def test_statistics_snapshot() -> None:
    tx, rx = open_bridge(8, overflow="drop", name="cam0 frames")
    for i in range(6):
        tx.send_nowait(i)
    rx.receive_batch(4)
    tx.send_nowait(6)
    st = rx.statistics()
    assert st.name == "cam0 frames"
    assert (st.max_items, st.queued, st.max_queued) == (8, 3, 6)
    assert (st.sent, st.received, st.dropped, st.closed) == (7, 4, 0, False)
    assert (st.receivers_waiting, st.senders_waiting) == (0, 0)
    with pytest.raises(AttributeError):
        st.queued = 0  # type: ignore[misc]  (frozen snapshot)
    assert "cam0 frames" in repr(tx)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        open_bridge(0, name="x")
    with pytest.raises(ValueError):
        open_bridge(1, overflow="latest", name="x")  # type: ignore[arg-type]
    _, rx = bridge(1)
    with pytest.raises(ValueError):
        rx.receive_batch(0)


# ------------------------------------------------------------------- timeouts and batches


def test_receive_timeout_lets_a_writer_wake_for_periodic_work() -> None:
    tx, rx = bridge(4)
    with pytest.raises(TimeoutError):
        rx.receive(timeout=0.05)
    assert rx.receive_batch(10, timeout=0.05) == []
    tx.send_nowait("row")
    assert rx.receive(timeout=0.05) == "row"
    assert rx.statistics().receivers_waiting == 0  # a timed-out waiter leaves no trace


def test_receive_batch_min_items_collects_a_batch_before_waking() -> None:
    tx, rx = bridge(1000)
    got: list[list[int]] = []
    w = Worker(lambda: got.append(rx.receive_batch(1000, HANG, min_items=50)), name="batcher")
    w.start()
    wait_until(lambda: rx.statistics().receivers_waiting == 1, "receiver to park")
    for i in range(49):
        tx.send_nowait(i)
    st = rx.statistics()
    assert (st.queued, st.receivers_waiting) == (49, 1)  # 49 rows did not wake it
    tx.send_nowait(49)
    w.join_blocking(HANG)
    assert got == [list(range(50))]


def test_receive_batch_returns_partial_batch_on_timeout_and_on_wake() -> None:
    tx, rx = bridge(100)
    tx.send_nowait(1)
    assert rx.receive_batch(10, 0.05, min_items=5) == [1]  # the periodic tick takes what is there

    got: list[list[Any]] = []
    w = Worker(lambda: got.append(rx.receive_batch(10, HANG, min_items=50)), name="batcher")
    w.start()
    wait_until(lambda: rx.statistics().receivers_waiting == 1, "receiver to park")
    tx.send_nowait("row")
    tx.send_nowait("sync marker")
    tx.wake()  # urgent: take what is queued now
    w.join_blocking(HANG)
    assert got == [["row", "sync marker"]]


def test_wake_is_sticky_for_a_receiver_that_was_busy() -> None:
    tx, rx = bridge(100)
    tx.send_nowait("marker")
    tx.wake()  # nobody parked yet
    assert rx.receive_batch(10, HANG, min_items=50) == ["marker"]  # returns at once


def test_receive_batch_respects_max_items_and_closes_cleanly() -> None:
    tx, rx = bridge(100)
    for i in range(7):
        tx.send_nowait(i)
    tx.close()
    assert rx.receive_batch(3) == [0, 1, 2]
    assert rx.receive_batch(3, min_items=3) == [3, 4, 5]
    assert rx.receive_batch(3, min_items=3) == [6]  # closed: the rest, even under min_items
    with pytest.raises(EndOfStream):
        rx.receive_batch(3)


def test_min_items_larger_than_the_bridge_wakes_when_full() -> None:
    tx, rx = bridge(4)
    got: list[list[int]] = []
    w = Worker(lambda: got.append(rx.receive_batch(100, HANG, min_items=100)), name="batcher")
    w.start()
    wait_until(lambda: rx.statistics().receivers_waiting == 1, "receiver to park")
    for i in range(4):
        tx.send_nowait(i)
    w.join_blocking(HANG)
    assert got == [[0, 1, 2, 3]]


# --------------------------------------------------------------------- threads and the loop


async def test_producers_on_several_threads_and_a_loop_consumer() -> None:
    tx, rx = bridge(16)  # small: producers really do wait for room
    n_threads, per_thread = 4, 2000

    def produce(k: int) -> int:
        for i in range(per_thread):
            assert tx.send((k, i)) is True
        return k

    workers = [Worker(produce, k, name=f"producer-{k}") for k in range(n_threads)]
    for w in workers:
        w.start()

    async def close_when_done() -> None:
        assert [await w.join() for w in workers] == list(range(n_threads))
        tx.close()

    got: list[tuple[int, int]] = []
    async with asyncio.TaskGroup() as tg:
        tg.create_task(close_when_done())
        async for item in rx:
            got.append(item)
    assert len(got) == n_threads * per_thread
    for k in range(n_threads):
        assert [i for kk, i in got if kk == k] == list(range(per_thread))  # per-producer order
    st = rx.statistics()
    assert (st.sent, st.received, st.dropped, st.queued) == (8000, 8000, 0, 0)
    assert st.max_queued <= 16


async def test_thread_producers_with_drop_account_for_every_item() -> None:
    tx, rx = bridge(8, "drop")
    accepted = [0] * 3

    def produce(k: int) -> None:
        for i in range(3000):
            if tx.send_nowait(i):
                accepted[k] += 1

    workers = [Worker(produce, k, name=f"dropper-{k}") for k in range(3)]
    for w in workers:
        w.start()
    received = 0

    async def consume() -> None:
        nonlocal received
        async for _ in rx:
            received += 1
            if received % 50 == 0:
                await asyncio.sleep(0.001)  # a consumer that falls behind

    async with asyncio.TaskGroup() as tg:
        tg.create_task(consume())
        for w in workers:
            await w.join()
        tx.close()
    st = rx.statistics()
    assert st.sent == sum(accepted) == received
    assert st.sent + st.dropped == 9000
    assert st.dropped > 0


async def test_loop_producer_and_thread_consumer() -> None:
    tx, rx = bridge(8)
    delivered: list[int] = []

    def consume() -> int:
        for item in rx:  # ends when the loop closes the bridge
            delivered.append(item)
            if item % 500 == 0:
                time.sleep(0.01)  # a slow disk now and then
        return len(delivered)

    w = Worker(consume, name="consumer")
    w.start()
    for i in range(5000):
        assert await tx.asend(i) is True  # waits for room without blocking the loop
    tx.close()
    assert await w.join() == 5000
    assert delivered == list(range(5000))


async def test_loop_is_never_blocked_while_a_thread_consumer_is_slow() -> None:
    tx, rx = bridge(2)
    ticks = 0
    stop = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.002)

    def slow_consumer() -> None:
        for _ in rx:
            time.sleep(0.02)

    w = Worker(slow_consumer, name="slow")
    w.start()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(heartbeat())
        ticks_before = ticks
        for i in range(20):  # ~0.4 s of consumer time; the producer mostly waits for room
            await tx.asend(i)
        tx.close()
        await w.join()
        ticks_during = ticks - ticks_before
        stop.set()
    # A blocked loop would not tick at all while the producer waits; any healthy loop ticks
    # dozens of times. The bound is loose on purpose (busy CI machines).
    assert ticks_during >= 5


async def test_blocking_calls_refuse_to_run_on_the_loop() -> None:
    tx, rx = bridge(4)
    w = Worker(lambda: None, name="noop")
    w.start()
    for call in (
        lambda: tx.send(1),
        lambda: rx.receive(),
        lambda: rx.receive_batch(1),
        lambda: next(iter(rx)),
        lambda: w.join_blocking(),
    ):
        with pytest.raises(RuntimeError, match="event loop"):
            call()
    await w.join()


# ------------------------------------------------------------------------------ closing


async def test_close_releases_a_blocked_thread_sender() -> None:
    tx, rx = bridge(1)
    tx.send_nowait("fills it")
    w = Worker(tx.send, "waits for room", name="blocked sender")
    w.start()
    await await_until(lambda: rx.statistics().senders_waiting == 1, "sender to park")
    rx.close()
    with pytest.raises(BridgeClosed):
        await w.join()
    assert [i async for i in rx] == ["fills it"]  # the refused item was never queued
    assert rx.statistics().senders_waiting == 0


async def test_close_releases_a_waiting_loop_sender() -> None:
    tx, rx = bridge(1)
    tx.send_nowait("fills it")
    task = asyncio.create_task(tx.asend("waits"))
    await await_until(lambda: rx.statistics().senders_waiting == 1, "asend to park")
    Worker(rx.close, name="closer").start()  # closed from another thread
    with pytest.raises(BridgeClosed):
        await asyncio.wait_for(task, HANG)


async def test_close_from_a_thread_ends_a_waiting_loop_receiver() -> None:
    tx, rx = bridge(4)

    async def consume() -> list[Any]:
        return [i async for i in rx]

    task = asyncio.create_task(consume())
    await await_until(lambda: rx.statistics().receivers_waiting == 1, "receiver to park")

    def produce_then_close() -> None:
        tx.send("last")
        tx.close()

    w = Worker(produce_then_close, name="producer")
    w.start()
    assert await asyncio.wait_for(task, HANG) == ["last"]
    await w.join()


def test_close_ends_a_parked_thread_receiver() -> None:
    tx, rx = bridge(4)
    w = Worker(lambda: list(rx), name="reader")
    w.start()
    wait_until(lambda: rx.statistics().receivers_waiting == 1, "receiver to park")
    tx.close()
    assert w.join_blocking(HANG) == []


async def test_a_blocked_sender_proceeds_when_room_appears() -> None:
    tx, rx = bridge(1)
    tx.send_nowait(0)
    w = Worker(lambda: [tx.send(i) for i in range(1, 50)], name="sender")
    w.start()
    got = []
    for _ in range(50):
        got.append(await rx.areceive())
    assert got == list(range(50))
    assert await w.join() == [True] * 49


# ----------------------------------------------------------------------------- cancellation


async def test_cancelled_receiver_loses_no_item() -> None:
    tx, rx = bridge(4)
    task = asyncio.create_task(rx.areceive())
    await await_until(lambda: rx.statistics().receivers_waiting == 1, "receiver to park")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rx.statistics().receivers_waiting == 0
    tx.send_nowait("kept")
    assert await rx.areceive() == "kept"


async def test_cancelled_asend_queues_nothing() -> None:
    tx, rx = bridge(1)
    tx.send_nowait(0)
    task = asyncio.create_task(tx.asend(1))
    await await_until(lambda: rx.statistics().senders_waiting == 1, "sender to park")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    st = rx.statistics()
    assert (st.senders_waiting, st.queued, st.sent) == (0, 1, 1)


async def test_two_loop_receivers_share_the_stream() -> None:
    tx, rx = bridge(4)
    got: list[int] = []

    async def consume() -> None:
        async for item in rx:
            got.append(item)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(consume())
        tg.create_task(consume())
        for i in range(200):
            await tx.asend(i)
            if i % 7 == 0:
                await asyncio.sleep(0)
        tx.close()
    assert sorted(got) == list(range(200))


def test_a_closed_loop_is_tolerated_by_senders() -> None:
    tx, rx = bridge(4)
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(rx.areceive())
        loop.run_until_complete(asyncio.sleep(0.01))
        assert rx.statistics().receivers_waiting == 1
    finally:
        loop.close()  # the receiver's loop is gone with the receiver still parked
    assert tx.send_nowait("after the loop closed") is True  # the failed wake-up is swallowed
    assert rx.receive_nowait() == "after the loop closed"
    del task


# ------------------------------------------------------------------------------- workers


async def test_worker_exception_reaches_join() -> None:
    def fail() -> None:
        raise OSError(28, "No space left on device")

    w = Worker(fail, name="failing")
    w.start()
    with pytest.raises(OSError, match="No space left"):
        await w.join()
    with pytest.raises(OSError):  # every join sees it
        await w.join()
    assert w.done


async def test_worker_result_and_ready_handshake() -> None:
    release = threading.Event()
    box: dict[str, Worker[str]] = {}

    def run() -> str:
        box["w"].set_ready({"width": 640})
        release.wait(HANG)
        return "finished"

    w = box["w"] = Worker(run, name="device")
    w.start()
    assert await w.ready() == {"width": 640}
    assert not w.done
    release.set()
    assert await w.join() == "finished"


async def test_worker_ready_raises_when_fn_fails_or_returns_first() -> None:
    def fail_opening() -> None:
        raise ValueError("no camera at index 3")

    w1 = Worker(fail_opening, name="open fails")
    w1.start()
    with pytest.raises(ValueError, match="no camera"):
        await w1.ready()

    w2: Worker[None] = Worker(lambda: None, name="never ready")
    w2.start()
    with pytest.raises(RuntimeError, match="set_ready"):
        await w2.ready()
    await w2.join()


async def test_worker_join_can_be_cancelled_and_retried() -> None:
    release = threading.Event()
    w = Worker(release.wait, HANG, name="waits")
    w.start()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await w.join()
    release.set()
    assert await w.join() is True


def test_worker_threads_are_named_daemons_and_start_once() -> None:
    seen: dict[str, Any] = {}

    def run() -> None:
        t = threading.current_thread()
        seen.update(name=t.name, daemon=t.daemon)

    w = Worker(run, name="csv-writer notes")
    with pytest.raises(RuntimeError, match="never started"):
        w.join_blocking()
    w.start()
    with pytest.raises(RuntimeError, match="already started"):
        w.start()
    w.join_blocking(HANG)
    assert seen == {"name": "csv-writer notes", "daemon": True}


def test_worker_join_blocking_times_out() -> None:
    release = threading.Event()
    w = Worker(release.wait, name="waits")
    w.start()
    with pytest.raises(TimeoutError):
        w.join_blocking(0.05)
    release.set()
    assert w.join_blocking(HANG) is True


def test_a_failed_worker_never_joined_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def fail() -> None:
        raise RuntimeError("device vanished")

    held = [Worker(fail, name="forgotten")]
    held[0].start()
    wait_until(lambda: held[0].done and not held[0].alive, "worker to end")
    with caplog.at_level(logging.ERROR, logger="rpi_logger.io.bridge"):
        held.clear()  # the last reference: its failure was never retrieved
        gc.collect()
    assert any("forgotten" in r.getMessage() and r.exc_info for r in caplog.records)


# --------------------------------------------------------------------- interpreter exit


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )


def test_exit_closes_forgotten_bridges_so_writers_drain(tmp_path: Path) -> None:
    out = tmp_path / "rows.txt"
    proc = run_script(
        tmp_path,
        f"""
        from rpi_logger.io.bridge import EndOfStream, Worker, open_bridge

        tx, rx = open_bridge(10_000, name="rows")

        def writer():
            with open({str(out)!r}, "w") as f:
                try:
                    while True:
                        batch = rx.receive_batch(500, min_items=500)
                        f.write("".join(f"{{r}}\\n" for r in batch))
                except EndOfStream:
                    pass

        Worker(writer, name="writer").start()
        for i in range(1234):
            tx.send_nowait(i)
        # main ends without close() or join(): the exit hook must still get every row written
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().split() == [str(i) for i in range(1234)]


def test_exit_abandons_a_hung_worker_after_the_grace(tmp_path: Path) -> None:
    proc = run_script(
        tmp_path,
        """
        import logging, threading, time
        from rpi_logger.io import bridge

        logging.basicConfig(level=logging.WARNING)
        bridge.EXIT_GRACE_S = 0.2
        w = bridge.Worker(threading.Event().wait, name="hung device read")
        w.start()
        print("started", flush=True)
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert "started" in proc.stdout
    assert "hung device read" in proc.stderr  # named in the exit warning


async def test_a_worker_can_run_at_a_lower_priority() -> None:
    """Bulk work (encoding) yields the CPU to latency-bound threads: its nice value is its own,
    the rest of the process keeps its priority."""
    import os

    base = os.getpriority(os.PRIO_PROCESS, 0)

    def own_priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    worker = Worker(own_priority, name="bulk", nice=5)
    worker.start()
    assert await worker.join() == min(19, base + 5)
    assert os.getpriority(os.PRIO_PROCESS, 0) == base
