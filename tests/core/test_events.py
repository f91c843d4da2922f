"""The event bus: a reader that keeps up gets every event in order while a stuck one is skipped,
logged and disconnected; nobody's queue grows past its bound; subscriptions end on exit; a
raising listener breaks nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from rpi_logger.core.events import EventBus, SubscriberDisconnected

LOGGER = "rpi_logger.core.events"


def ev(i: int) -> dict[str, Any]:
    return {"type": "heartbeat", "seq": i}


def lines(caplog: pytest.LogCaptureFixture, word: str, name: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if word in r.getMessage() and name in r.getMessage()
    ]


async def test_reader_gets_everything_while_a_stuck_subscriber_is_disconnected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    bus = EventBus(max_items=8, max_lag_drops=20)
    stuck = bus.subscribe(name="ws stuck-client")  # never reads
    got: list[int] = []

    async def read() -> None:
        async with bus.subscribe(name="ws good-client", max_items=64) as sub:
            async for event in sub:
                got.append(event["seq"])
                if event["seq"] == 499:
                    return

    reader = asyncio.create_task(read())
    await asyncio.sleep(0)  # the reader subscribes
    max_stuck_queue = 0
    for i in range(500):
        bus.publish(ev(i))  # synchronous: never waits for anyone
        max_stuck_queue = max(max_stuck_queue, stuck.queued)
        if i % 10 == 0:
            await asyncio.sleep(0)  # the reader gets to run now and then
    await asyncio.wait_for(reader, 10)

    assert got == list(range(500))  # every event, in order
    assert max_stuck_queue <= 8  # its memory stayed bounded
    assert stuck.disconnected and stuck.closed
    assert "lagging" in (stuck.closed_reason or "")
    # 8 queued + 20 skipped, then the overflow that disconnected it: none ever delivered.
    assert (stuck.received, stuck.dropped, stuck.queued) == (0, 29, 0)
    assert stuck not in bus.subscriptions
    with pytest.raises(SubscriberDisconnected) as err:
        await anext(stuck)
    assert err.value.name == "ws stuck-client" and err.value.dropped == 29

    assert len(lines(caplog, "is lagging", "ws stuck-client")) == 1  # once, not per drop
    assert len(lines(caplog, "disconnected", "ws stuck-client")) == 1
    assert not [r for r in caplog.records if "good-client" in r.getMessage()]


async def test_a_lagging_subscriber_keeps_the_newest_events_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    bus = EventBus(max_items=3, max_lag_drops=100)
    async with bus.subscribe(name="slow ui") as sub:
        for i in range(10):
            bus.publish(ev(i))
        assert sub.lagging and sub.dropped == 7
        assert [(await anext(sub))["seq"] for _ in range(3)] == [7, 8, 9]  # the newest state
        assert not sub.lagging  # drained its queue: caught up
        for i in range(10, 12):
            bus.publish(ev(i))
        assert [(await anext(sub))["seq"] for _ in range(2)] == [10, 11]
    assert len(lines(caplog, "is lagging", "slow ui")) == 1
    assert len(lines(caplog, "caught up after skipping 7 events", "slow ui")) == 1
    assert not lines(caplog, "disconnected", "slow ui")
    assert sub.closed_reason == "unsubscribed" and not sub.disconnected
    assert len(lines(caplog, "skipped for it in all", "slow ui")) == 1  # its total, on leaving


async def test_a_subscriber_on_the_edge_is_not_reported_at_every_spell(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    bus = EventBus(max_items=2, max_lag_drops=100)
    async with bus.subscribe(name="edge") as sub:
        for _ in range(20):  # lags and catches up twenty times within a second
            for i in range(3):
                bus.publish(ev(i))
            assert [(await anext(sub))["seq"] for _ in range(2)] == [1, 2]
    assert sub.dropped == 20 and not sub.disconnected
    assert len(lines(caplog, "is lagging", "edge")) == 1
    assert len(lines(caplog, "caught up", "edge")) == 1


async def test_lagging_count_restarts_after_catching_up() -> None:
    bus = EventBus(max_items=2, max_lag_drops=3)
    sub = bus.subscribe(name="bursty")
    for _ in range(3):  # three bursts, each skipping 3 (the limit) and then caught up
        for i in range(5):
            bus.publish(ev(i))
        assert [(await anext(sub))["seq"] for _ in range(2)] == [3, 4]
    assert not sub.closed and sub.dropped == 9
    sub.close()


async def test_zero_lag_budget_disconnects_instead_of_skipping() -> None:
    bus = EventBus(max_items=2)
    strict = bus.subscribe(name="recorder", max_lag_drops=0)
    for i in range(3):
        bus.publish(ev(i))
    assert strict.disconnected and strict.dropped == 3
    with pytest.raises(SubscriberDisconnected):
        async for _ in strict:
            pass


async def test_subscribers_see_events_in_publish_order_across_waits() -> None:
    bus = EventBus()
    got: dict[str, list[int]] = {"a": [], "b": []}

    async def read(name: str, n: int) -> None:
        async with bus.subscribe(name=name) as sub:
            async for event in sub:
                got[name].append(event["seq"])
                if len(got[name]) == n:
                    return

    async with asyncio.TaskGroup() as tg:
        tg.create_task(read("a", 50))
        tg.create_task(read("b", 50))
        await asyncio.sleep(0)
        for i in range(50):
            bus.publish(ev(i))
            await asyncio.sleep(0)  # readers are waiting: each publish wakes them
    assert got == {"a": list(range(50)), "b": list(range(50))}


async def test_leaving_the_block_unsubscribes_even_on_error() -> None:
    bus = EventBus()
    async with bus.subscribe(name="ws 1") as sub:
        assert bus.subscriptions == (sub,)
        bus.publish(ev(0))
        assert (await anext(sub))["seq"] == 0
    assert bus.subscriptions == () and sub.closed_reason == "unsubscribed"
    bus.publish(ev(1))  # reaches nobody, costs nothing
    assert sub.queued == 0
    assert [e async for e in sub] == []  # iteration of a closed subscription just ends

    with pytest.raises(ConnectionResetError):
        async with bus.subscribe(name="ws 2"):
            raise ConnectionResetError
    assert bus.subscriptions == ()


async def test_close_while_waiting_ends_iteration_after_queued_events() -> None:
    bus = EventBus()
    sub = bus.subscribe(name="ws")

    async def read() -> list[int]:
        return [e["seq"] async for e in sub]

    task = asyncio.create_task(read())
    await asyncio.sleep(0)
    bus.publish(ev(1))
    bus.publish(ev(2))
    bus.close()
    assert await asyncio.wait_for(task, 10) == [1, 2]
    assert sub.closed_reason == "bus closed"
    with pytest.raises(RuntimeError):
        bus.subscribe(name="late")


async def test_cancelled_reader_leaves_the_subscription_usable() -> None:
    bus = EventBus()
    sub = bus.subscribe(name="ws")
    task = asyncio.create_task(anext(sub))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    bus.publish(ev(5))
    assert (await anext(sub))["seq"] == 5
    sub.close()


async def test_listener_exceptions_are_contained_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    seen: list[int] = []

    def broken(event: dict[str, Any]) -> None:
        raise ValueError("bad listener")

    bus.add_listener(broken)
    remove = bus.add_listener(lambda e: seen.append(e["seq"]))
    async with bus.subscribe(name="ws") as sub:
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            for i in range(3):
                bus.publish(ev(i))  # never raises
        assert [(await anext(sub))["seq"] for _ in range(3)] == [0, 1, 2]
    assert seen == [0, 1, 2]
    assert bus.listener_errors == 3
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info and "bad listener" in str(errors[0].exc_info[1])
    remove()
    bus.publish(ev(3))
    assert seen == [0, 1, 2]


def test_listeners_work_without_a_loop_and_async_ones_are_refused() -> None:
    bus = EventBus()
    seen: list[dict[str, Any]] = []
    bus.add_listener(seen.append)
    bus.publish(ev(0))
    assert seen == [ev(0)] and bus.published == 1

    async def handler(event: dict[str, Any]) -> None:
        pass

    with pytest.raises(TypeError, match="async"):
        bus.add_listener(handler)


async def test_publish_off_the_loop_is_refused_when_subscribers_exist() -> None:
    bus = EventBus()
    async with bus.subscribe(name="ws"):
        errors: list[BaseException] = []

        def from_thread() -> None:
            try:
                bus.publish(ev(0))
            except RuntimeError as exc:
                errors.append(exc)

        t = threading.Thread(target=from_thread)
        t.start()
        await asyncio.to_thread(t.join)
        assert len(errors) == 1 and "bridge" in str(errors[0])


def test_subscribe_needs_a_running_loop_and_valid_sizes() -> None:
    bus = EventBus()
    with pytest.raises(RuntimeError):
        bus.subscribe(name="no loop")
    with pytest.raises(ValueError):
        EventBus(max_items=0)

    async def bad() -> None:
        bus.subscribe(name="x", max_items=0)

    with pytest.raises(ValueError):
        asyncio.run(bad())


async def test_one_subscription_read_by_two_tasks_is_refused() -> None:
    bus = EventBus()
    async with bus.subscribe(name="ws") as sub:
        first = asyncio.create_task(anext(sub))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="two tasks"):
            await anext(sub)
        bus.publish(ev(1))
        assert (await asyncio.wait_for(first, 10))["seq"] == 1
