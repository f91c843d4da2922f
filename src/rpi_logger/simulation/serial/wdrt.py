"""A simulated wDRT (Red Scientific wireless DRT) speaking as its firmware does, with the sDRT's
participant and host schedule (design.md §7).

Commands are ``key>value`` lines:

- ``trl>1`` starts a block: a first pulse (no line), then the firmware sleeps a random ISI
  (blocking: it reads no command meanwhile), then the block clock starts and stimulus 1 is lit at
  once. Here the block starts on design.md §7's first onset (the first whole host second at least
  4 s after the command); a command that came during the blocking wait is read then, and several
  are read as one chunk and lost (counted in `merged`, like commands less than 10 ms apart).
  ``trl>0`` stops the block: the lit stimulus still runs its ISI and sends its results.
- ``dev>1``/``dev>0`` light or dark the stimulus by hand (the firmware sends no line for it);
  ``dev>iso`` sets ONTM 1000, ISIL 3000, ISIH 5000, DBNC 100, SPCT 100 and replies ``cfg>``.
- ``set>K:V[,K:V...]`` (colons; ``set>K,V`` takes no effect) and ``get_cfg>`` reply
  ``cfg>ONTM:1000,...`` with the whole config; ``get_bat>`` replies ``bty>N``.
- ``set_rtc>Y,M,D,weekday,H,M,S,subseconds`` sets the RTC (pyb.RTC: the subseconds given are
  ignored, the second starts when set) and replies ``rtc>`` with the RTC's tuple, whose
  subseconds count down from 255 to 0 through each second, as a pyboard's do.

Per stimulus k: ``stm>1`` and ``trl>k`` at onset; at the first press ``rt>us`` (µs since onset,
device clock) and ``clk>n`` (presses in this stimulus's trial); ``stm>0`` at the press or at
onset + ONTM; and at the END of its ISI, just before onset k+1,
``dta>block_ms,k,clicks,rt_ms,battery,unix``: block_ms the device's ms since the block clock
started (rounded, as the firmware does), rt_ms rounded (-1: none), unix the RTC's whole seconds.
Onset gaps and responses follow design.md §7 in host time (`sdrt.onset_gap_ms`, `response_ms`);
the device clock is offset and 100 ppm fast; the lines of one instant reach the host in order.
`first_k` starts the participant's schedule at stimulus `first_k` (a test reaches the 7th, the
first miss, in 13 s instead of 30); the device's counter still starts at 1.
"""

from __future__ import annotations

import calendar
import datetime as dt

from rpi_logger.io.serial.ports import USB_IDS
from rpi_logger.simulation.serial.pty_device import PtyDevice
from rpi_logger.simulation.serial.sdrt import MS, first_onset_ns, onset_gap_ms, response_ms

CHUNK_NS = 10 * MS
ISO = {"ONTM": 1000, "ISIL": 3000, "ISIH": 5000, "DBNC": 100, "SPCT": 100}
_AHEAD_NS = 50 * MS  # lines are scheduled this far ahead, so they leave at their exact times
_RTC_EPOCH = 946684800  # a fresh pyboard's RTC starts at 2000-01-01


