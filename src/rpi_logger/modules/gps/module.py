"""The GPS module: an NMEA 0183 receiver, one row per fix in ``trialNNN_gps.csv`` (design.md §5).

The receiver is read through the one serial transport (`framework.serial.SerialSource`) at its
configured port (a UART has no USB ids); with ``--simulate`` the simulated receiver behind a pty
(design.md §7) takes its place. `nmea.FixBuilder` turns sentences into fixes: a row carries the
fix's own UTC time (``t_fix_unix``) and the host arrival of its first sentence (``t_mono_ns``).
A fix is complete when the next one starts, or when the receiver has been quiet for
`FLUSH_QUIET_S`.

Stale fixes are marked in the file, not only in the status: each row says how old its fix was
when it arrived (``age_s``: arrival wall time minus ``t_fix_unix``) and ``stale`` = 1 when that
age exceeds ``stale_s`` (a receiver repeating an old fix) or when the fix before it arrived
more than ``stale_s`` earlier (the first fix after a stretch without one). A stretch of
``stale_s`` without any sentence is a gap in the file's record ("receiver quiet"), as an unplug
is (from the last line before it to the reconnection), so `verify` lists both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from rpi_logger.framework import protocol
from rpi_logger.framework.base import CommandError, FileRecord, ModuleContext
from rpi_logger.framework.serial import Line, Link, SerialOptions, SerialSource
from rpi_logger.framework.serial_module import SerialModule
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.framework.trial_stream import TrialStream
from rpi_logger.io.clock import mono_to_wall
from rpi_logger.modules.gps.nmea import Fix, FixBuilder
from rpi_logger.modules.gps.settings import SETTINGS
from rpi_logger.simulation.serial.gps import SimulatedGPS

log = logging.getLogger("rpi_logger.gps")
FLUSH_QUIET_S = 0.8
_TICK_S = 0.1

GPS_COLUMNS = (
    "t_mono_ns",
    "t_wall_unix",
    "t_fix_unix",
    "lat",
    "lon",
    "alt_m",
    "speed_mps",
    "course_deg",
    "fix_quality",
    "satellites",
    "hdop",
    "pdop",
    "vdop",
    "valid",
    "age_s",
    "stale",
)


def _cell(value: Any) -> Any:
    return "" if value is None else value


def fix_age(fix: Fix | None) -> float | None:
    """How old a fix was when its first sentence arrived (s): arrival wall time minus its UTC
    time; None when the receiver gave no time."""
    if fix is None or fix.t_fix_unix is None:
        return None
    return round(mono_to_wall(fix.t_mono_ns) - fix.t_fix_unix, 3)


def gps_row(fix: Fix, stale_s: float = 5.0, previous_ns: int | None = None) -> tuple:
    """The CSV row of a fix (empty cells for what the receiver did not say); `previous_ns` is
    the arrival of the fix before it, for the stale mark (module docstring)."""
    wall = mono_to_wall(fix.t_mono_ns)
    age_s = fix_age(fix)
    stale = (age_s is not None and age_s > stale_s) or (
        previous_ns is not None and fix.t_mono_ns - previous_ns > stale_s * 1e9
    )
    return (
        fix.t_mono_ns,
        wall,
        _cell(fix.t_fix_unix),
        *(
            _cell(v)
            for v in (
                fix.lat,
                fix.lon,
                fix.alt_m,
                fix.speed_mps,
                fix.course_deg,
                fix.fix_quality,
                fix.satellites,
                fix.hdop,
                fix.pdop,
                fix.vdop,
            )
        ),
        int(fix.valid),
        _cell(age_s),
        int(stale),
    )


def summary(device: dict[str, Any]) -> str:
    """The page's line for a receiver: connection, position, satellites, stale or not."""
    parts = [f"{device['id']}: {'connected' if device['connected'] else 'not connected'}"]
    fix = device.get("fix")
    if fix is None or not fix["valid"] or fix["lat"] is None:
        parts.append("no fix")
    else:
        parts.append(f"{fix['lat']:.5f}, {fix['lon']:.5f}")
        if fix["satellites"] is not None:
            parts.append(f"{fix['satellites']} satellites")
    if device["stale"]:
        parts.append("STALE")
    return " · ".join(parts)


