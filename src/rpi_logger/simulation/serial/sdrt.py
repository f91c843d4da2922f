"""A simulated sDRT (Red Scientific, ISO 17488 preset) with a simulated participant (design.md §7).

On `exp_start` the first onset falls on the first whole second of the host clock at least 4 s
later; onset k+1 follows onset k by ``3000 + (937 * k) % 2001`` ms of host time; the
participant responds ``250 + 13 * (k % 30)`` ms after onset k, except when ``k % 7 == 0`` (a
miss). Lines: ``stm>1`` at onset, ``clk>N`` at a response, ``stm>0`` at the end of the stimulus
(1000 ms or the response), ``trl>onset_ms,k,rt_ms`` (device clock; rt -1 for a miss) 2.5 s
after onset, ``end>`` at `exp_stop`; ``cfg>...`` for `get_config`.
"""

from __future__ import annotations

from rpi_logger.io.serial.ports import USB_IDS
from rpi_logger.simulation.serial.pty_device import PtyDevice

SECOND = 1_000_000_000
MS = 1_000_000


def onset_gap_ms(k: int) -> int:
    """Host milliseconds from onset k to onset k+1 (k from 1)."""
    return 3000 + (937 * k) % 2001


def response_ms(k: int) -> int | None:
    """The participant's reaction time to stimulus k, None for a miss."""
    return None if k % 7 == 0 else 250 + 13 * (k % 30)


def first_onset_ns(start_ns: int) -> int:
    """The first whole second of the host clock at least 4 s after `start_ns`."""
    return -(-(start_ns + 4 * SECOND) // SECOND) * SECOND


class SimulatedSDRT(PtyDevice):
    usb_ids = USB_IDS["sDRT"]
    name = "sDRT"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.config = {"lowerISI": 3000, "upperISI": 5000, "stimDur": 1000, "intensity": 255}
        self._next_onset: int | None = None
        self._k = 0
        self._clicks = 0
        self.onsets: list[int] = []  # host time of every onset (for checks)

    def on_command(self, command: str, t_host_ns: int) -> None:
        if command == "exp_start":
            self._k, self._clicks = 0, 0
            self._next_onset = first_onset_ns(t_host_ns)
        elif command == "exp_stop":
            self._next_onset = None
            self.send_at(t_host_ns, "end>")
        elif command == "get_config":
            self.send_at(t_host_ns, "cfg>" + ",".join(f"{k}:{v}" for k, v in self.config.items()))
        elif command in ("stim_on", "stim_off"):
            self.send_at(t_host_ns, f"stm>{int(command == 'stim_on')}")
        elif command.startswith("set_"):
            key, _, value = command[4:].partition(" ")
            if key in self.config and value.strip().isdigit():
                self.config[key] = int(value)

    def tick(self, now_ns: int) -> None:
        onset = self._next_onset
        if onset is None or now_ns < onset - 50 * MS:
            return
        # Schedule stimulus k a little ahead: its lines leave at their exact host times.
        self._k += 1
        k = self._k
        self.onsets.append(onset)
        self._next_onset = onset + onset_gap_ms(k) * MS
        self.send_at(onset, "stm>1")
        rt = response_ms(k)
        end = onset + self.config["stimDur"] * MS
        if rt is not None:
            self._clicks += 1
            click = onset + rt * MS
            self.send_at(click, f"clk>{self._clicks}")
            end = min(end, click)
        self.send_at(end, "stm>0")
        dev_onset = self.device_ms(onset)
        dev_rt = -1 if rt is None else self.device_ms(onset + rt * MS) - dev_onset
        self.send_at(onset + 2500 * MS, f"trl>{dev_onset},{k},{dev_rt}")
