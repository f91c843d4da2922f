"""The EyeTracker module: a Pupil Labs Neon (or the simulated one) recorded on the host clock.

The backend (`backends/`) runs the device on its own thread and hands the loop typed samples
already on the host clock (gaze, IMU, eye events, scene frames), plus its connection changes,
phone status and clock estimates. This module routes them: into the trial's files
(`recorder.TrialFiles`), into the live figures of the status (connected, battery, storage,
measured rates, latest gaze point) and into preview JPEGs of the scene with the gaze drawn.

With `backend = auto` the Neon at `address` (or found by discovery) is used, else the simulated
Neon is offered, labelled simulated; `--simulate` or `backend = simulated` forces it. A lost
connection is recorded as a gap in each of the trial's files (from the last sample before it to
the first after), counted in the files' `disconnects`, and shown in the status; the backend
reconnects by itself and the same files go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections import deque
from typing import Any, ClassVar

from rpi_logger.framework import protocol
from rpi_logger.framework.base import CommandError, FileRecord, Module, ModuleContext, SessionInfo
from rpi_logger.framework.lsl_outlets import Outlets
from rpi_logger.framework.restarting import Work, run_restarting
from rpi_logger.framework.source import Lost
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.io.sinks.base import SinkError
from rpi_logger.modules.eyetracker.backends.base import (
    Connection,
    NeonError,
    NeonOptions,
    NeonSource,
    PhoneStatus,
)
from rpi_logger.modules.eyetracker.backends.simulated import SimulatedNeon
from rpi_logger.modules.eyetracker.lsl_streams import lsl_values, outlet_specs
from rpi_logger.modules.eyetracker.preview import preview_event
from rpi_logger.modules.eyetracker.recorder import GazeTrack, TrialFiles
from rpi_logger.modules.eyetracker.settings import SETTINGS
from rpi_logger.samples import Frame

log = logging.getLogger("rpi_logger.eyetracker")
OPEN_TIMEOUT_S = 20.0
RETRY_OPEN_S = 2.0


def _kinds(settings: dict[str, Any]) -> tuple[str, ...]:
    kinds = tuple(k for k in ("scene", "gaze", "imu", "events") if settings.get(k, True))
    return kinds + (("eyes",) if settings.get("eye_video") else ())


def _options(settings: dict[str, Any]) -> NeonOptions:
    return NeonOptions(
        streams=_kinds(settings),
        sync_interval_s=settings["sync_interval_s"],
        sync_measurements=settings["sync_measurements"],
        max_roundtrip_ms=settings["max_roundtrip_ms"],
        stall_timeout_s=settings["stall_timeout_s"],
        reconnect_interval_s=settings["reconnect_interval_s"],
    )


def _simulated(settings: dict[str, Any]) -> SimulatedNeon:
    return SimulatedNeon(
        _options(settings),
        device_id=settings["device_id"],
        scene_width=settings["sim_scene_width"],
        scene_height=settings["sim_scene_height"],
        scene_fps=settings["sim_scene_fps"],
        gaze_payload=settings["sim_gaze_payload"],
    )


class Rate:
    """Samples per second over the last couple of seconds of sample times."""

    def __init__(self, size: int) -> None:
        self._times: deque[int] = deque(maxlen=size)

    def add(self, t_mono_ns: int) -> None:
        self._times.append(t_mono_ns)

    @property
    def hz(self) -> float:
        times = self._times
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return round((len(times) - 1) * 1e9 / (times[-1] - times[0]), 2)


class EyeTrackerModule(Module):
    settings = SETTINGS
    commands: ClassVar[dict[str, dict]] = {
        "simulate_disconnect": {"seconds": ((int, float), True)},
        "sync_clock": {},
    }

    def __init__(self, context: ModuleContext) -> None:
        super().__init__(context)
        self.config: dict[str, Any] = {}
        self.source: NeonSource | None = None
        self.files: TrialFiles | None = None
        self.error: str | None = None
        self.connected = False
        self.phone: PhoneStatus | None = None
        self.latest_frame: Frame | None = None
        self.latest_gaze: Any = None
        self.track: GazeTrack | None = None
        self.rates: dict[str, Rate] = {}
        self._last_t: dict[str, int] = {}
        self._down: Connection | None = None  # the last disconnect
        self._gap_pending: set[str] = set()
        self._opened = asyncio.Event()
        self._changed = asyncio.Event()
        self._status_now = asyncio.Event()
        self._sim_disconnect_at: int | None = None
        self.lsl = Outlets(context.name, False)  # LSL outlets (lsl = true)

    # -- configuration -------------------------------------------------------------------------
    async def configure(self, settings: dict[str, Any], simulate: bool) -> dict[str, Any]:
        if self.trial is not None:
            raise CommandError(
                "cannot reconfigure the eye tracker during a trial", protocol.BAD_STATE
            )
        if not _kinds(settings):
            raise CommandError(
                "no stream enabled (scene, gaze, imu, events, eye_video)", protocol.BAD_ARGS
            )
        self.config = settings
        backend = "simulated" if simulate else settings["backend"]
        source: NeonSource | None = None
        notes: list[str] = []
        if backend in ("auto", "neon"):
            try:
                neon = await asyncio.to_thread(
                    importlib.import_module, "rpi_logger.modules.eyetracker.backends.neon"
                )
                source = neon.NeonBackend(
                    _options(settings),
                    address=settings.get("address") or None,
                    port=settings["port"],
                    device_id=settings["device_id"],
                    discovery_timeout_s=settings["discovery_timeout_s"],
                )
                await source.open()
            except (NeonError, ImportError) as exc:
                source = None
                notes.append(str(exc))
                if backend == "neon":
                    raise CommandError(f"no Neon: {exc}") from None
                log.warning("no Neon (%s); offering the simulated Neon", exc)
        if source is None:
            source = _simulated(settings)
        self.source = source
        source.on_overflow = self._on_overflow
        self.context.simulate = source.info.simulated
        self.track = GazeTrack() if settings.get("overlay_video") else None
        self.rates = {
            "gaze": Rate(401),
            "imu": Rate(221),
            "scene": Rate(61),
            "events": Rate(10),
            "eyes": Rate(401),
        }
        self._opened.clear()
        self._changed.set()  # run() starts the new source
        info = source.info
        await self.lsl.aclose()
        self.lsl = Outlets(self.context.name, settings.get("lsl", False))
        await self.lsl.open(outlet_specs(info.id))
        return {
            "devices": [
                {
                    "id": info.id,
                    "name": info.name,
                    "backend": info.backend,
                    "simulated": info.simulated,
                }
            ],
            "notes": notes,
        }

    @staticmethod
    async def _release(source: NeonSource | None) -> None:
        if source is not None:
            await source.close()
            if isinstance(source, SimulatedNeon):
                source.shutdown()

    # -- device work -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Run the current source; restart whenever configure() replaces it."""
        await run_restarting(self._changed, self._work)

    def _work(self) -> Work:
        source = self.source
        if source is None:
            return []
        return [
            ("neon", self._pump_then_release(source)),
            ("previews", self._previews()),
            ("eyetracker-housekeeping", self._housekeeping()),
        ]

    async def _pump_then_release(self, source: NeonSource) -> None:
        """Replaced (or shutting down): the source is released once its pump has stopped."""
        try:
            await self._pump(source)
        finally:
            await self._release(source)

    async def _pump(self, source: NeonSource) -> None:
        """Samples from the source until cancelled; a failed open is retried, never raised."""
        while True:
            try:
                async with source:
                    self.error = None
                    self._opened.set()
                    async for item in source:
                        self._on_item(item)
                        if self._status_now.is_set():
                            self._status_now.clear()
                            await self.emit_status()
            except NeonError as exc:
                self.error = str(exc)
                log.error("%s", exc)
            finally:
                self._opened.clear()
                self.connected = False
            await asyncio.sleep(RETRY_OPEN_S)

    def _on_overflow(self, lost: Lost) -> None:
        source = self.source
        kind = source.lost_kinds.popleft() if source is not None and source.lost_kinds else "gaze"
        if self.files is not None:
            self.files.lost(kind, lost.t_mono_ns, lost.sequence)

    def _on_item(self, item: Any) -> None:
        kind = "scene" if isinstance(item, Frame) else item.kind
        files = self.files
        if kind == "connection":
            self._on_connection(item)
        elif kind == "phone":
            self.phone = item
        elif kind == "time_sync":
            if files is not None:
                files.time_sync(item.estimate)
        else:
            t = item.t_mono_ns
            if kind in self._gap_pending:
                self._gap_pending.discard(kind)
                last = self._last_t.get(kind)
                if files is not None and last is not None and self._down is not None:
                    files.gap(kind, last, t, f"disconnected: {self._down.reason}")
            self._last_t[kind] = t
            if kind in self.lsl:
                self.lsl.push(kind, t, lsl_values(kind, item))
            rate = self.rates.get(kind)
            if rate is not None:
                rate.add(t)
            if kind == "gaze":
                self.latest_gaze = item
                if self.track is not None:
                    self.track.add(t, item.x, item.y)
            elif kind == "scene":
                self.latest_frame = item
            if files is not None:
                files.offer(kind, item)

    def _on_connection(self, item: Connection) -> None:
        self.connected = item.connected
        self._status_now.set()
        if not item.connected:
            self._down = item
            self._gap_pending = set(self._last_t)
            if self.files is not None:
                self.files.disconnects += 1
            return
        down = self._down  # kept: its reason names the gaps still pending
        if down is not None and self.files is not None and "events" in self._gap_pending:
            # Events come when they come: the stretch without a connection is their gap.
            self.files.gap("events", down.t_mono_ns, item.t_mono_ns, f"disconnected: {down.reason}")
            self._gap_pending.discard("events")

    async def _housekeeping(self) -> None:
        """A simulated disconnect due at a time in the trial (`sim_disconnect_after_s`)."""
        while True:
            await asyncio.sleep(0.05)
            due = self._sim_disconnect_at
            if due is not None and time.monotonic_ns() >= due:
                self._sim_disconnect_at = None
                if isinstance(self.source, SimulatedNeon):
                    self.source.simulate_disconnect(self.config["sim_disconnect_s"])

    async def _previews(self) -> None:
        rate = self.config.get("preview_fps", 4.0)
        if not rate:
            return
        width = self.config.get("preview_width", 320)
        device = self.config.get("device_id", "neon")
        sent: int | None = None
        while True:
            await asyncio.sleep(1.0 / rate)
            frame, gaze = self.latest_frame, self.latest_gaze
            if frame is None or frame.t_mono_ns == sent:
                continue
            sent = frame.t_mono_ns
            point = (gaze.x, gaze.y) if gaze is not None else None
            try:
                data = await asyncio.to_thread(preview_event, device, frame, point, width)
            except (ValueError, OSError) as exc:  # a preview is never worth a failure
                log.debug("preview skipped: %s", exc)
                continue
            await self.emit(protocol.EV_PREVIEW, data)

    # -- sessions and trials ---------------------------------------------------------------------
    async def _wait_open(self) -> NeonSource:
        source = self.source
        if source is None:
            raise CommandError("the eye tracker is not configured", protocol.BAD_STATE)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                await self._opened.wait()
        if not self._opened.is_set():
            raise CommandError(f"eye tracker not open: {self.error or 'timeout'}")
        return source

    async def start_session(self, session: SessionInfo) -> dict[str, Any]:
        try:
            source = await self._wait_open()
        except CommandError as exc:
            log.warning("%s", exc)
            return {}
        source.request_sync("session start")
        return {}

    async def start_trial(self, window: TrialWindow) -> dict[str, Any]:
        assert self.session is not None
        source = await self._wait_open()
        folder = self.session.module_dir / source.info.id
        files = TrialFiles(
            window, folder, source.info, self.config, source.options.streams, self.track
        )
        try:
            await files.open(self.announce_file, source.clock.current)
        except (SinkError, ValueError, OSError) as exc:
            raise CommandError(f"eye tracker: {exc}") from None
        self.files = files
        if not self.connected and self._down is not None:
            self._gap_pending = set(self._last_t)  # the trial starts inside a disconnect
        source.request_sync("trial start")
        after = self.config.get("sim_disconnect_after_s") or 0
        if after and isinstance(source, SimulatedNeon):
            self._sim_disconnect_at = window.start_ns + round(after * 1e9)
        return {"device": source.info.id, "streams": list(source.options.streams)}

    async def stop_trial(self, window: TrialWindow) -> list[FileRecord]:
        files, self.files = self.files, None
        self._sim_disconnect_at = None
        if files is None:
            return []
        records = await files.close()
        if not self.connected:
            for record in records:
                record.extra["connected_at_stop"] = False
        return records

    async def shutdown(self) -> None:
        source, self.source = self.source, None
        await self._release(source)
        await self.lsl.aclose()

    # -- commands --------------------------------------------------------------------------------
    async def cmd_simulate_disconnect(self, seconds: float) -> dict[str, Any]:
        source = self.source
        if not isinstance(source, SimulatedNeon):
            raise CommandError(
                "only the simulated Neon can simulate a disconnect", protocol.BAD_STATE
            )
        if not 0 < seconds <= 3600:
            raise CommandError(f"seconds must be in (0, 3600], got {seconds}", protocol.BAD_ARGS)
        source.simulate_disconnect(float(seconds))
        return {"disconnected_for_s": float(seconds)}

    async def cmd_sync_clock(self) -> dict[str, Any]:
        source = await self._wait_open()
        source.request_sync("command")
        return {}

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        source = self.source
        if source is None:
            return {"devices": []}
        info = source.info
        phone = self.phone
        gaze = self.latest_gaze
        clock = source.clock.current
        device: dict[str, Any] = {
            "id": info.id,
            "name": info.name,
            "backend": info.backend,
            "simulated": info.simulated,
            "connected": self.connected,
            "error": self.error,
            "battery_percent": phone.battery_percent if phone else None,
            "battery_state": phone.battery_state if phone else None,
            "storage_bytes": phone.storage_bytes if phone else None,
            "storage_state": phone.storage_state if phone else None,
            "rates_hz": {k: r.hz for k, r in self.rates.items() if k in source.options.streams},
            "gaze": None
            if gaze is None
            else {"x": gaze.x, "y": gaze.y, "worn": gaze.worn, "t_mono_ns": gaze.t_mono_ns},
            "clock": None
            if clock is None
            else {
                "offset_ns": clock.offset_ns,
                "std_ns": clock.std_ns,
                "roundtrip_ns": clock.roundtrip_ns,
                "measured_mono_ns": clock.t_mono_ns,
            },
            "dropped_capture_overflow_total": source.stats.dropped_queue_overflow,
            "recording": self.files is not None,
        }
        if self.files is not None:
            device["streams"] = self.files.status()
        return {"devices": [device], "connected": self.connected}
