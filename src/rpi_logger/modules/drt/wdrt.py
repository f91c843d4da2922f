"""The wDRT (Red Scientific wireless DRT, design.md §6): its lines and commands, as its firmware
speaks them.

Commands are ``key>value`` lines, at least 20 ms apart (the firmware reads a 10 ms chunk as one
command: the transport's ``command_gap_s``): ``trl>1``/``trl>0`` start and stop a block,
``dev>1``/``dev>0`` light the stimulus by hand (no line comes back), ``dev>iso`` the ISO preset,
``set>K:V,K:V`` several settings in one command (colons: the peer logger's ``key,value`` never
takes effect), ``get_cfg>`` (each of these three replies ``cfg>`` with the whole config),
``get_bat>`` (``bty>N``), ``set_rtc>Y,M,D,weekday,H,M,S,subseconds`` (`rtc_command`; replied
``rtc>`` with the RTC's tuple, `parse_rtc`).

A block (``trl>1``) starts with a pulse and a random ISI (the firmware reads no command during
it), then its block clock starts at 0 and stimulus 1 is lit at once. Stimulus k: ``stm>1`` and
``trl>k`` at onset, ``rt>us`` (µs since onset) and ``clk>n`` per press, ``stm>0``, and at the END
of its ISI, right before onset k+1, ``dta>block_ms,k,clicks,rt_ms,battery,unix``: block_ms is
read the instant the line is sent, so the onset of stimulus k+1 is at the block_ms of dta k on
the block clock (stimulus 1's at 0). ``trl>0`` lets the lit stimulus finish its ISI and send its
``dta>``.

`WdrtTracker` turns these into `Stimulus` rows. Its clock fit is PER BLOCK: the block clock
restarts at 0 at each block, at an instant the device does not report (after a random ISI), so
pairs of two blocks share no origin; a block's own pairs give its offset and drift (a trial is
one block, so each trial is fitted on its own; a block shorter than the fit's 10 s minimum span
gets no drift). The pairs: every ``dta>`` (its block_ms), the ``stm>1`` and ``trl>k`` of an
onset (at the onset), the first press's ``rt>`` and ``clk>`` (onset + rt), the ``stm>0`` (at the
press, or onset + ONTM for a miss: the firmware's sleep may run late, which only adds latency).
A stimulus's row comes with its ``dta>``, one ISI after its onset; `close_pending` writes the lit
stimulus from its own lines when a trial stops before its ``dta>`` came.
"""

from __future__ import annotations

import calendar
import datetime as dt

from rpi_logger.io.clock_fit import DriftFit
from rpi_logger.modules.drt.sdrt import HIT_MAX_MS, MS, SdrtTracker, Stimulus, classify

END = b"\n"
#: Our setting names to the firmware's keys.
KEYS = {"stimDur": "ONTM", "lowerISI": "ISIL", "upperISI": "ISIH", "intensity": "SPCT"}
#: The firmware's ``dev>iso`` preset.
ISO = {"ONTM": 1000, "ISIL": 3000, "ISIH": 5000, "DBNC": 100, "SPCT": 100}
#: A press arrives within this long of the end of the hit window, or it is no hit.
_SETTLE_NS = 200 * MS


def device_values(wanted: dict[str, int]) -> dict[str, int]:
    """Our settings in the firmware's keys: the intensity (0-255, the sDRT's) as SPCT percent."""
    values = {KEYS[k]: v for k, v in wanted.items()}
    if "SPCT" in values:
        values["SPCT"] = round(values["SPCT"] * 100 / 255)
    return values


def set_command(values: dict[str, int]) -> bytes:
    """One ``set>K:V,K:V`` for all the settings (colons; the firmware splits pairs at commas)."""
    return ("set>" + ",".join(f"{k}:{v}" for k, v in values.items())).encode() + END


def rtc_command(t_wall_unix: int) -> bytes:
    """``set_rtc>`` with a whole UTC second (pyb.RTC's tuple: weekday Monday=1; the firmware
    ignores the subseconds and starts the second when set, so send it on the second)."""
    d = dt.datetime.fromtimestamp(t_wall_unix, dt.UTC)
    fields = (d.year, d.month, d.day, d.isoweekday(), d.hour, d.minute, d.second, 0)
    return ("set_rtc>" + ",".join(str(v) for v in fields)).encode() + END


def parse_rtc(value: str) -> float:
    """The unix time of an ``rtc>`` tuple (a pyboard's subseconds count down 255 to 0 through
    each second). Raises ValueError when it is not one."""
    y, mo, d, _, h, mi, s, sub = (int(v) for v in value.split(","))
    return calendar.timegm((y, mo, d, h, mi, s)) + (255 - sub) / 256


