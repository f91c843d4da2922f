"""The simulated Neon as a source: its time echo measured by the realtime API's own estimator,
periodic re-measurement, and a simulated disconnect seen as a stall and reconnected."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pupil_labs.realtime_api.time_echo import TimeOffsetEstimator

from rpi_logger.modules.eyetracker.backends.base import Connection, NeonOptions, TimeSync, host_ms
from rpi_logger.modules.eyetracker.backends.simulated import (
    DEVICE_OFFSET_NS,
    SimulatedNeon,
    TimeEchoServer,
    gaze_xy,
)
from rpi_logger.modules.eyetracker.streams.gaze import GazeSample


async def test_the_apis_estimator_measures_the_simulated_clock_offset() -> None:
    echo = TimeEchoServer()
    try:
        result = await TimeOffsetEstimator("127.0.0.1", echo.port).estimate(
            number_of_measurements=100,
            sleep_between_measurements_seconds=0.001,
            time_fn_ms=host_ms,
        )
    finally:
        echo.close()
    assert result is not None
    # The API's offset is host minus device, in ms (whole ms per echo; the mean resolves less).
    error_ms = -result.time_offset_ms.mean - DEVICE_OFFSET_NS / 1e6
    assert abs(error_ms) < 0.5, error_ms


async def test_periodic_sync_and_a_simulated_disconnect() -> None:
    options = NeonOptions(
        streams=("gaze",), sync_interval_s=1.0, sync_measurements=20, stall_timeout_s=0.5
    )
    source = SimulatedNeon(options)
    items: list[Any] = []
    try:
        async with asyncio.timeout(20), source:
            t0 = time.monotonic()
            disconnected = False
            async for item in source:
                items.append(item)
                if not disconnected and time.monotonic() - t0 > 2.2:
                    source.simulate_disconnect(1.0)
                    disconnected = True
                ups = [i for i in items if isinstance(i, Connection) and i.connected]
                if len(ups) == 2 and time.monotonic() - t0 > 5:
                    break
    finally:
        source.shutdown()
    syncs = [i.estimate for i in items if isinstance(i, TimeSync)]
    reasons = [s.source for s in syncs]
    assert reasons[0] == "connect" and "reconnect" in reasons and reasons.count("periodic") >= 2
    conns = [i for i in items if isinstance(i, Connection)]
    assert [c.connected for c in conns] == [True, False, True]
    assert conns[1].reason == "no gaze for 0.5 s"
    down = (conns[2].t_mono_ns - conns[1].t_mono_ns) / 1e9
    assert 0.3 <= down <= 3.0, down
    gaze = [i for i in items if isinstance(i, GazeSample)]
    times = [g.t_mono_ns for g in gaze]
    assert times == sorted(times)
    assert (
        max(
            max(abs(g.x - gaze_xy(g.t_mono_ns)[0]), abs(g.y - gaze_xy(g.t_mono_ns)[1]))
            for g in gaze
        )
        < 1.0
    )
