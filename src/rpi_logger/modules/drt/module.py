"""The DRT module: an sDRT or wDRT (ISO 17488 detection response task) recorded on the host clock.

The device is read through the one serial transport (`framework.serial.SerialSource`), found by
its USB VID:PID or at a configured port; with ``--simulate`` the simulated sDRT behind a pty
(design.md §7) takes its place. On every connection the settings are sent (the ISO preset or the
custom ISI, stimulus duration, intensity) and read back from the device's ``cfg>`` reply; the
wDRT gets ``dev>iso`` for the preset or one ``set>K:V,...`` for custom values, and its clock
set with ``set_rtc>`` on the next whole UTC second (status: ``device_time``, its RTC and its
difference from the host's wall clock), before any experiment (re)start, since a wDRT reads no
command during a block's first ISI.

Each trial starts the device's experiment at the trial's start (``exp_start`` at
``at_mono_ns``) and stops it at its stop; a stimulus lit before the stop gets its ``trl>`` line
(up to `PENDING_WAIT_S`). Rows (`sdrt.Stimulus`, classified by us) carry the onset mapped
through the device clock fit (`io.clock_fit.DriftFit`). A row waits until the fit has
``fit_settle_pairs`` pairs, since the first stimuli of a session would otherwise carry one
line's latency; rows still waiting at the trial's stop are written with the fit as it is then
(a crash before then loses only those). ``trialNNN_time_sync.csv`` gets the fit in force at the
start and each refit. An unplug is a gap in both files, from the last line before it to the
reconnection; the experiment is restarted on the reconnected device, whose stimulus counter
restarts at 1: rows carry ``run`` (1 + the restarts before their onset), so (run, stimulus) is
unique. A device clock that jumps (a power-cycled device) gets a fit of its own.

The wDRT (`wdrt`) reports a stimulus's results at the END of its ISI: its row waits one ISI. At a
trial's stop (``trl>0``) the lit stimulus's ``dta>`` is not awaited (up to ISIH after onset):
once its hit window (2.5 s) is over, it is written from its own lines (onset, ``rt>``, clicks
so far), with ``device_unix`` empty; a press after that is not in the trial. Malformed lines are
counted (status ``malformed``) and logged at most every 5 s, never fatal.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import time
from dataclasses import replace
from typing import Any, ClassVar

from rpi_logger.framework import protocol
from rpi_logger.framework.base import CommandError, FileRecord, ModuleContext
from rpi_logger.framework.serial import Line, Link, SerialOptions, SerialSource
from rpi_logger.framework.serial_module import SerialModule
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.io.clock import mono_to_wall
from rpi_logger.io.serial.ports import USB_IDS
from rpi_logger.io.sinks.base import SinkError
from rpi_logger.modules.drt import wdrt
from rpi_logger.modules.drt.files import TrialFiles
from rpi_logger.modules.drt.sdrt import SdrtTracker, Stimulus
from rpi_logger.modules.drt.settings import SETTINGS
from rpi_logger.modules.drt.wdrt import WdrtTracker
from rpi_logger.simulation.serial.sdrt import SimulatedSDRT
from rpi_logger.simulation.serial.wdrt import SimulatedWDRT

log = logging.getLogger("rpi_logger.drt")
PENDING_WAIT_S = 3.0
_TICK_S = 0.005
_END = b"\n\r"  # the sDRT's command terminator
WDRT_GAP_S = 0.025  # the wDRT reads a 10 ms chunk as one command: at least 20 ms apart
_RTC_LEAD_S = 0.3  # set_rtc> goes on a whole second at least this long after the connection


class Commands:
    """What a device type is told (sDRT by default; `WdrtCommands` for the wDRT)."""

    start = b"exp_start" + _END
    stop = b"exp_stop" + _END
    stim_on = b"stim_on" + _END
    stim_off = b"stim_off" + _END
    get_config = b"get_config" + _END
    battery: bytes | None = None
    #: Whether the device answers the manual stimulus with ``stm>`` lines (the wDRT does not).
    echoes_stim = True
    set_rtc = False

    def __init__(self, iso_preset: bool = False) -> None:
        self.iso_preset = iso_preset

    def settings(self, wanted: dict[str, int]) -> list[bytes]:
        """The commands applying `wanted` (then `get_config` reads them back)."""
        return [f"set_{k} {v}".encode() + _END for k, v in wanted.items()]

    def expected(self, wanted: dict[str, int]) -> dict[str, str]:
        """What the device's ``cfg>`` reply must then say."""
        return {k: str(v) for k, v in wanted.items()}


