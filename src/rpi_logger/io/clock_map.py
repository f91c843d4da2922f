"""A device's clock mapped onto the host clock from offset estimates made over time.

A device that stamps its samples with its own clock (the Neon's phone, a DRT's millisecond
counter) is put on the host clock (`time.monotonic_ns()`) with measured offsets: an
`OffsetEstimate` says that at host time `t_mono_ns` the device's clock read `offset_ns` more
than the host's. `ClockMap` keeps the accepted estimates as knots of a piecewise-linear offset
over device time and maps a device time with the offset in force at that time:

- Before the first knot and after the last one the nearest estimate holds (no extrapolation of
  a drift the estimates never showed); between two knots the offset is interpolated.
- **Live** (the default: samples are mapped as they arrive), a new estimate never moves rows
  already written: it takes over from the moment it is added, slewed from the offset then in
  force over `slew_ns` of device time (at least `min_slew_ns`, longer for a big change, so the
  mapping's slope stays within 1 +- `max_slew_rate`). The mapping is therefore continuous and
  strictly increasing: it never steps, backwards or forwards.
- Offline (`live=False`: a whole file mapped afterwards), each estimate is a knot at its own
  device time and the offset is interpolated between estimates.
- An estimate whose round trip exceeds `max_roundtrip_ns` is rejected (kept with
  ``accepted=False`` for the time-sync file, never used).

`TIME_SYNC_COLUMNS` and `time_sync_row` give the time-sync CSV (design.md: Timing files): the
required `t_mono_ns, t_wall_unix, offset_ns, std_ns, roundtrip_ns, accepted` plus the
estimate's mean, median, when it was measured and how many measurements made it.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, replace

from rpi_logger.io.clock import mono_to_wall

TIME_SYNC_COLUMNS = (
    "t_mono_ns",
    "t_wall_unix",
    "offset_ns",
    "std_ns",
    "roundtrip_ns",
    "accepted",
    "mean_offset_ns",
    "median_offset_ns",
    "measured_mono_ns",
    "measurements",
    "source",
)


@dataclass(frozen=True, slots=True)
class OffsetEstimate:
    """One measurement of a device clock against the host clock.

    `offset_ns` is device minus host (the value the map uses), `std_ns` its spread,
    `roundtrip_ns` the measurement's round trip (mean over its measurements); `mean_ns` and
    `median_ns` are the statistics it came from, when it had several.
    """

    t_mono_ns: int
    offset_ns: int
    std_ns: int = 0
    roundtrip_ns: int = 0
    mean_ns: int | None = None
    median_ns: int | None = None
    measurements: int = 1
    accepted: bool = True
    source: str = ""

    @property
    def t_device_ns(self) -> int:
        """The device's time at the measurement."""
        return self.t_mono_ns + self.offset_ns


def time_sync_row(estimate: OffsetEstimate, t_mono_ns: int | None = None) -> tuple:
    """The time-sync CSV row of `estimate` (columns `TIME_SYNC_COLUMNS`). `t_mono_ns` is the
    row's place in the file (default: when it was measured)."""
    t = estimate.t_mono_ns if t_mono_ns is None else t_mono_ns
    return (
        t,
        mono_to_wall(t),
        estimate.offset_ns,
        estimate.std_ns,
        estimate.roundtrip_ns,
        int(estimate.accepted),
        estimate.mean_ns,
        estimate.median_ns,
        estimate.t_mono_ns,
        estimate.measurements,
        estimate.source,
    )


class ClockMapError(RuntimeError):
    """A device time was mapped before any estimate was accepted."""


class ClockMap:
    """Device time -> host time from offset estimates (module docstring). Thread-safe: a device
    thread may add estimates while another maps."""

    def __init__(
        self,
        *,
        max_roundtrip_ns: int | None = None,
        live: bool = True,
        min_slew_ns: int = 1_000_000_000,
        max_slew_rate: float = 0.01,
    ) -> None:
        if not 0 < max_slew_rate < 1:
            raise ValueError(f"max_slew_rate must be in (0, 1), got {max_slew_rate}")
        self.max_roundtrip_ns = max_roundtrip_ns
        self.live = live
        self.min_slew_ns = min_slew_ns
        self.max_slew_rate = max_slew_rate
        self.estimates: list[OffsetEstimate] = []  # every estimate, rejected ones included
        self._knot_t: list[int] = []  # device times, increasing
        self._knot_off: list[int] = []  # offset (device - host) at each knot
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """True once an estimate was accepted (only then can times be mapped)."""
        return bool(self._knot_t)

    @property
    def current(self) -> OffsetEstimate | None:
        """The latest accepted estimate."""
        for est in reversed(self.estimates):
            if est.accepted:
                return est
        return None

    def add(self, estimate: OffsetEstimate) -> OffsetEstimate:
        """Take an estimate; returns it with `accepted` decided (round trip against the
        threshold). Rejected estimates are kept in `estimates` but never used."""
        limit = self.max_roundtrip_ns
        accepted = estimate.accepted and (limit is None or estimate.roundtrip_ns <= limit)
        estimate = replace(estimate, accepted=accepted)
        with self._lock:
            self.estimates.append(estimate)
            if accepted:
                self._add_knots(estimate)
        return estimate

    def _add_knots(self, est: OffsetEstimate) -> None:
        t_dev = est.t_device_ns
        if not self._knot_t:
            self._knot_t.append(t_dev)
            self._knot_off.append(est.offset_ns)
            return
        if not self.live:
            i = bisect.bisect_left(self._knot_t, t_dev)
            if i < len(self._knot_t) and self._knot_t[i] == t_dev:
                self._knot_off[i] = est.offset_ns
            else:
                self._knot_t.insert(i, t_dev)
                self._knot_off.insert(i, est.offset_ns)
            return
        # Live: from now on (never before the last knot), slew from the offset in force.
        start = max(t_dev, self._knot_t[-1])
        in_force = self._offset_at(start)
        change = abs(est.offset_ns - in_force)
        slew = max(self.min_slew_ns, int(change / self.max_slew_rate))
        if start > self._knot_t[-1]:
            self._knot_t.append(start)
            self._knot_off.append(in_force)
        self._knot_t.append(start + slew)
        self._knot_off.append(est.offset_ns)

    def _offset_at(self, t_device_ns: int) -> float:
        ts, offs = self._knot_t, self._knot_off
        if not ts:
            raise ClockMapError("no clock offset estimate yet")
        if t_device_ns <= ts[0]:
            return offs[0]
        if t_device_ns >= ts[-1]:
            return offs[-1]
        i = bisect.bisect_right(ts, t_device_ns)
        t0, t1, o0, o1 = ts[i - 1], ts[i], offs[i - 1], offs[i]
        return o0 + (o1 - o0) * (t_device_ns - t0) / (t1 - t0)

    def offset_at(self, t_device_ns: int) -> int:
        """The offset (device - host, ns) in force at a device time."""
        with self._lock:
            return round(self._offset_at(t_device_ns))

    def to_host(self, t_device_ns: int) -> int:
        """The host time (`time.monotonic_ns()` scale) of a device time. Raises `ClockMapError`
        before the first accepted estimate."""
        with self._lock:
            return t_device_ns - round(self._offset_at(t_device_ns))