class WdrtTracker(SdrtTracker):
    """wDRT lines to classified stimuli on the host clock (module docstring)."""

    name = "wDRT"

    def __init__(self, *, mapped: bool = True) -> None:
        super().__init__(mapped=mapped, fit=DriftFit(source="wDRT block 0"))
        self.battery: int | None = None
        self.rtc_unix: float | None = None  # the device's RTC at its last rtc> line
        self.rtc_minus_host_s: float | None = None
        self.stale = 0  # dta> lines of no lit stimulus (a block restarted under it)
        self._next_onset_ms: int | None = None  # the block_ms of the last dta>: next onset
        self._lit: dict | None = None  # the lit stimulus until its dta>

    # -- lines -------------------------------------------------------------------------------
    def line(self, text: str, t_mono_ns: int, t_wall: float | None = None) -> Stimulus | None:
        key, sep, value = text.partition(">")
        if not sep:
            return self._bad(text)
        value = value.strip()
        handler = {
            "stm": self._stm,
            "trl": self._trl,
            "rt": self._rt,
            "clk": self._clk,
            "bty": self._bty,
        }.get(key)
        try:
            if handler is not None:
                handler(value, t_mono_ns)
            elif key == "dta":
                return self._data(value, t_mono_ns)
            elif key == "rtc":
                self._rtc(value, t_mono_ns, t_wall)
            elif key == "cfg":
                return super().line(text, t_mono_ns)
            else:
                return self._bad(text)
        except ValueError:
            return self._bad(text)
        return None

    def _stm(self, value: str, t: int) -> None:
        if value not in ("0", "1"):
            raise ValueError(value)
        self.stim_on = value == "1"
        if self.stim_on:
            self._onset_arrival = t  # which stimulus: its trl>k comes next
        elif self._lit is not None:
            lit = self._lit
            off_ms = lit["rt_us"] / 1000 if lit["rt_us"] is not None else self._ontm()
            if off_ms is not None and lit["onset_ms"] is not None:
                self._pair(lit["onset_ms"] + off_ms, t)

    def _trl(self, value: str, t: int) -> None:
        k = int(value)
        if k == 1:  # a new block: its clock started at this onset
            self._new_block()
            self._next_onset_ms = 0
        onset_ms, self._next_onset_ms = self._next_onset_ms, None
        arrival, self._onset_arrival = self._onset_arrival, None
        self._lit = {
            "k": k, "onset_ms": onset_ms, "arrival": arrival, "rt_us": None, "clicks": 0,
            "block": self._block,
        }  # fmt: skip
        if onset_ms is not None:
            for at in (arrival, t):
                if at is not None:
                    self._pair(onset_ms, at)

    def _rt(self, value: str, t: int) -> None:
        rt_us = int(value)
        lit = self._lit
        if lit is not None and lit["rt_us"] is None:
            lit["rt_us"] = rt_us
            if lit["onset_ms"] is not None:
                self._pair(lit["onset_ms"] + rt_us / 1000, t)

    def _clk(self, value: str, t: int) -> None:
        n = int(value)
        lit = self._lit
        if lit is not None:
            lit["clicks"] = n
            if n == 1 and lit["rt_us"] is not None and lit["onset_ms"] is not None:
                self._pair(lit["onset_ms"] + lit["rt_us"] / 1000, t)

    def _bty(self, value: str, t: int) -> None:
        self.battery = int(value)

    def _rtc(self, value: str, t: int, t_wall: float | None) -> None:
        self.rtc_unix = parse_rtc(value)
        if t_wall is not None:
            self.rtc_minus_host_s = round(self.rtc_unix - t_wall, 3)

    def _data(self, value: str, t: int) -> Stimulus | None:
        block_ms, k, clicks, rt, battery, unix = (int(v) for v in value.split(",")[:6])
        self.battery = battery
        self._next_onset_ms = block_ms  # the next stimulus is lit right after this line
        lit, self._lit = self._lit, None
        if lit is None or lit["k"] != k:
            self.stale += 1
            return None
        self._pair(block_ms, t)
        if lit.get("closed"):
            return None  # written at a trial's stop already
        return self._stimulus(lit, rt if rt >= 0 else None, clicks, unix)

    # -- stimuli -----------------------------------------------------------------------------
    def _stimulus(
        self, lit: dict, rt_ms: int | None, clicks: int, unix: int | None
    ) -> Stimulus | None:
        onset_ms = lit["onset_ms"]
        if onset_ms is None:  # its onset's block time came in a dta> that was lost
            return self._bad(f"trl>{lit['k']} (onset unknown)")
        fit = self._fits.get(lit["block"])
        if self.mapped and fit is not None and fit.ready:
            t = fit.to_host(onset_ms * MS)
        elif lit["arrival"] is not None:
            t = lit["arrival"]
        else:
            return self._bad(f"trl>{lit['k']} (no host time)")
        return Stimulus(
            lit["k"], t, onset_ms, rt_ms, classify(rt_ms), clicks, lit["arrival"],
            block=lit["block"], device_unix=unix,
        )  # fmt: skip

    def close_pending(self) -> Stimulus | None:
        """The lit stimulus whose ``dta>`` has not come (a trial stopping), from its own lines:
        its rt from ``rt>`` (µs, rounded as the firmware rounds), clicks so far. Its ``dta>``
        will still come and only feeds the fit."""
        lit = self._lit
        if lit is None or lit.get("closed"):
            return None
        lit["closed"] = True
        rt_ms = None if lit["rt_us"] is None else round(lit["rt_us"] / 1000)
        return self._stimulus(lit, rt_ms, lit["clicks"], None)

    def device_ns_of(self, stimulus: Stimulus) -> int:
        """The onset on the block clock (the firmware rounds its ms: no centring)."""
        return stimulus.t_device_ms * MS

    @property
    def pending_onset_ns(self) -> int | None:
        """The arrival of the lit stimulus's ``stm>1`` while its row is not out."""
        lit = self._lit
        if lit is None or lit.get("closed"):
            return None
        return lit["arrival"]

    def pending_settled(self, now_ns: int) -> bool:
        """The lit stimulus's hit window is over: a stop need not wait for its ``dta>``."""
        arrival = self.pending_onset_ns
        return arrival is None or now_ns >= arrival + HIT_MAX_MS * MS + _SETTLE_NS

    def link_lost(self) -> None:
        """The link dropped: lines of the lit stimulus and the next onset's time are lost."""
        super().link_lost()
        self._lit, self._next_onset_ms = None, None

    # -- clock -------------------------------------------------------------------------------
    def _pair(self, device_ms: float, arrival: int) -> None:
        self.fit.add(round(device_ms * MS), arrival)

    def _ontm(self) -> float | None:
        ontm = self.config.get("ONTM", "")
        return float(ontm) if ontm.isdigit() else None
