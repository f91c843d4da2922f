"""A module's real process driven over its protocol, as the master drives it, for tests that
need the process itself (heartbeats, exit status) without a master writing to the same disk."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

from rpi_logger.core.supervisor import ModuleProcess
from rpi_logger.framework import protocol
from rpi_logger.framework.discovery import discover_modules


@contextlib.asynccontextmanager
async def running_module(
    name: str, settings: dict[str, Any]
) -> AsyncIterator[tuple[ModuleProcess, list[float]]]:
    """The module's real process under a `ModuleProcess`, with the times of its heartbeats."""
    spec = next(s for s in discover_modules() if s.name == name and s.valid)
    beats: list[float] = []

    def on_event(_: ModuleProcess, ev: protocol.Event) -> None:
        if ev.event == protocol.EV_HEARTBEAT:
            beats.append(time.monotonic())

    proc = ModuleProcess(spec, simulate=True, on_event=on_event)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(proc.run())
        await proc.started()
        try:
            await proc.request("configure", {"settings": settings, "simulate": True}, timeout=30)
            yield proc, beats
        finally:
            await proc.stop(quit_timeout=20)


def assert_healthy(proc: ModuleProcess, beats: list[float], since: float) -> None:
    """Alive and beating. The supervisor's own watchdog kills a module silent for 1.5 s (its
    exit reason then says "hung"); this also catches beats that stopped altogether, with a bound
    loose enough for a busy machine."""
    assert proc.alive, proc.exit_reason
    times = [since, *[b for b in beats if b >= since], time.monotonic()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 3.0, f"heartbeats stopped for {max(gaps):.1f} s"