class GpsModule(SerialModule):
    settings = SETTINGS

    def __init__(self, context: ModuleContext) -> None:
        super().__init__(context)
        self.builder = FixBuilder()
        self.stream: TrialStream[tuple] | None = None
        self.last_fix: Fix | None = None
        self.disconnects_in_trial = 0
        self.quiet_gaps_in_trial = 0
        self._last_line_ns = 0
        #: Where the current stretch without lines began: the last line, or the reconnection
        #: that ended a gap already recorded (None before any line).
        self._silent_from_ns: int | None = None

    @property
    def device_id(self) -> str:
        return self.config.get("device_id") or "gps"

    async def configure(self, settings: dict[str, Any], simulate: bool) -> dict[str, Any]:
        if self.trial is not None:
            raise CommandError("cannot reconfigure the GPS during a trial", protocol.BAD_STATE)
        await self.release_simulator()
        self.config = settings
        options = SerialOptions(
            path=settings["port"],
            baudrate=settings["baudrate"],
            silent_timeout_s=settings["silent_timeout_s"],
        )
        if simulate:
            self.sim = SimulatedGPS()
            await self.sim.start()
            options.path = None
            options.lister = self.sim.ports
            options.usb_ids = [SimulatedGPS.usb_ids]
            self.context.simulate = True
        self.builder = FixBuilder()
        self.use(SerialSource(self.device_id, options))
        return {"devices": [{"id": self.device_id, "simulated": simulate}]}

    # -- device work -----------------------------------------------------------------------------
    @property
    def stale_s(self) -> float:
        return float(self.config.get("stale_s", 5.0))

    def on_line(self, line: Line) -> None:
        if self.stream is not None:
            self._quiet_gap(self.stream, line.t_mono_ns)
        self._last_line_ns = self._silent_from_ns = line.t_mono_ns
        self._fix(self.builder.line(line.text, line.t_mono_ns))

    def _quiet_gap(self, stream: TrialStream[tuple], until_ns: int) -> None:
        """Record the stretch since the last line as a gap when it lasted ``stale_s`` or more."""
        since = self._silent_from_ns
        if since is None or until_ns - since < self.stale_s * 1e9:
            return
        stream.gap(since, until_ns, None, f"receiver quiet for {(until_ns - since) / 1e9:.1f} s")
        self.quiet_gaps_in_trial += 1

    async def alongside(self, source: SerialSource) -> None:
        """A fix is complete when the receiver has said all it will for it."""
        while True:
            await asyncio.sleep(_TICK_S)
            quiet = time.monotonic_ns() - self._last_line_ns
            if self.builder.fix is not None and quiet > FLUSH_QUIET_S * 1e9:
                self._fix(self.builder.flush())

    def _fix(self, fix: Fix | None, stream: TrialStream[tuple] | None = None) -> None:
        """Keep a complete fix; its row goes to `stream` (default: the trial's, if any)."""
        if fix is None:
            return
        previous, self.last_fix = self.last_fix, fix
        stream = stream or self.stream
        if stream is not None:
            before = None if previous is None else previous.t_mono_ns
            stream.offer(gps_row(fix, self.stale_s, before))

    def on_disconnected(self, link: Link) -> None:
        self._fix(self.builder.flush())
        if self.stream is not None:
            self.disconnects_in_trial += 1

    def on_connected(self, link: Link, down: Link | None) -> None:
        if down is not None and self.stream is not None:
            start, end, reason = self.gap_of(down, link)
            self.stream.gap(start, end, None, reason)
        if down is not None:
            self._silent_from_ns = link.t_mono_ns  # the gap up to here is recorded

    # -- trials ----------------------------------------------------------------------------------
    async def start_trial(self, window: TrialWindow) -> dict[str, Any]:
        await self.require_connected()
        stream = await self.open_trial_csv(window, "gps", GPS_COLUMNS, 0)
        self.stream, self.disconnects_in_trial, self.quiet_gaps_in_trial = stream, 0, 0
        return {"device": self.device_id}

    async def stop_trial(self, window: TrialWindow) -> list[FileRecord]:
        stream, self.stream = self.stream, None
        if stream is None:
            return []
        fix = self.builder.fix
        if fix is not None and window.accepts(fix.t_mono_ns):
            self._fix(self.builder.flush(), stream)  # the last fix goes to this trial's file
        self._trial_end_gap(stream, window)
        record = await stream.close()
        record.extra["disconnects"] = self.disconnects_in_trial
        record.extra["quiet_gaps"] = self.quiet_gaps_in_trial
        return [record]

    def _trial_end_gap(self, stream: TrialStream[tuple], window: TrialWindow) -> None:
        """A disconnection or a quiet stretch still going on at the stop ends at the stop."""
        stop = window.stop_ns if window.stop_ns is not None else time.monotonic_ns()
        if not self.gap_at_stop(stop, stream):
            self._quiet_gap(stream, stop)

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        source = self.source
        if source is None:
            return {"devices": []}
        fix = self.last_fix
        since_s = None if fix is None else (time.monotonic_ns() - fix.t_mono_ns) / 1e9
        fix_age_s = fix_age(fix)
        device: dict[str, Any] = {
            **self.link_status(source),
            "fix": None
            if fix is None
            else {
                "t_fix_unix": fix.t_fix_unix,
                "lat": fix.lat,
                "lon": fix.lon,
                "fix_quality": fix.fix_quality,
                "satellites": fix.satellites,
                "valid": fix.valid,
                "age_s": fix_age_s,
            },
            # No fix for stale_s, or the last one already that old when it came (frozen).
            "stale": since_s is None
            or since_s > self.stale_s
            or (fix_age_s is not None and fix_age_s > self.stale_s),
            "sentences": self.builder.sentences,
            "malformed": source.serial_stats.malformed + self.builder.malformed,
            "disconnects": source.serial_stats.disconnects,
            "recording": self.stream is not None,
        }
        if self.stream is not None:
            device["file"] = self.stream.status()
        return {"devices": [device], "connected": self.connected, "summary": [summary(device)]}
