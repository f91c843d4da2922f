"""Trial bookkeeping shared by every module: the [start, stop) window on the host clock and
trial file names."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


def trial_stem(trial: int, part: int = 1) -> str:
    """`trial001`; a module restarted mid-trial writes its later files as `trial001_part2`."""
    return f"trial{trial:03d}" if part <= 1 else f"trial{trial:03d}_part{part}"


@dataclass(slots=True)
class TrialWindow:
    """The instants a trial keeps: `start_ns <= t < stop_ns` (stop is open until known)."""

    trial: int
    start_ns: int
    label: str | None = None
    part: int = 1
    stop_ns: int | None = None

    def accepts(self, t_mono_ns: int) -> bool:
        """Whether a sample taken at `t_mono_ns` belongs to this trial."""
        return t_mono_ns >= self.start_ns and (self.stop_ns is None or t_mono_ns < self.stop_ns)

    def started(self, t_mono_ns: int) -> bool:
        return t_mono_ns >= self.start_ns

    def finished(self, t_mono_ns: int) -> bool:
        """True once a sample at `t_mono_ns` proves no later sample can fall inside the trial."""
        return self.stop_ns is not None and t_mono_ns >= self.stop_ns

    @property
    def stem(self) -> str:
        return trial_stem(self.trial, self.part)


async def sleep_until(t_mono_ns: int) -> None:
    """Sleep on the loop until the host clock reaches `t_mono_ns`."""
    delay = (t_mono_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)
