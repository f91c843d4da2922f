"""A simulated wVOG (Red Scientific wireless occlusion goggles, two lenses A and B), with the
sVOG's simulated participant (`svog.VogEngine`, design.md §7).

Commands end with a newline, ``key>value``:

- ``exp>1`` / ``exp>0`` start and stop the experiment (a trial started without one starts it, as
  the firmware does); ``trl>1`` / ``trl>0`` a trial. At a trial's start the lenses take the
  ``srt`` state (1 clear) and say so (``stm>1|0``); at its stop they close and the device reports
  ``dta>trial,open_ms,closed_ms,total_ms,X,battery,unix`` (its own totals; the tag is the lens,
  X both).
- ``a>1|0``, ``b>1|0``, ``x>1|0``: lens A (left), B (right) or both clear (1) or opaque (0),
  echoed as ``a>1`` ...; like the sVOG's peek commands they bypass the trial's timers.
- ``get_cfg>`` -> ``cfg>clr:100,cls:1500,dbc:20,srt:1,opn:1500,dta:0,drk:0,typ:cycle``;
  ``set>key:value`` (a colon) changes one key, read back with ``get_cfg>`` (no reply; a bad
  value is not taken). ``opn``/``cls`` open and closed ms, ``dbc`` debounce ms, ``srt`` start
  state, ``dta`` data at each transition (1) or at the trial's end (0), ``drk``/``clr`` opacity
  0-100, ``typ`` ``cycle``, ``peek``, ``eblind`` or ``direct``.
- ``get_bat>`` -> ``bty>N``; anything else -> ``Unknown command: ...``.

Modes as the sVOG's (see `svog`), from ``typ``; the wVOG differs in peek: the first press also
waits ``cls`` from the trial's start, and a press while open is kept for after the lockout. Its
button presses are not reported. Like the wDRT it reads commands in 10 ms chunks: a command
within 10 ms of the one before is lost (`merged`).
"""

from __future__ import annotations

import time
from typing import ClassVar

from rpi_logger.io.serial.ports import USB_IDS
from rpi_logger.simulation.serial.svog import VogEngine

CHUNK_NS = 10_000_000
MODES = {"cycle": "cycle", "peek": "peek", "eblind": "eBlindfold", "direct": "direct"}
_INT_KEYS = {"opn": (1, 65535), "cls": (1, 65535), "dbc": (0, 1000), "srt": (0, 1),
             "dta": (0, 1), "drk": (0, 100), "clr": (0, 100)}  # fmt: skip


class SimulatedWVOG(VogEngine):
    usb_ids = USB_IDS["wVOG"]
    name = "wVOG"
    command_end = b"\n"
    chunk_ns = CHUNK_NS
    first_peek_waits: ClassVar[bool] = True
    press_while_open_queues: ClassVar[bool] = True

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.battery = 91
        self.config: dict[str, int | str] = {
            "clr": 100, "cls": 1500, "dbc": 20, "srt": 1,
            "opn": 1500, "dta": 0, "drk": 0, "typ": "cycle",
        }  # fmt: skip

    # -- configuration ------------------------------------------------------------------------
    def mode(self) -> str:
        return MODES.get(str(self.config["typ"]), "cycle")

    def open_ms(self) -> int:
        return int(self.config["opn"])

    def closed_ms(self) -> int:
        return int(self.config["cls"])

    def starts_open(self) -> bool:
        return self.config["srt"] == 1

    def _set(self, item: str) -> None:
        key, sep, value = item.partition(":")
        value = value.strip()
        if not sep:
            return
        if key == "typ" and value in MODES:
            self.config[key] = value
        elif key in _INT_KEYS and value.isdigit():
            lo, hi = _INT_KEYS[key]
            if lo <= int(value) <= hi:
                self.config[key] = int(value)

    # -- lines -------------------------------------------------------------------------------
    def lens_line(self, lens: str, is_open: bool, timed: bool) -> str:
        return f"stm>{int(is_open)}"

    def start_lines(self, is_open: bool) -> list[str]:
        return [self.set_lens(self._since, "X", is_open)]

    def data_line(self, open_ms: int, closed_ms: int) -> str:
        total, unix = open_ms + closed_ms, int(time.time())
        return f"dta>{self.trial},{open_ms},{closed_ms},{total},X,{self.battery},{unix}"

    # -- commands ----------------------------------------------------------------------------
    def on_command(self, command: str, t_host_ns: int) -> None:
        key, _, value = command.partition(">")
        self._send(t_host_ns, self._reply(key, value.strip(), t_host_ns, command))

    def _reply(self, key: str, value: str, t: int, command: str) -> list[str]:
        if key == "exp" and value in ("0", "1"):
            if value == "1":
                self.start_experiment()
                return []
            lines = self._end_trial(t)
            self.exp_running = False
            return lines
        if key == "trl" and value in ("0", "1"):
            if value == "0":
                return self._end_trial(t)
            if not self.exp_running:
                self.start_experiment()
            return [] if self.running else self.start_trial(t)
        if key in ("a", "b", "x") and value in ("0", "1"):
            self.set_lens(t, key.upper(), value == "1")
            return [f"{key}>{value}"]
        if key == "get_cfg":
            return ["cfg>" + ",".join(f"{k}:{v}" for k, v in self.config.items())]
        if key == "set":
            self._set(value)
            return []
        if key == "get_bat":
            return [f"bty>{self.battery}"]
        return [f"Unknown command: {command}"]

    def _end_trial(self, t: int) -> list[str]:
        if not self.running:
            return []
        self._button = []
        return self.stop_trial(t)

    # -- button ------------------------------------------------------------------------------
    def on_button(self, t: int, down: bool) -> list[str]:
        mode = self.mode()
        if mode == "direct":  # the lenses follow the button
            return [self.set_lens(t, "X", down)]
        if not down:
            return []
        if not self.running:
            return self.start_trial(t) if mode == "cycle" and self.exp_running else []
        if mode == "peek":
            self.press(t)
            return []
        return self.stop_trial(t)  # cycle: ends the trial; eBlindfold: target found
