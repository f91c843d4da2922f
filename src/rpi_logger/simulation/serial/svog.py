"""A simulated sVOG (Red Scientific occlusion goggles, ISO 16673) in cycle mode (design.md §7).

Commands are ``>KEY|VAL<<``. On ``do_trialStart`` the lenses open at once, then close and open
every `open_ms` / `closed_ms` (1500 ms each) from the trial's start; each change is ``stm|1``
(open) or ``stm|0`` (closed) at its host time. ``do_trialStop`` closes them and reports
``data|trial,open_ms,closed_ms`` (the totals of the trial, in whole ms). ``get_config`` replies
``config|MaxOpen:1500,MaxClose:1500,...``; ``set_configMaxOpen|N`` and ``set_configMaxClose|N``
change the cycle.
"""

from __future__ import annotations

from rpi_logger.io.serial.ports import USB_IDS
from rpi_logger.simulation.serial.pty_device import PtyDevice

MS = 1_000_000


class SimulatedSVOG(PtyDevice):
    usb_ids = USB_IDS["sVOG"]
    name = "sVOG"
    command_end = b"<<"

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("ppm", 0.0)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.config = {"MaxOpen": 1500, "MaxClose": 1500, "Debounce": 100}
        self.trial = 0
        self._start: int | None = None
        self._next: int | None = None
        self._open = False
        self.changes: list[tuple[int, bool]] = []  # (host ns, open) for checks
        self._open_ns = 0
        self._closed_ns = 0

    def on_command(self, command: str, t_host_ns: int) -> None:
        key, _, value = command.lstrip(">").partition("|")
        if key == "do_trialStart":
            self.trial += 1
            self._start, self._next = t_host_ns, t_host_ns
            self._open_ns = self._closed_ns = 0
        elif key == "do_trialStop" and self._start is not None:
            self._account(t_host_ns)
            self._start = self._next = None
            if self._open:
                self._change(t_host_ns, False)
            self.send_at(
                t_host_ns,
                f"data|{self.trial},{self._open_ns // MS},{self._closed_ns // MS}",
            )
        elif key == "get_config":
            items = ",".join(f"{k}:{v}" for k, v in self.config.items())
            self.send_at(t_host_ns, f"config|{items}")
        elif key.startswith("set_config") and value.strip().isdigit():
            name = key[len("set_config") :]
            if name in self.config:
                self.config[name] = int(value)

    def _account(self, until: int) -> None:
        if self.changes and self._start is not None:
            t, was_open = self.changes[-1]
            t = max(t, self._start)
            if was_open:
                self._open_ns += until - t
            else:
                self._closed_ns += until - t

    def _change(self, t: int, is_open: bool) -> None:
        self._open = is_open
        self.changes.append((t, is_open))
        self.send_at(t, f"stm|{int(is_open)}")

    def tick(self, now_ns: int) -> None:
        due = self._next
        if due is None or now_ns < due:
            return
        self._account(due)
        is_open = not self._open if self.changes and self._start is not None else True
        if due == self._start:
            is_open = True
        self._change(due, is_open)
        span = self.config["MaxOpen"] if is_open else self.config["MaxClose"]
        self._next = due + span * MS