class WdrtCommands(Commands):
    start = b"trl>1" + wdrt.END
    stop = b"trl>0" + wdrt.END
    stim_on = b"dev>1" + wdrt.END
    stim_off = b"dev>0" + wdrt.END
    get_config = b"get_cfg>" + wdrt.END
    battery = b"get_bat>" + wdrt.END
    echoes_stim = False
    set_rtc = True  # the device's RTC stamps its dta> lines and its own SD card file

    def settings(self, wanted: dict[str, int]) -> list[bytes]:
        """``dev>iso`` for the ISO preset (plus the intensity if not 100 %), else one ``set>``
        with every pair."""
        values = wdrt.device_values(wanted)
        if not self.iso_preset:
            return [wdrt.set_command(values)]
        extra = {k: v for k, v in values.items() if wdrt.ISO.get(k) != v}
        return [b"dev>iso" + wdrt.END] + ([wdrt.set_command(extra)] if extra else [])

    def expected(self, wanted: dict[str, int]) -> dict[str, str]:
        return {k: str(v) for k, v in wdrt.device_values(wanted).items()}


ISO_PRESET = {"lowerISI": 3000, "upperISI": 5000, "stimDur": 1000}


def device_settings(settings: dict[str, Any]) -> dict[str, int]:
    """The sDRT settings to apply: the ISO preset or the custom values, and the intensity."""
    if settings["iso_preset"]:
        wanted = dict(ISO_PRESET)
    else:
        if settings["lower_isi_ms"] > settings["upper_isi_ms"]:
            raise CommandError("lower_isi_ms is above upper_isi_ms", protocol.BAD_ARGS)
        wanted = {
            "lowerISI": settings["lower_isi_ms"],
            "upperISI": settings["upper_isi_ms"],
            "stimDur": settings["stim_dur_ms"],
        }
    wanted["intensity"] = settings["intensity"]
    return wanted


class TrialFigures:
    """Live figures of the trial for the UI: hit rate and mean reaction time of the hits."""

    def __init__(self) -> None:
        self.counts = {"hit": 0, "miss": 0, "premature": 0, "late": 0}
        self._rt_sum = 0

    def add(self, s: Stimulus) -> None:
        self.counts[s.result] += 1
        if s.result == "hit" and s.rt_ms is not None:
            self._rt_sum += s.rt_ms

    def as_dict(self) -> dict[str, Any]:
        n = sum(self.counts.values())
        hits = self.counts["hit"]
        return {
            "stimuli": n,
            **self.counts,
            "hit_rate": round(hits / n, 3) if n else None,
            "mean_rt_ms": round(self._rt_sum / hits, 1) if hits else None,
        }


def summary(device: dict[str, Any]) -> str:
    """The page's line for a DRT: connection, the trial's hit rate and mean RT, battery."""
    parts = [f"{device['id']}: {'connected' if device['connected'] else 'not connected'}"]
    trial = device.get("trial")
    if trial:
        n, rate, rt = trial["stimuli"], trial["hit_rate"], trial["mean_rt_ms"]
        hits = "-" if rate is None else f"{rate:.0%}"
        mean = "-" if rt is None else f"{rt:.0f} ms"
        parts.append(f"{n} {'stimulus' if n == 1 else 'stimuli'}, hits {hits}, mean RT {mean}")
    if device.get("stimulus_on"):
        parts.append("stimulus on")
    if device.get("battery_percent") is not None:
        parts.append(f"battery {device['battery_percent']} %")
    return " · ".join(parts)


