"""A device clock fitted onto the host clock from its stamped lines: offset and drift.

Each pair is a device time (the device's own stamp of an event) and the host time at which the
line telling of it arrived. A line is never early: ``arrival = true host time + latency``, with
latency >= 0. So the true mapping ``host = a + b * device`` runs at or below every pair: the
lower envelope.

- The drift (`b`, e.g. 1 - 100e-6 for a clock 100 ppm fast) is the median of the slopes between
  pairs at least `min_span_ns` / 5 apart (Theil-Sen, on at most `SLOPE_POINTS` pairs spread
  over the span). Latencies come and go at random, so every pair tells of the slope and the
  median hears them all, and a late outlier (a busy host's read) moves it little. The edge of
  the lower convex hull, which we used first, rests on two pairs: 300 ideal 45 s DRT runs put
  one onset of 1.3 % of them more than 2 ms off, against none with the median.
- The offset (`a`) is the lower envelope under that slope: the line touches the pair that
  arrived soonest, and runs at or below every other.

With one pair, or pairs spanning less than `min_span_ns` of device time (two lines 250 ms
apart would give any drift their latencies say), the drift is taken as none. The fit is redone
as each pair arrives, and `estimate()` gives a time-sync CSV row (`clock_map.time_sync_row`): the
offset device minus host at a host time, the spread of the latencies above the line as `std_ns`,
and the smallest latency seen as `roundtrip_ns`.
"""

from __future__ import annotations

import statistics
import threading

from rpi_logger.io.clock_map import OffsetEstimate

#: Pairs the slope is taken from at most (spread evenly over the span): ~2000 slopes a refit.
SLOPE_POINTS = 64


def _median_slope(pts: list[tuple[int, int]], min_dx: float) -> float:
    """The median slope between pairs at least `min_dx` apart (1.0 when none are)."""
    step = max(1, len(pts) // SLOPE_POINTS)
    sample = pts[::step]
    slopes = [
        (q[1] - p[1]) / (q[0] - p[0])
        for i, p in enumerate(sample)
        for q in sample[i + 1 :]
        if q[0] - p[0] >= min_dx
    ]
    return statistics.median(slopes) if slopes else 1.0


class DriftFit:
    """Offset on the lower envelope, drift from the median slope (module docstring). Thread-safe."""

    def __init__(
        self,
        *,
        max_points: int = 4096,
        source: str = "lower-envelope",
        min_span_ns: int = 10_000_000_000,
    ) -> None:
        self.max_points = max_points
        self.min_span_ns = min_span_ns
        self.source = source
        self._points: list[tuple[int, int]] = []  # (device ns, arrival ns)
        self._a = 0.0  # host = a + b * device
        self._b = 1.0
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """True once a pair was added."""
        return bool(self._points)

    @property
    def points(self) -> int:
        return len(self._points)

    @property
    def drift_ppm(self) -> float:
        """How much faster the device clock runs than the host's, in ppm."""
        return (1 / self._b - 1) * 1e6 if self._b else 0.0

    def add(self, t_device_ns: int, t_arrival_ns: int) -> None:
        """One pair: a device stamp and the host arrival of its line. Refits."""
        with self._lock:
            self._points.append((t_device_ns, t_arrival_ns))
            if len(self._points) > self.max_points:
                del self._points[0]
            self._fit()

    def _fit(self) -> None:
        pts = sorted(self._points)
        if len(pts) == 1 or pts[-1][0] - pts[0][0] < max(1, self.min_span_ns):
            x, y = min(pts, key=lambda p: p[1] - p[0])
            self._a, self._b = float(y - x), 1.0
            return
        self._b = _median_slope(pts, self.min_span_ns / 5)
        self._a = float(min(y - self._b * x for x, y in pts))

    def to_host(self, t_device_ns: int) -> int:
        """The host time of a device time. Raises RuntimeError before the first pair."""
        with self._lock:
            if not self._points:
                raise RuntimeError("no device time pairs yet")
            return round(self._a + self._b * t_device_ns)

    def estimate(self, t_mono_ns: int) -> OffsetEstimate:
        """The fit as an offset estimate at a host time (for the time-sync CSV)."""
        with self._lock:
            if not self._points:
                raise RuntimeError("no device time pairs yet")
            a, b = self._a, self._b
            latencies = [y - (a + b * x) for x, y in self._points]
        t_device = (t_mono_ns - a) / b
        n = len(latencies)
        mean = sum(latencies) / n
        std = (sum((v - mean) ** 2 for v in latencies) / n) ** 0.5
        offset = round(t_device - t_mono_ns)
        return OffsetEstimate(
            t_mono_ns=t_mono_ns,
            offset_ns=offset,
            std_ns=round(std),
            roundtrip_ns=round(min(latencies)),
            mean_ns=offset,
            median_ns=offset,
            measurements=n,
            source=f"{self.source} drift {self.drift_ppm:+.1f} ppm",
        )
