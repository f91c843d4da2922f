"""Our own per-trial totals of the lenses, from their reported states on the host clock.

TSOT (total shutter open time) and TTT (total task time) as the goggles report them count the
device's own timers, which only see the changes the firmware makes itself: a lens set directly
(direct mode, the ``lens`` command) is counted as closed, and a trial cut by an unplug reports
only its part after the re-plug. `LensTotals` counts from the lens lines instead: the time each
state held, at the host arrival of the line that reported it, clipped to the trial's window and
ending when the device reports the end of its trial (an eBlindfold press) until its next lens
report. ``open_ms`` is our TSOT, ``total_ms`` = open + closed our TTT (the device's sum, too);
``unknown_ms`` is time the state was not known (before the first report, while disconnected),
in neither.
"""

from __future__ import annotations

from typing import Any

from rpi_logger.framework.trial import TrialWindow

MS = 1_000_000


class LensTotals:
    """Open, closed and unknown lens time within one trial's window (host ns)."""

    def __init__(self, window: TrialWindow, state: bool | None) -> None:
        self.window = window
        self.state = state  # True open, False closed, None unknown
        self.counting = True
        self._t = window.start_ns
        self._ns = {True: 0, False: 0, None: 0}

    def _span(self, t: int) -> int:
        stop = self.window.stop_ns
        end = t if stop is None else min(t, stop)
        return max(0, end - self._t)

    def _advance(self, t: int) -> None:
        span = self._span(t)
        if span:
            if self.counting:
                self._ns[self.state] += span
            self._t += span

    def lens(self, t: int, state: bool | None) -> None:
        """The lenses reported `state` at host time `t` (the device's trial is running)."""
        self._advance(t)
        self.state, self.counting = state, True

    def unknown(self, t: int) -> None:
        """The state is not known from `t` (the device went away)."""
        self._advance(t)
        self.state = None

    def device_end(self, t: int) -> None:
        """The device ended its trial at `t`: nothing counts until its next lens report."""
        self._advance(t)
        self.counting = False

    def as_dict(self, until: int) -> dict[str, Any]:
        """The totals up to `until` (clipped to the window), in whole ms."""
        ns = dict(self._ns)
        if self.counting:
            ns[self.state] += self._span(until)
        opened, closed = round(ns[True] / MS), round(ns[False] / MS)
        return {
            "open_ms": opened,
            "closed_ms": closed,
            "total_ms": opened + closed,
            "unknown_ms": round(ns[None] / MS),
        }
