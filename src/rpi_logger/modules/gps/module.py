"""The GPS module: an NMEA 0183 receiver, one row per fix in ``trialNNN_gps.csv`` (design.md §5).

The receiver is read through the one serial transport (`framework.serial.SerialSource`) at its
configured port (a UART has no USB ids); with ``--simulate`` the simulated receiver behind a pty
(design.md §7) takes its place. `nmea.FixBuilder` turns sentences into fixes: a row carries the
fix's own UTC time (``t_fix_unix``) and the host arrival of its first sentence (``t_mono_ns``).
A fix is complete when the next one starts, or when the receiver has been quiet for
`FLUSH_QUIET_S`. No fix for ``stale_s``: the status says stale. An unplug is a gap in the file
from the last line before it to the reconnection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from rpi_logger.framework import protocol
from rpi_logger.framework.base import CommandError, FileRecord, Module, ModuleContext
from rpi_logger.framework.serial import Line, Link, SerialError, SerialOptions, SerialSource
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.framework.trial_stream import TrialStream
from rpi_logger.io.clock import mono_to_wall
from rpi_logger.io.sinks import CsvSink
from rpi_logger.io.sinks.base import SinkError
from rpi_logger.modules.gps.nmea import Fix, FixBuilder
from rpi_logger.modules.gps.settings import SETTINGS
from rpi_logger.simulation.serial.gps import SimulatedGPS

log = logging.getLogger("rpi_logger.gps")
RETRY_OPEN_S = 2.0
CONNECT_WAIT_S = 5.0
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
)


def _cell(value: Any) -> Any:
    return "" if value is None else value


def gps_row(fix: Fix) -> tuple:
    """The CSV row of a fix (empty cells for what the receiver did not say)."""
    return (
        fix.t_mono_ns,
        mono_to_wall(fix.t_mono_ns),
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
    )


class GpsModule(Module):
    settings = SETTINGS

    def __init__(self, context: ModuleContext) -> None:
        super().__init__(context)
        self.config: dict[str, Any] = {}
        self.source: SerialSource | None = None
        self.sim: SimulatedGPS | None = None
        self.builder = FixBuilder()
        self.stream: TrialStream[tuple] | None = None
        self.last_fix: Fix | None = None
        self.connected = False
        self.error: str | None = None
        self.disconnects_in_trial = 0
        self._down: Link | None = None
        self._last_line_ns = 0
        self._changed = asyncio.Event()
        self._up = asyncio.Event()

    @property
    def device_id(self) -> str:
        return self.config.get("device_id") or "gps"

    async def configure(self, settings: dict[str, Any], simulate: bool) -> dict[str, Any]:
        if self.trial is not None:
            raise CommandError("cannot reconfigure the GPS during a trial", protocol.BAD_STATE)
        await self._release()
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
        self.source = SerialSource(self.device_id, options)
        self._changed.set()
        return {"devices": [{"id": self.device_id, "simulated": simulate}]}

    async def _release(self) -> None:
        sim, self.sim = self.sim, None
        if sim is not None:
            await sim.stop()

    # -- device work -----------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            source = self.source
            if source is None:
                continue
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._pump(source), name="gps"),
                    tg.create_task(self._quiet_flush(), name="gps-flush"),
                ]
                await self._changed.wait()
                for task in tasks:
                    task.cancel()

    async def _pump(self, source: SerialSource) -> None:
        while True:
            try:
                async with source:
                    self.error = None
                    async for event in source:
                        if isinstance(event, Line):
                            self._last_line_ns = event.t_mono_ns
                            self._fix(self.builder.line(event.text, event.t_mono_ns))
                        else:
                            self._on_link(event)
            except SerialError as exc:
                self.error = str(exc)
                log.error("%s", exc)
            finally:
                self.connected = False
                self._up.clear()
            await asyncio.sleep(RETRY_OPEN_S)

    async def _quiet_flush(self) -> None:
        """A fix is complete when the receiver has said all it will for it."""
        while True:
            await asyncio.sleep(_TICK_S)
            quiet = time.monotonic_ns() - self._last_line_ns
            if self.builder.fix is not None and quiet > FLUSH_QUIET_S * 1e9:
                self._fix(self.builder.flush())

    def _fix(self, fix: Fix | None) -> None:
        if fix is None:
            return
        self.last_fix = fix
        if self.stream is not None:
            self.stream.offer(gps_row(fix))

    def _on_link(self, link: Link) -> None:
        self.connected = link.connected
        if not link.connected:
            self._up.clear()
            self._down = link
            self._fix(self.builder.flush())
            if self.stream is not None:
                self.disconnects_in_trial += 1
            return
        self._up.set()
        down, self._down = self._down, None
        if down is not None and self.stream is not None:
            start = down.last_line_ns if down.last_line_ns is not None else down.t_mono_ns
            self.stream.gap(start, link.t_mono_ns, None, f"disconnected: {down.reason}")

    # -- trials ----------------------------------------------------------------------------------
    async def start_trial(self, window: TrialWindow) -> dict[str, Any]:
        assert self.session is not None
        if self.source is None:
            raise CommandError("the GPS is not configured", protocol.BAD_STATE)
        if not self.connected:  # just configured: the port may still be opening
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CONNECT_WAIT_S):
                    await self._up.wait()
        if not self.connected:
            raise CommandError(f"no GPS receiver: {self.error or 'port not found'}")
        path = self.session.module_dir / self.device_id / f"{window.stem}_gps.csv"
        extra = {"stream": "gps", "simulated": self.sim is not None}
        stream: TrialStream[tuple] = TrialStream(
            window,
            CsvSink(path, GPS_COLUMNS),
            FileRecord(self.device_id, "csv", path, extra=extra),
            name=f"{self.device_id} gps",
            max_items=256,
            time_of=lambda row: row[0],
        )
        try:
            await stream.open(self.announce_file)
        except (SinkError, OSError) as exc:
            raise CommandError(f"GPS: {exc}") from None
        self.stream, self.disconnects_in_trial = stream, 0
        return {"device": self.device_id}

    async def stop_trial(self, window: TrialWindow) -> list[FileRecord]:
        stream, self.stream = self.stream, None
        if stream is None:
            return []
        fix = self.builder.fix
        if fix is not None and window.accepts(fix.t_mono_ns):
            stream.offer(gps_row(self.builder.flush()))  # type: ignore[arg-type]
        record = await stream.close()
        record.extra["disconnects"] = self.disconnects_in_trial
        return [record]

    async def shutdown(self) -> None:
        await self._release()

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        source = self.source
        if source is None:
            return {"devices": []}
        fix = self.last_fix
        age_s = None if fix is None else (time.monotonic_ns() - fix.t_mono_ns) / 1e9
        device: dict[str, Any] = {
            "id": self.device_id,
            "port": source.port.device if source.port else None,
            "simulated": self.sim is not None,
            "connected": self.connected,
            "error": self.error,
            "fix": None
            if fix is None
            else {
                "t_fix_unix": fix.t_fix_unix,
                "lat": fix.lat,
                "lon": fix.lon,
                "fix_quality": fix.fix_quality,
                "satellites": fix.satellites,
                "valid": fix.valid,
            },
            "stale": age_s is None or age_s > self.config.get("stale_s", 5.0),
            "sentences": self.builder.sentences,
            "malformed": source.serial_stats.malformed + self.builder.malformed,
            "disconnects": source.serial_stats.disconnects,
            "recording": self.stream is not None,
        }
        if self.stream is not None:
            device["file"] = self.stream.status()
        return {"devices": [device], "connected": self.connected}
