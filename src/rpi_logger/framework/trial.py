"""Trial bookkeeping shared by every module: the [start, stop) window on the host clock, the
trial's timeline origin, trial file names, and the bounds a trial command's instants must meet."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

#: Highest trial number (and part number) a module accepts.
MAX_TRIAL = 999_999
#: How far ahead of now a start or stop instant may lie; beyond it is a mistake, not a plan.
MAX_AHEAD_NS = 24 * 3600 * 1_000_000_000
#: How far in the past a start instant may lie (a loaded machine delivers commands late).
START_TOLERANCE_NS = 1_000_000_000

_UNSET = -(2**63)  # origin_ns not given: the trial's origin is its first accepted instant


def trial_stem(trial: int, part: int = 1) -> str:
    """`trial001`; a module restarted mid-trial writes its later files as `trial001_part2`."""
    return f"trial{trial:03d}" if part <= 1 else f"trial{trial:03d}_part{part}"


@dataclass(slots=True)
class TrialWindow:
    """The instants a trial keeps: `start_ns <= t < stop_ns` (stop is open until known).

    `origin_ns` is the trial's own start on the host clock, the zero of its timeline: content
    is timed from it (a video frame's PTS is `t - origin_ns`). It equals `start_ns` unless the
    module was restarted mid-trial (part > 1), when it lies before `start_ns`. A stop between
    `origin_ns` and `start_ns` leaves the window empty.
    """

    trial: int
    start_ns: int
    label: str | None = None
    part: int = 1
    stop_ns: int | None = None
    origin_ns: int = _UNSET

    def __post_init__(self) -> None:
        if self.origin_ns == _UNSET:
            self.origin_ns = self.start_ns
        if self.origin_ns > self.start_ns:
            raise ValueError("a trial's origin cannot come after its start")

    def accepts(self, t_mono_ns: int) -> bool:
        """Whether a sample taken at `t_mono_ns` belongs to this trial."""
        return t_mono_ns >= self.start_ns and (self.stop_ns is None or t_mono_ns < self.stop_ns)

    def started(self, t_mono_ns: int) -> bool:
        return t_mono_ns >= self.start_ns

    def finished(self, t_mono_ns: int) -> bool:
        """True once a sample at `t_mono_ns` proves no later sample can fall inside the trial."""
        return self.stop_ns is not None and t_mono_ns >= self.stop_ns

    def offset_ns(self, t_mono_ns: int) -> int:
        """`t_mono_ns` on the trial's own timeline (0 at `origin_ns`): a frame's PTS."""
        return t_mono_ns - self.origin_ns

    @property
    def stem(self) -> str:
        return trial_stem(self.trial, self.part)


def start_window(
    trial: int,
    at_mono_ns: int,
    label: str | None = None,
    part: int = 1,
    origin_ns: int | None = None,
    *,
    now_ns: int,
    max_ahead_ns: int = MAX_AHEAD_NS,
    tolerance_ns: int = START_TOLERANCE_NS,
) -> TrialWindow:
    """The window a `start_trial` asks for, checked against `now_ns`.

    Raises `ValueError` with a message naming the argument when a number or instant is absurd.
    """
    if not 1 <= trial <= MAX_TRIAL:
        raise ValueError(f"trial must be 1..{MAX_TRIAL}, got {trial}")
    if not 1 <= part <= MAX_TRIAL:
        raise ValueError(f"part must be 1..{MAX_TRIAL}, got {part}")
    if at_mono_ns < now_ns - tolerance_ns:
        raise ValueError(
            f"at_mono_ns is {(now_ns - at_mono_ns) / 1e9:.3f} s in the past "
            f"(at most {tolerance_ns / 1e9:g} s allowed)"
        )
    _check_ahead(at_mono_ns, now_ns, max_ahead_ns)
    if origin_ns is None:
        origin_ns = at_mono_ns
    elif not 0 <= origin_ns <= at_mono_ns:
        raise ValueError(
            f"trial_start_mono_ns must be between 0 and at_mono_ns ({at_mono_ns}), got {origin_ns}"
        )
    return TrialWindow(trial, at_mono_ns, label, part, origin_ns=origin_ns)


def check_stop(
    window: TrialWindow, at_mono_ns: int, *, now_ns: int, max_ahead_ns: int = MAX_AHEAD_NS
) -> None:
    """Raise `ValueError` unless `at_mono_ns` can stop `window`: not before the trial's origin
    (before the window's start is fine: the window is then empty), not absurdly far ahead."""
    if at_mono_ns < window.origin_ns:
        raise ValueError(
            f"at_mono_ns ({at_mono_ns}) is before the trial's origin ({window.origin_ns})"
        )
    _check_ahead(at_mono_ns, now_ns, max_ahead_ns)


def _check_ahead(at_mono_ns: int, now_ns: int, max_ahead_ns: int) -> None:
    if at_mono_ns > now_ns + max_ahead_ns:
        raise ValueError(
            f"at_mono_ns is {(at_mono_ns - now_ns) / 1e9:.0f} s ahead "
            f"(at most {max_ahead_ns / 1e9:.0f} s allowed)"
        )


async def sleep_until(t_mono_ns: int) -> None:
    """Sleep on the loop until the host clock reaches `t_mono_ns`."""
    delay = (t_mono_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)