class DrtModule(SerialModule):
    settings = SETTINGS
    commands: ClassVar[dict[str, dict]] = {"stim_on": {}, "stim_off": {}}

    def __init__(self, context: ModuleContext) -> None:
        super().__init__(context)
        self.wanted: dict[str, int] = {}
        self.cmds: Commands = Commands()
        self.tracker = SdrtTracker()
        self.files: TrialFiles | None = None
        self.figures = TrialFigures()
        self._waiting: list[Stimulus] = []  # rows waiting for the fit to settle
        self._exp_start_at: int | None = None
        self._exp_running = False
        self._restarts: list[int] = []  # when the experiment was restarted in this trial
        self._restart_due = False
        self._rtc_at: float | None = None  # the wall second to send the wDRT's set_rtc> on

    @property
    def device_id(self) -> str:
        return self.config.get("device_id") or self.config.get("device_type") or "sDRT"

    # -- configuration -------------------------------------------------------------------------
    async def configure(self, settings: dict[str, Any], simulate: bool) -> dict[str, Any]:
        if self.trial is not None:
            raise CommandError("cannot reconfigure the DRT during a trial", protocol.BAD_STATE)
        wanted = device_settings(settings)
        await self.release_simulator()
        self.config, self.wanted = settings, wanted
        kind = settings.get("device_type", "sDRT")
        self.cmds = (WdrtCommands if kind == "wDRT" else Commands)(settings["iso_preset"])
        options = SerialOptions(
            usb_ids=[USB_IDS[kind]],
            path=settings.get("port") or None,
            silent_timeout_s=settings["silent_timeout_s"],
            probe=self.cmds.get_config,
            command_gap_s=WDRT_GAP_S if kind == "wDRT" else 0.0,
        )
        if simulate:
            self.sim = SimulatedWDRT() if kind == "wDRT" else SimulatedSDRT()
            await self.sim.start()
            options.lister = self.sim.ports
            self.context.simulate = True
        tracker = WdrtTracker if kind == "wDRT" else SdrtTracker
        self.tracker = tracker(mapped=settings["map_clock"])
        self.use(SerialSource(self.device_id, options))
        return {"devices": [{"id": self.device_id, "simulated": simulate, "settings": wanted}]}

    # -- device work -----------------------------------------------------------------------------
    async def alongside(self, source: SerialSource) -> None:
        """Set the wDRT's clock on a whole second; start the experiment at the trial's start
        instant (after the clock is set: a wDRT reads no command in a block's first ISI)."""
        while True:
            await asyncio.sleep(_TICK_S)
            if not self.connected:
                continue
            rtc_at = self._rtc_at
            if rtc_at is not None:
                if time.time() < rtc_at:
                    continue
                self._rtc_at = None
                source.send(wdrt.rtc_command(round(rtc_at)))
            due = self._exp_start_at
            if due is not None and time.monotonic_ns() >= due:
                self._exp_start_at = None
                self._exp_running = source.send(self.cmds.start)
                if self._restart_due and self._exp_running:
                    self._restart_due = False
                    self._restarts.append(time.monotonic_ns())

    def on_disconnected(self, link: Link) -> None:
        self.tracker.link_lost()
        if self.files is not None:
            self.files.disconnects += 1

    def on_connected(self, link: Link, down: Link | None) -> None:
        source = self.source
        if source is not None:  # settings, then read them back (spaced by the transport)
            for command in (
                *self.cmds.settings(self.wanted),
                self.cmds.get_config,
                self.cmds.battery,
            ):
                if command is not None:
                    source.send(command)
        if down is not None and self.files is not None:
            self.files.gap(*self.gap_of(down, link))
        if self.cmds.set_rtc:  # on the next whole UTC second, once the settings are out
            self._rtc_at = float(math.ceil(time.time() + _RTC_LEAD_S))
        if self._exp_running:  # a re-plugged device starts idle: the trial goes on
            self._exp_start_at = link.t_mono_ns
            self._restart_due = True  # its stimulus counter restarts at 1: a new run

    def on_line(self, line: Line) -> None:
        tracker = self.tracker
        pairs = tracker.fit.points
        stimulus = tracker.line(line.text, line.t_mono_ns, mono_to_wall(line.t_mono_ns))
        if line.text.startswith("cfg>"):
            self._check_config()
        if tracker.fit.points != pairs and self.files is not None:
            self.files.time_sync(tracker.fit.estimate(line.t_mono_ns), line.t_mono_ns)
        if stimulus is None:
            return
        self._add(stimulus)

    def _add(self, stimulus: Stimulus) -> None:
        """A finished stimulus: counted live, then its row waits for the fit to settle. Its
        run: 1 + the restarts before its onset (a stimulus lit before a restart, whose line
        comes after it, is of the run before)."""
        run = 1 + sum(1 for t in self._restarts if t <= stimulus.t_mono_ns)
        stimulus = replace(stimulus, run=run)
        if self.files is not None and self.files.window.accepts(stimulus.t_mono_ns):
            self.figures.add(stimulus)  # live, before its row waits for the fit
        self._waiting.append(stimulus)
        if self.tracker.fit.points >= self.config.get("fit_settle_pairs", 16):
            self._flush()

    def _flush(self) -> None:
        """Write the waiting rows, mapped by the fit as it is now."""
        waiting, self._waiting = self._waiting, []
        files = self.files
        for s in waiting:
            s = self.tracker.remap(s)
            if files is not None and files.window.accepts(s.t_mono_ns):
                files.stimulus(s)

    def _check_config(self) -> None:
        got = self.tracker.config
        expected = self.cmds.expected(self.wanted)
        if any(got.get(k) != v for k, v in expected.items()):
            log.warning(
                "%s settings not taken: wanted %s, device has %s", self.tracker.name, expected, got
            )

    # -- trials ----------------------------------------------------------------------------------
    async def start_trial(self, window: TrialWindow) -> dict[str, Any]:
        assert self.session is not None
        await self.require_connected()
        files = TrialFiles(
            window,
            self.session.module_dir / self.device_id,
            self.device_id,
            {"simulated": self.sim is not None, "mapped": self.tracker.mapped},
        )
        try:
            await files.open(self.announce_file)
        except (SinkError, OSError) as exc:
            raise CommandError(f"DRT: {exc}") from None
        self.files, self.figures = files, TrialFigures()
        self.gap_at_start(files.drt, files.sync)
        self._restarts, self._restart_due = [], False
        self._waiting = [s for s in self._waiting if window.accepts(s.t_mono_ns)]
        fit = self.tracker.fit
        if fit.ready:  # the fit in force at the start
            files.time_sync(fit.estimate(window.start_ns), window.start_ns)
        self._exp_start_at = window.start_ns
        return {"device": self.device_id}

    async def stop_trial(self, window: TrialWindow) -> list[FileRecord]:
        files = self.files
        if files is None:
            return []
        self._exp_start_at = None
        if self._exp_running and self.source is not None:
            self.source.send(self.cmds.stop)
        self._exp_running = False
        # A stimulus lit before the stop: the sDRT's trl> line comes 2.5 s after the onset; the
        # wDRT's dta> only at the end of its ISI, so it is written once its hit window is over.
        deadline = time.monotonic() + PENDING_WAIT_S
        tracker = self.tracker
        while self.connected and time.monotonic() < deadline:
            pending = tracker.pending_onset_ns
            if pending is None or not window.accepts(pending):
                break
            if tracker.pending_settled(time.monotonic_ns()):
                break
            await asyncio.sleep(0.05)
        pending = tracker.pending_onset_ns
        if pending is not None and window.accepts(pending):
            last = tracker.close_pending()
            if last is not None:
                self._add(last)
        self._flush()
        self.files = None
        self.gap_at_stop(window.stop_ns or time.monotonic_ns(), files.drt, files.sync)
        return await files.close()

    # -- commands --------------------------------------------------------------------------------
    def _send(self, command: bytes) -> dict[str, Any]:
        if self.source is None or not self.source.send(command):
            raise CommandError(f"no {self.device_id} connected", protocol.BAD_STATE)
        return {}

    async def cmd_stim_on(self) -> dict[str, Any]:
        """Light the stimulus (for setting up a study)."""
        return self._manual(True)

    async def cmd_stim_off(self) -> dict[str, Any]:
        """Dark the stimulus."""
        return self._manual(False)

    def _manual(self, on: bool) -> dict[str, Any]:
        result = self._send(self.cmds.stim_on if on else self.cmds.stim_off)
        if not self.cmds.echoes_stim:  # the wDRT sends no stm> for it: we say what we did
            self.tracker.stim_on = on
        return result

    # -- status ----------------------------------------------------------------------------------
    def _device_time(self) -> dict[str, Any] | None:
        """The wDRT's RTC at its last ``rtc>`` reply and its difference from the host's wall
        clock then (the reply's latency included: a few ms)."""
        rtc = getattr(self.tracker, "rtc_unix", None)
        if rtc is None:
            return None
        iso = datetime.datetime.fromtimestamp(rtc, datetime.UTC).isoformat(timespec="milliseconds")
        return {"utc": iso, "minus_host_s": self.tracker.rtc_minus_host_s}

    def status(self) -> dict[str, Any]:
        source = self.source
        if source is None:
            return {"devices": []}
        fit = self.tracker.fit
        device: dict[str, Any] = {
            **self.link_status(source),
            "config": dict(self.tracker.config),
            "stimulus_on": self.tracker.stim_on,
            "battery_percent": getattr(self.tracker, "battery", None),
            "device_time": self._device_time(),
            "trial": self.figures.as_dict() if self.files is not None else None,
            "clock": {"mapped": self.tracker.mapped, "pairs": fit.points, "drift_ppm": None}
            | ({"drift_ppm": round(fit.drift_ppm, 2)} if fit.points > 1 else {}),
            "lines": source.serial_stats.lines,
            "malformed": source.serial_stats.malformed + self.tracker.malformed,
            "disconnects": source.serial_stats.disconnects,
            "recording": self.files is not None,
        }
        if self.files is not None:
            device["files"] = self.files.status()
        return {"devices": [device], "connected": self.connected, "summary": [summary(device)]}
