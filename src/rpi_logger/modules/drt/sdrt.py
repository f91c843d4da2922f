"""The sDRT's lines turned into one record per stimulus, on the host clock, classified by us.

The sDRT reports a stimulus in pieces: ``stm>1`` when it lights (no time in it), ``clk>N`` per
button press, ``stm>0`` when it goes dark, and later ``trl>onset_ms,trial,rt_ms`` with the
onset on its own millisecond clock (rt -1: no response). `SdrtTracker` pairs each ``trl>``
with the arrival of its ``stm>1``, and a response's ``onset_ms + rt_ms`` with the arrival of its
first ``clk>``: those pairs feed the lower-envelope fit (`rpi_logger.io.clock_fit.DriftFit`),
and the onset is mapped through the fit as refitted then.
With ``mapped=False`` the onset is the ``stm>1`` arrival time (the peer logger's way; kept to
show what the mapping buys). Classification (the firmware does none): `classify`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from rpi_logger.io.clock_fit import DriftFit

log = logging.getLogger(__name__)

HIT_MIN_MS = 100
HIT_MAX_MS = 2500
MS = 1_000_000


def classify(rt_ms: float | None) -> str:
    """``hit`` 100-2500 ms after onset, ``premature`` sooner, ``late`` later, ``miss`` none."""
    if rt_ms is None or rt_ms < 0:
        return "miss"
    if rt_ms < HIT_MIN_MS:
        return "premature"
    if rt_ms > HIT_MAX_MS:
        return "late"
    return "hit"


@dataclass(frozen=True, slots=True)
class Stimulus:
    """One stimulus (a DRT CSV row, design.md §5, without the wall time)."""

    stimulus: int
    t_mono_ns: int
    t_device_ms: int
    rt_ms: int | None
    result: str
    clicks: int
    arrival_ns: int | None  # when its ``stm>1`` arrived (None if that line was lost)


class SdrtTracker:
    """Feeds on the sDRT's lines (text, host arrival); `line` returns a finished `Stimulus`."""

    def __init__(self, *, mapped: bool = True, fit: DriftFit | None = None) -> None:
        self.mapped = mapped
        self.fit = fit or DriftFit(source="sDRT trl/stm")
        self.malformed = 0
        self.clicks = 0  # presses since the last stimulus record
        self.stim_on = False
        self.config: dict[str, str] = {}
        self._onset_arrival: int | None = None
        self._click_arrival: int | None = None  # the first press after the onset

    def line(self, text: str, t_mono_ns: int) -> Stimulus | None:
        key, sep, value = text.partition(">")
        if not sep:
            return self._bad(text)
        if key == "stm":
            self.stim_on = value == "1"
            if self.stim_on:
                self._onset_arrival, self.clicks = t_mono_ns, 0
                self._click_arrival = None
        elif key == "clk":
            if self._click_arrival is None and self._onset_arrival is not None:
                self._click_arrival = t_mono_ns
            self.clicks += 1
        elif key == "cfg":
            pairs = (item.partition(":") for item in value.split(","))
            self.config = {k.strip(): v.strip() for k, s, v in pairs if s}
        elif key == "trl":
            return self._trial(text, value)
        elif key != "end":
            return self._bad(text)
        return None

    def _trial(self, text: str, value: str) -> Stimulus | None:
        try:
            onset_ms, number, rt = (int(v) for v in value.split(","))
        except ValueError:
            return self._bad(text)
        arrival, self._onset_arrival = self._onset_arrival, None
        click, self._click_arrival = self._click_arrival, None
        # The firmware truncates to whole ms: the onset lies in [ms, ms + 1), centre it.
        device_ns = onset_ms * MS + MS // 2
        if arrival is not None:
            self.fit.add(device_ns, arrival)
        if click is not None and rt >= 0:  # onset_ms + rt_ms is the press on the device clock
            self.fit.add(device_ns + rt * MS, click)
        if self.mapped and self.fit.ready:
            t = self.fit.to_host(device_ns)
        elif arrival is not None:
            t = arrival
        else:
            return self._bad(text)  # neither a fit nor an arrival: no host time for it
        rt_ms = None if rt < 0 else rt
        return Stimulus(number, t, onset_ms, rt_ms, classify(rt_ms), self.clicks, arrival)

    def remap(self, stimulus: Stimulus) -> Stimulus:
        """The stimulus with its onset mapped by the fit as it is now (at a trial's end, with
        every pair of the trial in the fit: the first stimuli get the drift too)."""
        if not (self.mapped and self.fit.ready):
            return stimulus
        t = self.fit.to_host(stimulus.t_device_ms * MS + MS // 2)
        return replace(stimulus, t_mono_ns=t)

    @property
    def pending_onset_ns(self) -> int | None:
        """The arrival of a lit stimulus's ``stm>1`` whose ``trl>`` line has not come yet."""
        return self._onset_arrival

    def link_lost(self) -> None:
        """The link dropped: a lit stimulus's ``trl>`` will not pair with its ``stm>1``."""
        self._onset_arrival, self._click_arrival, self.stim_on = None, None, False

    def _bad(self, text: str) -> None:
        self.malformed += 1
        log.warning("sDRT: malformed line %r (%d so far)", text[:80], self.malformed)
        return None
