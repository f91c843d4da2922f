"""A simulated sVOG (Red Scientific occlusion goggles, ISO 16673, Arduino firmware 2.2),
with a deterministic simulated participant (design.md §7).

Protocol (commands ``>KEY|VAL<<``, replies ``key|value`` lines), as the firmware speaks it:

- ``do_expStart`` -> ``expStart`` (the trial counter restarts at 0); ``do_expStop`` -> ``expStop``.
  A trial only starts inside an experiment: otherwise ``Initialize experiment prior to starting
  a trial``. A re-plugged sVOG starts idle (no experiment).
- ``do_trialStart`` -> ``stm|0``, then (button controls trial, ``ButtonControl`` 0) ``stm|1``, then
  ``trialStart``. ``do_trialStop`` closes the lenses and reports ``data|trial,open_ms,closed_ms``
  (the device's own totals: TSOT and the closed time, whole ms).
- ``get_config`` -> six lines ``configName|NHTSA``, ``configMaxOpen|1500``, ``configMaxClose|1500``,
  ``configDebounce|20``, ``configClickMode|1``, ``configButtonControl|0``; each
  ``set_configX|N`` replies ``configX|N`` (``MaxOpen``/``MaxClose`` are 16-bit unsigned).
- ``do_peekOpen`` / ``do_peekClose`` set the lens directly (``stm|1`` / ``stm|0``). As in the
  firmware they bypass its timers: a trial's ``data|`` counts such open time as closed, so in
  direct mode only the host's totals are right.
- The button: ``Click`` per press in click mode (``ClickMode`` 1); in hold mode (0) with the
  button controlling the trial ``btn|1`` / ``btn|0``, with ``ButtonControl`` 1 the lens follows it.

The modes (the ``ButtonControl`` setting, and ``MaxOpen``):

- cycle (0): open at the trial's start, then closed and open every ``MaxOpen`` / ``MaxClose``
  ms of host time from the trial's start (exactly, design.md §7: 1500 / 1500 by default).
- eBlindfold (0 with ``MaxOpen`` 65535): open at the start; a press ends the device's trial.
- peek (2): closed at the start; a press opens the lens for ``MaxOpen`` ms (the first at once),
  a press less than ``MaxClose`` ms after the last close waits for that lockout to end, a press
  while open is ignored.
- direct (1): no timing; the lens follows the host's ``do_peekOpen``/``do_peekClose`` (and a held
  button in hold mode).

The simulated participant (host times from the device's trial start; class attributes a test
may change): peek: a press at `first_press_ms` (2000) and every `press_every_ms` (3000) after;
eBlindfold: finds the target after `search_ms` (2700) and presses; direct: holds the button
over each ``(down_ms, up_ms)`` of `holds_ms` (none: host commands only); cycle: no presses.
A press is the button down and, `click_ms` (150) later, up.

For checks: `changes` holds every lens state the device reported, ``(host ns, lens, open)``
(the lens ``X``: both), at its exact host time; `presses` the participant's presses (host ns);
`experiments` counts experiment starts. Lines sent at one instant go out together, in order.
"""

from __future__ import annotations

from typing import ClassVar

from rpi_logger.io.serial.ports import USB_IDS
from rpi_logger.simulation.serial.pty_device import PtyDevice

MS = 1_000_000
#: MaxOpen that makes the sVOG's button-controlled trial an eBlindfold search.
EBLIND_OPEN_MS = 65535


