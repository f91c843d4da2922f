"""A simulated wDRT (Red Scientific wireless DRT) with the sDRT's participant (design.md §7).

Same schedule and participant as `sdrt.SimulatedSDRT`, spoken in the wDRT's protocol
(`rpi_logger.modules.drt.wdrt`): ``trl>1``/``trl>0`` start and stop the experiment, ``dev>1``/
``dev>0`` light the stimulus by hand, ``dev>iso`` the ISO preset, ``set>KEY:VAL`` and
``get_cfg>`` the settings, ``get_bat>`` the battery. Like the firmware, it reads commands in
10 ms chunks: a command that comes within 10 ms of the one before is lost (counted in
`merged`): the host must space them 20 ms apart. ``set>KEY,VAL`` (a comma) is ignored.
"""

from __future__ import annotations

import time

from rpi_logger.io.serial.ports import USB_IDS
from rpi_logger.simulation.serial.sdrt import (
    MS,
    SimulatedSDRT,
    first_onset_ns,
    onset_gap_ms,
    response_ms,
)

CHUNK_NS = 10 * MS


class SimulatedWDRT(SimulatedSDRT):
    usb_ids = USB_IDS["wDRT"]
    name = "wDRT"
    command_end = b"\n"
    chunk_ns = CHUNK_NS

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.config = {"ONTM": 1000, "ISIL": 3000, "ISIH": 5000, "DBNC": 100, "SPCT": 100}
        self.battery = 87


    def on_command(self, command: str, t_host_ns: int) -> None:
        if command == "trl>1":
            self._k, self._clicks = 0, 0
            self._next_onset = first_onset_ns(t_host_ns)
        elif command == "trl>0":
            self._next_onset = None
        elif command in ("dev>1", "dev>0"):
            self.send_at(t_host_ns, f"stm>{command[-1]}")
        elif command == "dev>iso":
            self.config.update(ONTM=1000, ISIL=3000, ISIH=5000)
        elif command == "get_cfg>":
            self.send_at(t_host_ns, "cfg>" + ",".join(f"{k}:{v}" for k, v in self.config.items()))
        elif command == "get_bat>":
            self.send_at(t_host_ns, f"bty>{self.battery}")
        elif command.startswith("set>"):
            key, sep, value = command[4:].partition(":")
            if sep and key in self.config and value.strip().isdigit():
                self.config[key] = int(value)

    def tick(self, now_ns: int) -> None:
        onset = self._next_onset
        if onset is None or now_ns < onset - 50 * MS:
            return
        self._k += 1
        k = self._k
        self.onsets.append(onset)

        self._next_onset = onset + onset_gap_ms(k) * MS
        self.send_at(onset, "stm>1")
        self.send_at(onset, f"trl>{k}")
        rt = response_ms(k)
        end = onset + self.config["ONTM"] * MS
        clicks = 0
        if rt is not None:
            self._clicks += 1
            clicks = 1
            click = onset + rt * MS
            self.send_at(click, f"clk>{self._clicks}")
            dev_rt_ns = self.device_ns(click) - self.device_ns(onset)
            self.send_at(click, f"rt>{dev_rt_ns // 1000}")
            end = min(end, click)
        self.send_at(end, "stm>0")
        dev_onset = self.device_ms(onset)
        dev_rt = -1 if rt is None else self.device_ms(onset + rt * MS) - dev_onset
        unix = int(time.time())
        self.send_at(
            onset + 2500 * MS, f"dta>{dev_onset},{k},{clicks},{dev_rt},{self.battery},{unix}"
        )
