"""A simulated wVOG (Red Scientific wireless occlusion goggles) in cycle mode (design.md §7).

The sVOG's cycle (`svog.SimulatedSVOG`) in the wVOG's protocol: commands end with a newline,
``exp>1|0`` start and stop the experiment, ``trl>1|0`` a trial, ``set>KEY:VAL`` (``OPN`` open
ms, ``CLS`` closed ms) and ``get_cfg>`` the settings (``cfg>OPN:1500,CLS:1500,...``); replies
``stm>1|0`` per lens change and at a trial's stop ``dta>trial,open_ms,closed_ms,total_ms,tag,
battery,unix``. Like the wDRT it reads 10 ms chunks: a command within 10 ms of the one before
is lost (`merged`).
"""

from __future__ import annotations

import time

from rpi_logger.io.serial.ports import USB_IDS
from rpi_logger.simulation.serial.svog import MS, SimulatedSVOG

CHUNK_NS = 10 * MS
_KEYS = {"OPN": "MaxOpen", "CLS": "MaxClose"}


class SimulatedWVOG(SimulatedSVOG):
    usb_ids = USB_IDS["wVOG"]
    name = "wVOG"
    command_end = b"\n"
    chunk_ns = CHUNK_NS

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.battery = 91


    def _change(self, t: int, is_open: bool) -> None:
        self._open = is_open
        self.changes.append((t, is_open))
        self.send_at(t, f"stm>{int(is_open)}")

    def on_command(self, command: str, t_host_ns: int) -> None:
        if command == "trl>1":
            super().on_command(">do_trialStart|", t_host_ns)
        elif command == "trl>0" and self._start is not None:
            self._account(t_host_ns)
            self._start = self._next = None
            if self._open:
                self._change(t_host_ns, False)
            o, c = self._open_ns // MS, self._closed_ns // MS
            unix = int(time.time())
            self.send_at(t_host_ns, f"dta>{self.trial},{o},{c},{o + c},0,{self.battery},{unix}")
        elif command == "get_cfg>":
            cfg = {k: self.config[v] for k, v in _KEYS.items()}
            self.send_at(t_host_ns, "cfg>" + ",".join(f"{k}:{v}" for k, v in cfg.items()))
        elif command.startswith("set>"):
            key, sep, value = command[4:].partition(":")
            if sep and key in _KEYS and value.strip().isdigit():
                self.config[_KEYS[key]] = int(value)
