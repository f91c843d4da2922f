"""A WebSocket-like reader that never reads cannot hold up the master or the other readers."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from tests.core.test_master import config

from rpi_logger.core.master import Master


async def test_a_stuck_subscriber_is_dropped_while_the_recording_and_others_go_on(
    tmp_path: Path, module_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rpi_logger")
    async with Master(config(tmp_path, module_dir)) as master:
        stuck = master.events.subscribe(name="ws stuck-phone", max_items=4, max_lag_drops=10)
        seen: list[dict[str, Any]] = []

        async def read() -> None:
            async with master.events.subscribe(name="ws tablet", max_items=1000) as sub:
                async for event in sub:
                    seen.append(event)

        async with asyncio.TaskGroup() as tg:
            reader = tg.create_task(read())
            await master.start_modules(["Ticker", "TickerB", "Notes"])
            await master.start_session("events")
            for _ in range(2):
                await master.start_trial()
                await asyncio.sleep(1.0)  # heartbeats and status events from three modules
                trial = await master.stop_trial()
                assert trial["status"] == "complete"
            await master.end_session()
            reader.cancel()

    trials = [e["data"] for e in seen if e.get("event") == "trial"]
    assert [(t["number"], t["state"]) for t in trials] == [
        (1, "recording"),
        (1, "complete"),
        (2, "recording"),
        (2, "complete"),
    ]
    assert sum(e.get("event") == "heartbeat" for e in seen) >= 6
    assert stuck.disconnected and stuck.received == 0
    logged = [r.getMessage() for r in caplog.records if "ws stuck-phone" in r.getMessage()]
    assert any("disconnect" in line for line in logged), logged
