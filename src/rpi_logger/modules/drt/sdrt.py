"""The sDRT's lines turned into one record per stimulus, on the host clock, classified by us.

The sDRT reports a stimulus in pieces: ``stm>1`` when it lights (no time in it), ``clk>N`` per
button press, ``stm>0`` when it goes dark, and later ``trl>onset_ms,trial,rt_ms`` with the
onset on its own millisecond clock (rt -1: no response). `SdrtTracker` pairs each ``trl>``
with the arrival of its ``stm>1``, and a response's ``onset_ms + rt_ms`` with the arrival of its
first ``clk>``, and its ``stm>0`` with the press or, for a miss, onset + stimDur (a firmware
late to dark it only looks like more latency): those pairs feed the lower-envelope fit
(`rpi_logger.io.clock_fit.DriftFit`), and the onset is mapped through the fit as refitted then.
With ``mapped=False`` the onset is the ``stm>1`` arrival time (the peer logger's way; kept to
show what the mapping buys). Classification (the firmware does none): `classify`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from rpi_logger.io.clock_fit import DriftFit

log = logging.getLogger(__name__)

HIT_MIN_MS = 100
HIT_MAX_MS = 2500
MS = 1_000_000
LOG_EVERY_S = 5.0
#: A pair this far off the fit means the device clock restarted, not latency.
CLOCK_JUMP_NS = 1_000_000_000
KEEP_FITS = 4


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
    block: int = 0  # the wDRT's block (its clock restarts at each): which fit maps it
    device_unix: int | None = None  # the wDRT's RTC (whole s) when its results were sent
    run: int = 1  # the device's run in the trial: +1 when it restarts after a re-plug


class SdrtTracker:
    """Feeds on the sDRT's lines (text, host arrival); `line` returns a finished `Stimulus`."""

    name = "sDRT"

    def __init__(self, *, mapped: bool = True, fit: DriftFit | None = None) -> None:
        self.mapped = mapped
        self.fit = fit or DriftFit(source="sDRT trl/stm")
        self.malformed = 0
        self._last_log = -LOG_EVERY_S
        self.clicks = 0  # presses since the last stimulus record
        self.stim_on = False
        self.config: dict[str, str] = {}
        self._onset_arrival: int | None = None
        self._click_arrival: int | None = None  # the first press after the onset
        self._off_arrival: int | None = None  # the stimulus went dark
        self._block = 0  # +1 each time the device clock restarts: a new fit
        self._fits: dict[int, DriftFit] = {0: self.fit}

    def line(self, text: str, t_mono_ns: int, t_wall: float | None = None) -> Stimulus | None:
        """One line and its host arrival (`t_wall`: the same instant on the wall clock)."""
        key, sep, value = text.partition(">")
        if not sep:
            return self._bad(text)
        if key == "stm":
            self.stim_on = value == "1"
            if self.stim_on:
                self._onset_arrival, self.clicks = t_mono_ns, 0
                self._click_arrival = self._off_arrival = None
            elif self._onset_arrival is not None and self._off_arrival is None:
                self._off_arrival = t_mono_ns
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
        if arrival is not None and self._clock_jumped(device_ns, arrival):
            self._new_block()
        if arrival is not None:
            self.fit.add(device_ns, arrival)
        if click is not None and rt >= 0:  # onset_ms + rt_ms is the press on the device clock
            self.fit.add(device_ns + rt * MS, click)
        off, self._off_arrival = self._off_arrival, None
        off_ms = self._off_ms(rt)
        if off is not None and off_ms is not None:  # dark at the press or after stimDur
            self.fit.add(device_ns + off_ms * MS, off)
        if self.mapped and self.fit.ready:
            t = self.fit.to_host(device_ns)
        elif arrival is not None:
            t = arrival
        else:
            return self._bad(text)  # neither a fit nor an arrival: no host time for it
        rt_ms = None if rt < 0 else rt
        return Stimulus(
            number, t, onset_ms, rt_ms, classify(rt_ms), self.clicks, arrival, block=self._block
        )

    def _off_ms(self, rt: int) -> int | None:
        """When the stimulus went dark, in ms after its onset: at a press while lit, else after
        stimDur (the firmware may be late to dark it: that only looks like more latency)."""
        dur = self.config.get("stimDur", "")
        if not dur.isdigit():
            return rt if rt >= 0 else None
        return rt if 0 <= rt < int(dur) else int(dur)

    def remap(self, stimulus: Stimulus) -> Stimulus:
        """The stimulus with its onset mapped by its clock's fit as it is now (at a trial's end,
        with every pair of the trial in the fit: the first stimuli get the drift too)."""
        fit = self._fits.get(stimulus.block)
        if not (self.mapped and fit is not None and fit.ready):
            return stimulus
        return replace(stimulus, t_mono_ns=fit.to_host(self.device_ns_of(stimulus)))

    def device_ns_of(self, stimulus: Stimulus) -> int:
        """A stimulus's onset on the device clock, in ns (the centre of its whole ms)."""
        return stimulus.t_device_ms * MS + MS // 2

    # -- the device clock ------------------------------------------------------------------------
    def _clock_jumped(self, device_ns: int, arrival: int) -> bool:
        """The device clock restarted (a power-cycled device counts from 0 again): a pair
        more than `CLOCK_JUMP_NS` off the fit cannot be latency."""
        fit = self.fit
        return fit.ready and abs(arrival - fit.to_host(device_ns)) > CLOCK_JUMP_NS

    def _new_block(self) -> None:
        """A new device clock: a fit of its own (rows keep the fit of their own clock)."""
        self._block += 1
        self.fit = DriftFit(source=f"{self.name} clock {self._block}")
        self._fits[self._block] = self.fit
        for old in [b for b in self._fits if b <= self._block - KEEP_FITS]:
            del self._fits[old]

    @property
    def pending_onset_ns(self) -> int | None:
        """The arrival of a lit stimulus's ``stm>1`` whose ``trl>`` line has not come yet."""
        return self._onset_arrival

    def pending_settled(self, now_ns: int) -> bool:
        """Whether a stop may stop waiting for the lit stimulus (sDRT: only its ``trl>``)."""
        return False

    def close_pending(self) -> Stimulus | None:
        """The lit stimulus at a trial's stop, when it can be written without its last line
        (sDRT: never; its ``trl>`` carries its onset)."""
        return None

    def link_lost(self) -> None:
        """The link dropped: a lit stimulus's ``trl>`` will not pair with its ``stm>1``."""
        self._onset_arrival, self._click_arrival, self.stim_on = None, None, False

    def _bad(self, text: str) -> None:
        """A line we cannot use: counted; logged at most every `LOG_EVERY_S` (a flood of junk
        must not flood the log)."""
        self.malformed += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            log.warning("%s: malformed line %r (%d so far)", self.name, text[:80], self.malformed)
        return None
