"""The wDRT's lines and commands (Red Scientific wireless DRT, design.md §6).

Commands end with a newline and must be at least 20 ms apart (the firmware reads a 10 ms chunk
as one command: the transport's ``command_gap_s``). Settings are ``set>KEY:VAL`` with a colon
(the peer logger's ``key,value`` never takes effect) and read back with ``get_cfg>``, replied
``cfg>KEY:VAL,...``. A stimulus is ``stm>1``, ``trl>N``, ``clk>N`` per press, ``rt>us``,
``stm>0``, then ``dta>block_ms,trial,clicks,rt_ms,battery,unix`` with the onset on the device's
millisecond clock (rt -1: no response); ``bty>N`` is the battery in percent.

`WdrtTracker` is `SdrtTracker` for these lines: the same pairing for the clock fit (``stm>1``
with the onset, the first ``clk>`` with onset + rt) and our classification.
"""

from __future__ import annotations

from rpi_logger.modules.drt.sdrt import SdrtTracker, Stimulus, classify

END = b"\n"
#: Our setting names to the firmware's keys.
KEYS = {"stimDur": "ONTM", "lowerISI": "ISIL", "upperISI": "ISIH", "intensity": "SPCT"}


def set_commands(wanted: dict[str, int]) -> list[bytes]:
    """``set>KEY:VAL`` for each setting (colon, not comma)."""
    return [f"set>{KEYS[k]}:{v}".encode() + END for k, v in wanted.items()]


class WdrtTracker(SdrtTracker):
    """wDRT lines to classified stimuli on the host clock (module docstring)."""

    def __init__(self, *, mapped: bool = True) -> None:
        super().__init__(mapped=mapped)
        self.battery: int | None = None

    def line(self, text: str, t_mono_ns: int) -> Stimulus | None:
        key, sep, value = text.partition(">")
        if key == "dta" and sep:
            return self._data(text, value)
        if key == "bty" and sep:
            if value.strip().isdigit():
                self.battery = int(value)
                return None
            return self._bad(text)
        if key in ("trl", "rt") and sep:  # the counter at onset, the press in µs: in dta> too
            return None if value.strip().lstrip("-").isdigit() else self._bad(text)
        return super().line(text, t_mono_ns)

    def _data(self, text: str, value: str) -> Stimulus | None:
        try:
            onset_ms, number, clicks, rt, battery = (int(v) for v in value.split(",")[:5])
        except ValueError:
            return self._bad(text)
        self.battery = battery
        stimulus = self._trial(text, f"{onset_ms},{number},{rt}")
        if stimulus is None:
            return None
        return Stimulus(
            stimulus.stimulus,
            stimulus.t_mono_ns,
            stimulus.t_device_ms,
            stimulus.rt_ms,
            classify(stimulus.rt_ms),
            clicks,
            stimulus.arrival_ns,
        )