class SimulatedWDRT(PtyDevice):
    usb_ids = USB_IDS["wDRT"]
    name = "wDRT"
    command_end = b"\n"
    chunk_ns = CHUNK_NS

    def __init__(self, *, first_k: int = 1, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.config = dict(ISO)
        self.battery = 87
        self.first_k = first_k
        self.onsets: list[int] = []  # host time of every onset of the current block (checks)
        self.block_starts: list[int] = []  # host time of every block clock start
        self._running = False
        self._k = 0
        self._next_onset: int | None = None  # the end of the lit stimulus's ISI
        self._lit: tuple[int, int, int | None] | None = None  # (k, clicks, rt_us) awaiting dta
        self._block_dev_ns = 0
        self._deaf_until: int | None = None
        self._held: list[str] = []
        self._rtc_unix = float(_RTC_EPOCH)
        self._rtc_dev_ns = self.device_ns(self._epoch_ns)

    # -- clocks ------------------------------------------------------------------------------
    def host_after(self, t_host_ns: int, device_ms: int) -> int:
        """The host time `device_ms` of device time after `t_host_ns`."""
        return t_host_ns + round(device_ms * MS / (1 + self.ppm * 1e-6))

    def rtc_unix(self, t_host_ns: int) -> float:
        """The device's RTC (unix seconds) at a host time: it runs on the device's clock."""
        return self._rtc_unix + (self.device_ns(t_host_ns) - self._rtc_dev_ns) / 1e9

    def _rtc_tuple(self, t_host_ns: int) -> str:
        rtc = self.rtc_unix(t_host_ns)
        d = dt.datetime.fromtimestamp(int(rtc), dt.UTC)
        sub = 255 - int((rtc % 1) * 256)  # a pyboard's subseconds count down through a second
        fields = (d.year, d.month, d.day, d.isoweekday(), d.hour, d.minute, d.second, sub)
        return ",".join(str(v) for v in fields)

    # -- lines -------------------------------------------------------------------------------
    def _send(self, t_host_ns: int, *lines: str) -> None:
        """Lines of one instant, in order (a serial link does not reorder them)."""
        lo, hi = self.latency_ms
        due = 0
        for line in lines:
            due = max(due, t_host_ns + int(self._rng.uniform(lo, hi) * 1e6))
            self.send_at(due, line, latency=False)

    def _cfg(self) -> str:
        return "cfg>" + ",".join(f"{k}:{v}" for k, v in self.config.items())

    # -- commands ----------------------------------------------------------------------------
    def on_command(self, command: str, t_host_ns: int) -> None:
        if self._deaf_until is not None and t_host_ns < self._deaf_until:
            self._held.append(command)  # the firmware sleeps through the block's first ISI
            return
        self._do(command, t_host_ns)

    def _do(self, command: str, t: int) -> None:
        key, _, value = command.partition(">")
        if key == "trl" and value == "1":
            self._start_block(t)
        elif key == "trl" and value == "0":
            self._running = False
        elif key == "dev" and value == "iso":
            self.config.update(ISO)
            self._send(t, self._cfg())
        elif key == "get_cfg":
            self._send(t, self._cfg())
        elif key == "get_bat":
            self._send(t, f"bty>{self.battery}")
        elif key == "set" and value:
            for pair in value.split(","):
                k, sep, v = pair.partition(":")
                if sep and k.strip() in self.config and v.strip().isdigit():
                    self.config[k.strip()] = int(v)
            self._send(t, self._cfg())
        elif key == "set_rtc":
            self._set_rtc(value, t)

    def _set_rtc(self, value: str, t: int) -> None:
        try:
            y, mo, d, _, h, mi, s, _ = (int(v) for v in value.split(","))
            self._rtc_unix = float(calendar.timegm((y, mo, d, h, mi, s)))
        except ValueError:
            pass  # the firmware replies with the RTC unchanged
        else:
            self._rtc_dev_ns = self.device_ns(t)
        self._send(t, f"rtc>{self._rtc_tuple(t)}")

    def _start_block(self, t: int) -> None:
        first = first_onset_ns(t)  # after the first pulse and a random ISI
        self._running = True
        self._k = 0
        self._lit = None  # a stimulus of an earlier block: its results are not sent
        self._next_onset = first
        self._deaf_until = first
        self._block_dev_ns = self.device_ns(first)
        self.block_starts.append(first)
        self.onsets = []

    # -- the block ---------------------------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        if self._deaf_until is not None and now_ns >= self._deaf_until:
            held, self._held, self._deaf_until = self._held, [], None
            if len(held) == 1:
                self._do(held[0], now_ns)
            else:  # read as one chunk: the firmware cannot parse it
                self.merged += len(held)
        onset = self._next_onset
        if onset is None or now_ns < onset - _AHEAD_NS:
            return
        lines = []  # of one instant: the results of the lit stimulus, then the next onset
        if self._lit is not None:
            lines.append(self._results(onset))
        if self._running:
            lines += self._stimulus(onset)
        else:
            self._next_onset = None
        self._send(onset, *lines)

    def _stimulus(self, onset: int) -> list[str]:
        """Stimulus k lit at `onset`: its later lines are scheduled, its onset lines returned."""
        self._k += 1
        k = self._k
        self.onsets.append(onset)
        self._next_onset = onset + onset_gap_ms(k + self.first_k - 1) * MS
        rt = response_ms(k + self.first_k - 1)
        off = self.host_after(onset, self.config["ONTM"])
        rt_us = None
        if rt is not None:
            click = onset + rt * MS
            rt_us = (self.device_ns(click) - self.device_ns(onset)) // 1000
            lines = ["rt>" + str(rt_us), "clk>1"] + (["stm>0"] if click < off else [])
            self._send(click, *lines)
        if rt is None or onset + rt * MS >= off:
            self._send(off, "stm>0")
        self._lit = (k, 0 if rt is None else 1, rt_us)
        return ["stm>1", f"trl>{k}"]

    def _results(self, t: int) -> str:
        """The ``dta>`` line of the lit stimulus, its ISI ending at `t`."""
        assert self._lit is not None
        k, clicks, rt_us = self._lit
        self._lit = None
        block_ms = round((self.device_ns(t) - self._block_dev_ns) / MS)
        rt_ms = -1 if rt_us is None else round(rt_us / 1000)
        unix = int(self.rtc_unix(t))
        return f"dta>{block_ms},{k},{clicks},{rt_ms},{self.battery},{unix}"
