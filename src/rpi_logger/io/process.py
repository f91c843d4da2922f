"""Ending a child process: wait, then SIGTERM, then SIGKILL, each with its timeout (design.md:
Modules and trials).

The one escalation in the package: the supervisor ends module processes with it (after its
``quit`` command), the ffmpeg video sink ends ffmpeg with it (after end of input).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence

log = logging.getLogger(__name__)

#: (signal to send first, or None to only wait; seconds to wait after it, None: no limit)
Step = tuple[signal.Signals | None, float | None]


def escalation(wait_s: float | None, term_s: float | None, kill_s: float | None) -> list[Step]:
    """The usual steps: wait `wait_s`, SIGTERM and wait `term_s`, SIGKILL and wait `kill_s`."""
    return [(None, wait_s), (signal.SIGTERM, term_s), (signal.SIGKILL, kill_s)]


async def stop_process(
    proc: asyncio.subprocess.Process,
    steps: Sequence[Step],
    *,
    name: str,
    exited: Callable[[], Awaitable[object]] | None = None,
) -> bool:
    """Wait for `proc` to exit, escalating through `steps`; True once it has exited, False if
    it outlived them all. `exited` replaces ``proc.wait`` when another task owns that wait."""
    wait = exited or proc.wait
    for sig, timeout in steps:
        if sig is not None:
            if proc.returncode is not None:
                return True
            log.warning("%s: did not exit, sending %s", name, sig.name)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await wait()
            return True
    return False
