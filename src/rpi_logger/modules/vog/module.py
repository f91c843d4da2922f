"""The VOG module: occlusion goggles (ISO 16673), Red Scientific sVOG or wVOG, in the four modes,
``trialNNN_vog.csv`` (design.md §5).

Read through the one serial transport, found by USB VID:PID or at a configured port; with
``--simulate`` the simulated goggles behind a pty (design.md §7). On each connection (a re-plug
too: the goggles restart idle) the mode and its times are sent, the experiment is started (a
trial only runs inside one) and the settings are read back; the status shows the device's.

Modes (`mode`): **cycle** open `open_ms`, closed `closed_ms`, repeating from the trial's start
(a press of the participant's button ends the goggles' trial: task done);
**peek** closed, each press of the participant's button opens for `open_ms` (a press within
`closed_ms` of the last close waits); **eBlindfold** open from the trial's start until the
participant's press, which ends the goggles' trial (TSOT = search time; opens at most 65.5 s);
**direct** the lenses follow the button (sVOG, held) or the ``lens`` command, no timing.

Each trial starts the goggles' trial at its start instant and stops it at its stop instant.
Rows (design.md §5 plus ``lens`` and ``t_arrival_ns``): each lens state the goggles report
(``open``/``close``; ``lens`` A left, B right, X both) and each button press they report
(``button``, ``button_release``), at the host arrival of their line (the lines carry no time;
lines of one read get 1 ns steps to keep their order), and the goggles' trial end (``trial_end``:
their own TSOT ``open_ms``, ``closed_ms``, TTT ``total_ms``), at its arrival or, when it comes
after the stop, at the trial's last instant. The file record's extra ``totals`` and the status
hold both the goggles' totals (``device``, summed over their reports in the trial) and ours
(``host``, `totals.LensTotals`: from the lens rows on the host clock, right in direct mode too).
An unplug is a gap in the file; the trial goes on after the re-plug. Command ``lens`` sets the
lenses by hand (``lens open``, ``lens close a``; A/B only on the wVOG).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, ClassVar

from rpi_logger.framework import protocol
from rpi_logger.framework.base import CommandError, FileRecord, ModuleContext
from rpi_logger.framework.serial import Line, Link, SerialOptions, SerialSource
from rpi_logger.framework.serial_module import SerialModule
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.framework.trial_stream import TrialStream
from rpi_logger.io.clock import mono_to_wall
from rpi_logger.io.serial.ports import USB_IDS
from rpi_logger.modules.vog.protocol import Reply, SvogProtocol, WvogProtocol
from rpi_logger.modules.vog.settings import SETTINGS
from rpi_logger.modules.vog.totals import LensTotals
from rpi_logger.simulation.serial.svog import SimulatedSVOG
from rpi_logger.simulation.serial.wvog import SimulatedWVOG

log = logging.getLogger("rpi_logger.vog")
#: How long a stop waits for the goggles' report of the trial.
DATA_WAIT_S = 2.0
_TICK_S = 0.005
_LOG_EVERY_S = 5.0

VOG_COLUMNS = (
    "device_trial",
    "t_mono_ns",
    "t_wall_unix",
    "event",
    "lens",
    "open_ms",
    "closed_ms",
    "total_ms",
    "device",
    "t_arrival_ns",
)
_STATES = {"open": True, "clear": True, "1": True, "close": False, "closed": False,
           "opaque": False, "0": False}  # fmt: skip


def summary(device: dict[str, Any]) -> str:
    """The page's line for goggles: connection, mode, lenses, the trial's TSOT and TTT so far."""
    parts = [f"{device['id']}: {'connected' if device['connected'] else 'not connected'}"]
    parts.append(device["mode"])
    if device["lens_open"] is not None:
        parts.append("lens open" if device["lens_open"] else "lens closed")
    host = (device.get("trial_totals") or {}).get("host")
    if host:
        parts.append(f"TSOT {host['open_ms'] / 1000:.1f} s of {host['total_ms'] / 1000:.1f} s")
    if device.get("battery_percent") is not None:
        parts.append(f"battery {device['battery_percent']} %")
    return " · ".join(parts)


class VogModule(SerialModule):
    settings = SETTINGS
    commands: ClassVar[dict[str, dict]] = {
        "lens": {"state": ((str,), True), "lens": ((str,), False)},
    }

    def __init__(self, context: ModuleContext) -> None:
        super().__init__(context)
        self.proto: SvogProtocol = SvogProtocol()
        self.wanted: dict[str, str] = {}
        self.stream: TrialStream[tuple] | None = None
        self.device_config: dict[str, str] = {}
        self.lens_state: dict[str, bool | None] = {"A": None, "B": None}
        self.device_trial = 0
        self.experiment_started = False
        self.battery: int | None = None
        self.host: LensTotals | None = None
        self.reports: list[dict[str, int]] = []  # the goggles' trial ends in this trial
        self.last_totals: dict[str, Any] | None = None
        self.malformed = 0
        self.notices = 0
        self.last_notice: str | None = None
        self._last_log = 0.0
        self._last_row_t: int | None = None
        self._start_due: int | None = None  # when to start the goggles' trial
        self._want_trial = False  # a trial is on: the goggles should run theirs
        self._device_open = False  # the goggles' trial started and not yet reported
        self._starts_sent = 0  # trial starts not yet answered by ``trialStart`` (sVOG)
        self._reported = asyncio.Event()  # the goggles' trial ended or cannot end (unplug)

    @property
    def device_id(self) -> str:
        return self.config.get("device_id") or self.config.get("device_type") or "sVOG"

    @property
    def mode(self) -> str:
        return str(self.config.get("mode", "cycle"))

    async def configure(self, settings: dict[str, Any], simulate: bool) -> dict[str, Any]:
        if self.trial is not None:
            raise CommandError("cannot reconfigure the VOG during a trial", protocol.BAD_STATE)
        await self.release_simulator()
        self.config = settings
        kind = settings.get("device_type", "sVOG")
        self.proto = WvogProtocol() if kind == "wVOG" else SvogProtocol()
        self.wanted = self.proto.wanted(
            self.mode, settings["open_ms"], settings["closed_ms"], settings["debounce_ms"]
        )
        self.device_config = {}
        options = SerialOptions(
            usb_ids=[USB_IDS[kind]],
            path=settings.get("port") or None,
            silent_timeout_s=settings["silent_timeout_s"],
            probe=self.proto.get_config,
            command_gap_s=self.proto.gap_s,
        )
        if simulate:
            self.sim = SimulatedWVOG() if kind == "wVOG" else SimulatedSVOG()
            await self.sim.start()
            options.lister = self.sim.ports
            self.context.simulate = True
        self.use(SerialSource(self.device_id, options))
        return {"devices": [{"id": self.device_id, "simulated": simulate, "mode": self.mode}]}

    # -- device work -----------------------------------------------------------------------------
    def _send(self, command: bytes) -> bool:
        return self.source is not None and self.source.send(command)

    async def alongside(self, source: SerialSource) -> None:
        """Start the goggles' trial at the trial's start instant, stop it at its stop instant."""
        while True:
            await asyncio.sleep(_TICK_S)
            now = time.monotonic_ns()
            due = self._start_due
            if due is not None and now >= due and self.connected:
                self._start_due = None
                if self._send(self.proto.trial_start):
                    self._device_open = True
                    self._starts_sent += 1
                    self.device_trial += 1  # the goggles count their trials from 1 too
            stream = self.stream
            stop = stream.window.stop_ns if stream is not None else None
            if self._want_trial and stop is not None and now >= stop:
                self._end_device_trial()

    def _end_device_trial(self) -> None:
        self._want_trial, self._start_due = False, None
        if self.mode == "direct":  # the goggles keep a directly opened lens open
            self._send(self.proto.lens("x", False))
        if self._device_open:
            self._send(self.proto.trial_stop)

    def on_connected(self, link: Link, down: Link | None) -> None:
        # Settings first: the wVOG reads its mode when the experiment starts.
        for command in self.proto.set_commands(self.wanted):
            self._send(command)
        self.experiment_started = self._send(self.proto.exp_start)
        self.device_trial = self._starts_sent = 0  # the experiment restarts the count
        self._send(self.proto.get_config)
        if down is not None and self.stream is not None:
            start, end, reason = self.gap_of(down, link)
            self.stream.gap(start, end, None, reason)
        if self._want_trial:  # re-plugged goggles start idle: the trial goes on
            self._start_due = link.t_mono_ns

    def on_disconnected(self, link: Link) -> None:
        self.lens_state = {"A": None, "B": None}
        self.experiment_started = self._device_open = False
        self._reported.set()
        if self.host is not None:
            self.host.unknown(link.t_mono_ns)

    def on_line(self, line: Line) -> None:
        reply = self.proto.parse(line.text)
        if reply is None:
            self._bad(line.text)
        elif reply.kind == "lens":
            self._lens(reply, line.t_mono_ns)
        elif reply.kind == "button":
            self._row("button" if reply.is_open else "button_release", line.t_mono_ns)
        elif reply.kind == "trial_end":
            self._trial_end(reply, line.t_mono_ns)
        elif reply.kind == "config":
            self.device_config.update(reply.config)
            if self.proto.config_complete(reply):
                self._check_config()
        elif reply.kind == "trial_start":
            if self._starts_sent:
                self._starts_sent -= 1
            else:  # the participant's button started it (button-controlled trial)
                self.device_trial += 1
                self._device_open = True
        elif reply.kind == "battery":
            self.battery = reply.value
        else:
            self._notice(reply)

    def _lens(self, reply: Reply, t: int) -> None:
        for name in ("A", "B") if reply.lens == "X" else (reply.lens,):
            self.lens_state[name] = reply.is_open
        if self.host is not None:
            self.host.lens(t, self.lens_open)
        self._row("open" if reply.is_open else "close", t, reply.lens)

    def _trial_end(self, reply: Reply, t: int) -> None:
        assert reply.totals is not None
        trial, opened, closed, total = reply.totals
        self.device_trial, self._device_open = trial, False
        self._reported.set()
        stream = self.stream
        window = stream.window if stream is not None else None
        if window is None or t < window.start_ns:
            return
        if window.stop_ns is not None and t >= window.stop_ns:
            at = window.stop_ns - 1  # the report of a trial stopped at the stop: its last instant
        else:
            at = t
            if self.host is not None:
                self.host.device_end(t)
        self.reports.append({"open_ms": opened, "closed_ms": closed, "total_ms": total})
        self._row("trial_end", at, reply.lens, opened, closed, total, arrival=t)

    def _row(
        self,
        event: str,
        t: int,
        lens: str = "",
        *totals: int,
        arrival: int | None = None,
    ) -> None:
        stream = self.stream
        if stream is None or not stream.window.accepts(t):
            return
        last = self._last_row_t
        if last is not None and t <= last:
            t = last + 1  # lines of one read share an arrival time: keep their order
        opened, closed, total = totals if totals else ("", "", "")
        row = (
            self.device_trial, t, mono_to_wall(t), event, lens, opened, closed, total,
            self.device_id, t if arrival is None else arrival,
        )  # fmt: skip
        if stream.offer(row):
            self._last_row_t = t

    def _check_config(self) -> None:
        if self.config_ok is False:
            log.warning(
                "%s: settings not taken: wanted %s, device has %s",
                self.device_id,
                self.wanted,
                {k: self.device_config.get(k) for k in self.wanted},
            )

    @property
    def config_ok(self) -> bool | None:
        """True when the goggles report every setting we sent; None before they said."""
        got = [self.device_config.get(k) for k in self.wanted]
        if any(v is None for v in got):
            return None
        return got == list(self.wanted.values())

    @property
    def lens_open(self) -> bool | None:
        """Open when either lens is clear, closed when both are opaque, else unknown."""
        states = self.lens_state.values()
        if any(states):
            return True
        return False if all(s is False for s in states) else None

    def _notice(self, reply: Reply) -> None:
        if reply.text.startswith("Initialize experiment"):  # the sVOG runs no trial now
            self._device_open, self._starts_sent = False, 0
            self._reported.set()
        self.notices += 1
        self.last_notice = reply.text
        level = logging.WARNING if reply.refused else logging.INFO
        log.log(level, "%s says: %s", self.device_id, reply.text[:80])

    def _bad(self, text: str) -> None:
        self.malformed += 1
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_S:  # a noisy line must not flood the log
            self._last_log = now
            log.warning(
                "%s: malformed line %r (%d so far)", self.device_id, text[:80], self.malformed
            )

    # -- trials ----------------------------------------------------------------------------------
    async def start_trial(self, window: TrialWindow) -> dict[str, Any]:
        await self.require_connected()
        stream = await self.open_trial_csv(window, "vog", VOG_COLUMNS, 1, mode=self.mode)
        self.stream, self._last_row_t, self.reports = stream, None, []
        self.host = LensTotals(window, self.lens_open)
        self._want_trial, self._start_due = True, window.start_ns
        return {"device": self.device_id, "mode": self.mode}

    async def stop_trial(self, window: TrialWindow) -> list[FileRecord]:
        stream = self.stream
        if stream is None:
            return []
        if self._want_trial:  # the stop instant passed before the live loop saw it
            self._end_device_trial()
        if self._device_open and self.connected:  # the goggles' report of the trial
            self._reported.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DATA_WAIT_S):
                    await self._reported.wait()
        self.stream = None
        stop = window.stop_ns or time.monotonic_ns()
        self.gap_at_stop(stop, stream)
        totals = self._totals(stop)
        self.host = None
        self.last_totals = totals
        record = await stream.close()
        record.extra["totals"] = totals
        return [record]

    def _totals(self, until: int) -> dict[str, Any]:
        """The goggles' totals (their reports in the trial, summed) and ours (host clock)."""
        device = None
        if self.reports:
            device = {k: sum(r[k] for r in self.reports) for k in self.reports[0]}
            device["reports"] = len(self.reports)
        host = self.host.as_dict(until) if self.host is not None else None
        return {"device": device, "host": host}

    # -- commands --------------------------------------------------------------------------------
    async def cmd_lens(self, state: str, lens: str | None = None) -> dict[str, Any]:
        """Set the lenses by hand: ``state`` open or close (``"open a"`` also names the lens),
        ``lens`` a (left), b (right) or x (both; the sVOG has only x)."""
        words = state.lower().split()
        if len(words) == 2 and lens is None:
            words, lens = words[:1], words[1]
        if len(words) != 1 or words[0] not in _STATES:
            raise CommandError(
                f"lens: state must be open or close, got {state!r}", protocol.BAD_ARGS
            )
        name = (lens or "x").lower()
        if name not in self.proto.lenses:
            choices = " or ".join(self.proto.lenses)
            raise CommandError(
                f"lens: the {self.proto.kind} has lens {choices}, got {lens!r}", protocol.BAD_ARGS
            )
        is_open = _STATES[words[0]]
        if not self.connected or not self._send(self.proto.lens(name, is_open)):
            raise CommandError(f"lens: no {self.device_id} connected", protocol.BAD_STATE)
        return {"lens": name.upper(), "state": "open" if is_open else "close"}

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        source = self.source
        if source is None:
            return {"devices": []}
        trial = None
        if self.stream is not None:
            trial = self._totals(time.monotonic_ns())
        device = {
            **self.link_status(source),
            "type": self.proto.kind,
            "mode": self.mode,
            "config": dict(self.device_config),
            "config_ok": self.config_ok,
            "experiment_started": self.experiment_started,
            "device_trial": self.device_trial,
            "lens": dict(self.lens_state),
            "lens_open": self.lens_open,
            "trial_totals": trial,
            "last_trial_totals": self.last_totals,
            "battery_percent": self.battery,
            "malformed": source.serial_stats.malformed + self.malformed,
            "notices": self.notices,
            "last_notice": self.last_notice,
            "disconnects": source.serial_stats.disconnects,
            "recording": self.stream is not None,
        }
        return {"devices": [device], "connected": self.connected, "summary": [summary(device)]}
