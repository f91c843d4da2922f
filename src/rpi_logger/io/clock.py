"""The one host clock: CLOCK_MONOTONIC nanoseconds plus a wall-clock reading mapped onto it.

Every recorded row carries `t_mono_ns` and `t_wall_unix`. Wall time is derived from the monotonic
reading through a reference pair taken once per process, so wall times of one session never jump
when NTP steps the system clock mid-recording.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stamp:
    """One instant on the host clock."""

    t_mono_ns: int
    t_wall_unix: float

    def as_dict(self) -> dict[str, int | float]:
        """The manifest form: `{"mono_ns": ..., "wall_unix": ...}`."""
        return {"mono_ns": self.t_mono_ns, "wall_unix": self.t_wall_unix}


def _reference_pair() -> tuple[int, float]:
    # Bracket the wall reading between two monotonic readings and use their midpoint, so the
    # pair is accurate to the time the three calls take (well under a microsecond).
    m0 = time.monotonic_ns()
    w = time.time_ns()
    m1 = time.monotonic_ns()
    return (m0 + m1) // 2, w / 1e9


_REF_MONO_NS, _REF_WALL = _reference_pair()


def mono_to_wall(t_mono_ns: int) -> float:
    """UTC seconds for a host monotonic time, through this process's reference pair."""
    return _REF_WALL + (t_mono_ns - _REF_MONO_NS) / 1e9


def now() -> Stamp:
    """Both clocks in one call."""
    t = time.monotonic_ns()
    return Stamp(t, mono_to_wall(t))


def stamp(t_mono_ns: int) -> Stamp:
    """The `Stamp` for a monotonic time taken elsewhere (e.g. a device timestamp)."""
    return Stamp(t_mono_ns, mono_to_wall(t_mono_ns))