class VogEngine(PtyDevice):
    """The lens timing of all four modes and the participant; the sVOG and wVOG subclasses say
    how the device is configured and how it talks."""

    # The participant (an instance may change them before a trial starts).
    first_press_ms: int = 2000
    press_every_ms: int = 3000
    search_ms: int = 2700
    click_ms: int = 150
    holds_ms: tuple[tuple[int, int], ...] = ()
    #: The wVOG counts the first peek's lockout from the trial's start; the sVOG opens at once.
    first_peek_waits: ClassVar[bool] = False
    #: The wVOG keeps a press made while open for after the lockout; the sVOG ignores it.
    press_while_open_queues: ClassVar[bool] = False

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("ppm", 0.0)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.exp_running = False
        self.experiments = 0
        self.trial = 0
        self.running = False
        self.changes: list[tuple[int, str, bool]] = []
        self.presses: list[int] = []
        self._lens = {"A": False, "B": False}
        self._timed_open = False  # the state the firmware's timers know
        self._since = 0  # host ns of the last timed change
        self._open_ns = self._closed_ns = 0
        self._peeks = 0
        self._peek_at: int | None = None  # a press waiting to open the lens (peek)
        self._button: list[tuple[int, bool]] = []  # the participant: (host ns, down), in order
        self._plugged = True

    # -- what a device says how (subclasses) ------------------------------------------------
    def mode(self) -> str:
        raise NotImplementedError

    def open_ms(self) -> int:
        raise NotImplementedError

    def closed_ms(self) -> int:
        raise NotImplementedError

    def starts_open(self) -> bool:
        return self.mode() in ("cycle", "eBlindfold")

    def lens_line(self, lens: str, is_open: bool, timed: bool) -> str:
        raise NotImplementedError

    def start_lines(self, is_open: bool) -> list[str]:
        """What the device says when a trial starts with the lens in state `is_open`."""
        raise NotImplementedError

    def data_line(self, open_ms: int, closed_ms: int) -> str:
        raise NotImplementedError

    def on_button(self, t: int, down: bool) -> list[str]:
        """The firmware's reaction to the participant's button (lines to send)."""
        raise NotImplementedError

    # -- lens --------------------------------------------------------------------------------
    def _send(self, t: int, lines: list[str]) -> None:
        if lines:
            self.send_at(t, "\r\n".join(lines))  # one write: lines of one instant stay in order

    def set_lens(self, t: int, lens: str, is_open: bool, timed: bool = False) -> str:
        """Set lens `lens` (A, B or X) physically and report it."""
        for name in ("A", "B") if lens == "X" else (lens,):
            self._lens[name] = is_open
        self.changes.append((t, lens, is_open))
        return self.lens_line(lens, is_open, timed)

    def _account(self, t: int) -> None:
        if self._timed_open:
            self._open_ns += t - self._since
        else:
            self._closed_ns += t - self._since
        self._since = t

    def timed_change(self, t: int, is_open: bool) -> list[str]:
        """The firmware's own open/close (its timers count it)."""
        self._account(t)
        if is_open == self._timed_open:  # as the firmware: a lens opened directly stays so
            return []
        self._timed_open = is_open
        if is_open:
            self._peeks += 1
        return [self.set_lens(t, "X", is_open, timed=True)]

    # -- trials ------------------------------------------------------------------------------
    def start_experiment(self) -> None:
        self.exp_running = True
        self.experiments += 1
        self.trial = 0

    def start_trial(self, t: int) -> list[str]:
        self.trial += 1
        self.running = True
        self._open_ns = self._closed_ns = self._peeks = 0
        self._since = t
        self._peek_at = None
        is_open = self.starts_open()
        self._timed_open = is_open
        lines = self.start_lines(is_open)
        self._plan_participant(t)
        return lines

    def stop_trial(self, t: int) -> list[str]:
        lines = self.timed_change(t, False)
        self.running = False
        self._peek_at = None
        lines.append(self.data_line(self._open_ns // MS, self._closed_ns // MS))
        return lines

    def _plan_participant(self, start: int) -> None:
        mode, presses = self.mode(), []
        if mode == "peek":  # through ten minutes of trial
            n = max(1, 600_000 // max(1, self.press_every_ms))
            presses = [
                start + (self.first_press_ms + k * self.press_every_ms) * MS for k in range(n)
            ]
        elif mode == "eBlindfold":
            presses = [start + self.search_ms * MS]
        events = [(p, True) for p in presses] + [(p + self.click_ms * MS, False) for p in presses]
        if mode == "direct":
            for down, up in self.holds_ms:
                events += [(start + down * MS, True), (start + up * MS, False)]
        self._button = sorted(events)

    # -- time --------------------------------------------------------------------------------
    def _timed_due(self) -> int | None:
        if not self.running:
            return None
        mode = self.mode()
        if mode in ("cycle", "eBlindfold"):
            return self._since + (self.open_ms() if self._timed_open else self.closed_ms()) * MS
        if mode == "peek":
            if self._timed_open:
                return self._since + self.open_ms() * MS
            if self._peek_at is not None:
                if self._peeks == 0 and not self.first_peek_waits:
                    return self._peek_at
                return max(self._peek_at, self._since + self.closed_ms() * MS)
        return None

    def press(self, t: int) -> bool:
        """A participant's press in peek mode: True when it asks for a peek."""
        if not self.running or (self._timed_open and not self.press_while_open_queues):
            return False
        if self._peek_at is None:
            self._peek_at = t
        return True

    def tick(self, now_ns: int) -> None:
        if self.path is None:  # unplugged: the goggles lose power and start idle
            if self._plugged:
                self._plugged = False
                self.exp_running = self.running = self._timed_open = False
                self._lens = {"A": False, "B": False}
                self._button, self._peek_at = [], None
            return
        self._plugged = True
        while True:  # every event due by now, in time order
            timed = self._timed_due()
            button = self._button[0][0] if self._button else None
            due = min((d for d in (timed, button) if d is not None), default=None)
            if due is None or due > now_ns:
                return
            if button is not None and button == due and (timed is None or button < timed):
                t, down = self._button.pop(0)
                if down:
                    self.presses.append(t)
                self._send(t, self.on_button(t, down))
            else:
                self._timed_step(due)

    def _timed_step(self, t: int) -> None:
        if self.mode() == "peek" and not self._timed_open:
            self._peek_at = None
        self._send(t, self.timed_change(t, not self._timed_open))


class SimulatedSVOG(VogEngine):
    usb_ids = USB_IDS["sVOG"]
    name = "sVOG"
    command_end = b"<<"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.config: dict[str, int | str] = {
            "Name": "NHTSA",
            "MaxOpen": 1500,
            "MaxClose": 1500,
            "Debounce": 20,
            "ClickMode": 1,
            "ButtonControl": 0,
        }

    # -- configuration ------------------------------------------------------------------------
    def mode(self) -> str:
        control = self.config["ButtonControl"]
        if control == 2:
            return "peek"
        if control == 1:
            return "direct"
        return "eBlindfold" if self.config["MaxOpen"] == EBLIND_OPEN_MS else "cycle"

    def open_ms(self) -> int:
        return int(self.config["MaxOpen"])

    def closed_ms(self) -> int:
        return int(self.config["MaxClose"])

    def starts_open(self) -> bool:
        return self.config["ButtonControl"] == 0

    # -- lines -------------------------------------------------------------------------------
    def lens_line(self, lens: str, is_open: bool, timed: bool) -> str:
        return f"stm|{int(is_open)}"

    def start_lines(self, is_open: bool) -> list[str]:
        t = self._since
        lines = [self.set_lens(t, "X", False)]
        if is_open:
            lines.append(self.set_lens(t, "X", True))
        return [*lines, "trialStart"]

    def data_line(self, open_ms: int, closed_ms: int) -> str:
        return f"data|{self.trial},{open_ms},{closed_ms}"

    # -- commands ----------------------------------------------------------------------------
    def on_command(self, command: str, t_host_ns: int) -> None:
        key, _, value = command.lstrip(">").partition("|")
        self._send(t_host_ns, self._reply(key, value.strip(), t_host_ns))

    def _reply(self, key: str, value: str, t: int) -> list[str]:
        if key == "do_expStart":
            self.start_experiment()
            return ["expStart"]
        if key == "do_expStop":
            self.exp_running = False
            return ["expStop"]
        if key == "do_trialStart":
            if not self.exp_running:
                return ["Initialize experiment prior to starting a trial"]
            return ["1, 1"] if self.running else self.start_trial(t)
        if key == "do_trialStop":
            if not (self.exp_running and self.running):
                return ["Initialize experiment and start trial"]
            self._button = []
            return self.stop_trial(t)
        if key in ("do_peekOpen", "do_peekClose"):  # the pin only: the timers do not see it
            return [self.set_lens(t, "X", key == "do_peekOpen")]
        if key == "get_config":
            return [f"config{k}|{v}" for k, v in self.config.items()]
        if key.startswith("set_config") and key[10:] in self.config:
            name = key[10:]
            if name == "Name":
                self.config[name] = value[:39]
            else:
                self.config[name] = _to_int(value) & 0xFFFF  # Arduino toInt into an unsigned int
            return [f"config{name}|{self.config[name]}"]
        return []

    # -- button ------------------------------------------------------------------------------
    def on_button(self, t: int, down: bool) -> list[str]:
        control, click = self.config["ButtonControl"], self.config["ClickMode"]
        if click:
            if not down:
                return []
            lines: list[str] = []
            if self.exp_running and control == 0:
                lines = self.stop_trial(t) if self.running else self.start_trial(t)
            elif self.exp_running and control == 2:
                self.press(t)
            return [*lines, "Click"]
        if control == 1:
            return [self.set_lens(t, "X", down)]
        if control == 0:
            lines = []
            if down and self.exp_running and not self.running:
                lines = self.start_trial(t)
            elif not down and self.exp_running and self.running:
                lines = self.stop_trial(t)
            return [*lines, f"btn|{int(down)}"]
        return []


def _to_int(text: str) -> int:
    """Arduino's ``String.toInt``: the leading integer, 0 when there is none."""
    digits = ""
    for i, ch in enumerate(text):
        if ch.isdigit() or (ch == "-" and i == 0):
            digits += ch
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0
