"""LoopLagMonitor: near zero when idle, exposes a blocking callback, names it in debug mode."""

from __future__ import annotations

import asyncio
import logging
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpi_logger.io.loop_monitor import LagHistogram, LoopLagMonitor


async def test_idle_loop_shows_lag_near_zero() -> None:
    mon = LoopLagMonitor(interval_s=0.01)
    async with asyncio.TaskGroup() as tg:
        task = mon.start_in(tg)
        await asyncio.sleep(0.5)
        snap = mon.snapshot()
        task.cancel()
    assert set(snap) == {"p50", "p99", "max", "samples"}
    assert 25 <= snap["samples"] <= 55  # one sample per ~10 ms
    assert snap["p50"] < 2.0, snap  # epoll's 1 ms granularity is the floor
    assert snap["p99"] < 250.0, snap  # a busy machine delays some ticks; none by seconds
    assert not mon.running


def planted_blocking_callback() -> None:
    time.sleep(0.2)  # the kind of call design.md: Principles, 1 forbids on the loop


async def test_planted_sleep_shows_in_max_and_p99(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rpi_logger.loop")
    mon = LoopLagMonitor(interval_s=0.01)
    loop = asyncio.get_running_loop()
    async with asyncio.TaskGroup() as tg:
        task = mon.start_in(tg)
        await asyncio.sleep(0.1)
        before = mon.snapshot()
        mon.begin_trial()
        loop.call_soon(planted_blocking_callback)
        await asyncio.sleep(0.3)  # 0.2 s blocked, then ~10 normal samples
        trial = mon.end_trial()
        after = mon.snapshot()
        task.cancel()
    assert before["max"] < 150
    assert trial["max"] >= 190, trial
    assert trial["p99"] >= 190, trial  # ~11 samples: the blocked one is the 99th percentile
    assert trial["p50"] < 10, trial  # the other samples stay small
    assert after["max"] >= 190 and after["samples"] > trial["samples"]
    assert mon.trial_snapshot() == trial  # kept after end_trial
    lag_warnings = [r for r in caplog.records if "lagged" in r.getMessage()]
    assert len(lag_warnings) == 1 and lag_warnings[0].levelno == logging.WARNING


async def test_debug_mode_names_the_slow_callback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    mon = LoopLagMonitor(slow_callback_duration_s=0.05)
    loop.set_debug(True)
    try:
        async with asyncio.TaskGroup() as tg:
            task = mon.start_in(tg)
            await asyncio.sleep(0.03)
            assert loop.slow_callback_duration == 0.05

            def sluggish_preview_encoder() -> None:
                time.sleep(0.08)

            loop.call_soon(sluggish_preview_encoder)
            await asyncio.sleep(0.05)
            task.cancel()
    finally:
        loop.set_debug(False)
    ours = [r for r in caplog.records if r.name == "rpi_logger.loop" and "slow callback" in r.msg]
    assert ours, [r.getMessage() for r in caplog.records]
    assert ours[0].levelno == logging.WARNING
    assert "sluggish_preview_encoder" in ours[0].getMessage()
    assert not [r for r in caplog.records if r.name == "asyncio" and "Executing" in r.msg]
    assert mon.slow_callbacks == 1
    # Stopped cleanly: the filter is gone, asyncio logs as usual again.
    assert not logging.getLogger("asyncio").filters


async def test_cancellation_stops_cleanly_and_run_is_exclusive() -> None:
    mon = LoopLagMonitor()
    task = asyncio.create_task(mon.run())
    await asyncio.sleep(0.03)
    assert mon.running
    with pytest.raises(RuntimeError):
        await mon.run()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not mon.running
    n = mon.snapshot()["samples"]
    await asyncio.sleep(0.03)
    assert mon.snapshot()["samples"] == n  # no timer left behind


def test_lag_warnings_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rpi_logger.loop")
    mon = LoopLagMonitor(warn_threshold_ms=50, warn_every_s=60)
    for lag in (10, 60, 70, 80, 5):
        mon._record(lag)
    assert mon.lag_warnings == 3
    assert len([r for r in caplog.records if "lagged" in r.getMessage()]) == 1


def test_trials_are_separate() -> None:
    mon = LoopLagMonitor()
    assert mon.trial_snapshot() == {"p50": 0.0, "p99": 0.0, "max": 0.0, "samples": 0}
    mon.begin_trial()
    mon._record(100.0)
    assert mon.end_trial()["max"] == 100.0
    mon._record(300.0)  # between trials: whole-session only
    mon.begin_trial()
    mon._record(1.0)
    assert mon.end_trial() == {"p50": 1.0, "p99": 1.0, "max": 1.0, "samples": 1}
    assert mon.snapshot()["max"] == 300.0 and mon.snapshot()["samples"] == 3


def exact_percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(1, math.ceil(q * len(s))) - 1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0.01, max_value=10_000.0), min_size=1, max_size=300),
    st.sampled_from([0.5, 0.9, 0.99, 1.0]),
)
def test_histogram_percentiles_are_within_a_small_relative_error(
    values: list[float], q: float
) -> None:
    h = LagHistogram()
    for v in values:
        h.add(v)
    exact = exact_percentile(values, q)
    assert math.isclose(h.percentile(q), exact, rel_tol=0.006), (h.percentile(q), exact)
    assert h.max == max(values) and h.count == len(values)


def test_histogram_memory_is_fixed_for_long_sessions() -> None:
    h = LagHistogram()
    size = len(h._counts)
    for i in range(200_000):  # ~33 minutes at 100 Hz
        h.add((i % 1000) * 0.37)
    h.add(50_000.0)  # beyond the top bucket: counted, max exact
    assert len(h._counts) == size < 2000
    assert h.max == 50_000.0 and h.percentile(1.0) == 50_000.0
    assert h.percentile(0.0001) == 0.0 or h.percentile(0.0001) < 0.01
