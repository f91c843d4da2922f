"""A module told to quit may take a while to exit after its last heartbeat (its threads finish
their last flushes at interpreter exit, up to 3 s): the master's hang watchdog must leave that
to the stop escalation (quit, SIGTERM, SIGKILL) instead of killing it as "hung" mid-exit.

Seen with the VOG module in about 1 of 6 `record` runs: "VOG: hung: no heartbeat for 1.5 s;
killing it" right after "VOG: shutting down (quit command)"."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from rpi_logger.core.master import Master, MasterConfig

SLOW_EXIT = """
import threading
import time

from rpi_logger.framework.base import Module


class SlowExit(Module):
    async def shutdown(self) -> None:
        # A non-daemon thread: the interpreter waits for it after the runtime has ended (and
        # the heartbeats with it), as it waits for writer threads finishing their last flush.
        threading.Thread(target=time.sleep, args=(2.5,), name="last-flush").start()


def create_module(context):
    return SlowExit(context)
"""


async def test_a_module_exiting_after_quit_is_not_killed_as_hung(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "modules" / "slowexit"
    folder.mkdir(parents=True)
    (folder / "config.txt").write_text("name = SlowExit\nenabled = true\n")
    (folder / "main.py").write_text(SLOW_EXIT)
    config = MasterConfig(
        data_dir=tmp_path / "data", module_dirs=[folder.parent], state_path=tmp_path / "state"
    )
    async with Master(config) as master:
        assert await master.start_modules(["SlowExit"]) == {"SlowExit": None}
        await asyncio.sleep(1.2)  # heartbeats seen: the watchdog is on its short timeout
        proc = master.modules["SlowExit"].proc
        assert proc is not None and proc.proc is not None
        with caplog.at_level(logging.ERROR):
            await master.registry.stop_all()
        code = proc.proc.returncode
    assert code == 0, [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
