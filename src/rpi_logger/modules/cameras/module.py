"""The Cameras module: every selected camera captured, and during trials encoded to MP4.

Auto-detection: with `backend = auto` the module uses the CSI cameras picamera2 sees, else the
USB webcams V4L2 lists, else it says that none was found and offers simulated cameras, labelled
simulated in its status and in the manifest. `--simulate` or `backend = synthetic` forces them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rpi_logger.framework import protocol
from rpi_logger.framework.base import (
    CommandError,
    ModuleContext,
    SessionInfo,
)
from rpi_logger.framework.devices import DeviceModule
from rpi_logger.io.sinks.base import SinkError
from rpi_logger.io.sinks.video import check_codec
from rpi_logger.modules.cameras.capacity import assess
from rpi_logger.modules.cameras.frames import CameraDescriptor, CameraError, FrameSource
from rpi_logger.modules.cameras.pipeline import CameraPipeline, video_settings
from rpi_logger.modules.cameras.preview import preview_event
from rpi_logger.modules.cameras.settings import SETTINGS
from rpi_logger.modules.cameras.sources import backend_class

log = logging.getLogger("rpi_logger.cameras")


def _find_real_cameras(backend: str) -> tuple[list[CameraDescriptor], list[str]]:
    """Cameras of the real backends (blocking: touches device files), and why any is missing."""
    notes: list[str] = []
    for name in ("picamera2", "opencv") if backend == "auto" else (backend,):
        cls = backend_class(name)
        ok, why = cls.available()
        if not ok:
            notes.append(f"{name}: {why}")
            continue
        found = cls.list_cameras()
        if found:
            return found, notes
        notes.append(f"{name}: no camera found")
    return [], notes


def make_source(desc: CameraDescriptor, settings: dict[str, Any]) -> FrameSource:
    """A frame source for one enumerated camera, at the configured size and rate."""
    size = {"width": settings["width"], "height": settings["height"], "fps": settings["fps"]}
    cls = backend_class(desc.backend)
    if desc.backend == "opencv":  # webcams deliver RGB: pixel_format does not apply
        return cls(desc.path or desc.id, camera_id=desc.id, name=desc.name, **size)  # type: ignore[call-arg]
    size["pixel_format"] = settings.get("pixel_format", "rgb24")
    if desc.backend == "synthetic":
        return cls(desc.id, name=desc.name, **size)  # type: ignore[call-arg]
    num = int(desc.id.removeprefix("picam")) if desc.id.startswith("picam") else 0
    return cls(num, camera_id=desc.id, name=desc.name, **size)  # type: ignore[call-arg]


class CamerasModule(DeviceModule[CameraPipeline]):
    settings = SETTINGS

    def __init__(self, context: ModuleContext) -> None:
        super().__init__(context)
        self.config: dict[str, Any] = {}
        self.notes: list[str] = []
        self.encoding: dict[str, Any] = {}  # the capacity check's verdict (capacity.assess)

    async def configure(self, settings: dict[str, Any], simulate: bool) -> dict[str, Any]:
        if self.trial is not None:
            raise CommandError("cannot reconfigure cameras during a trial", protocol.BAD_STATE)
        if settings.get("encoder") == "ffmpeg":
            # A missing binary or codec must fail here, in one line, not as a trial without video.
            try:
                await check_codec(settings["ffmpeg_codec"])
            except SinkError as exc:
                raise CommandError(str(exc), protocol.BAD_ARGS) from None
        self.config = settings
        backend = "synthetic" if simulate else settings["backend"]
        descriptors: list[CameraDescriptor] = []
        self.notes = []
        if backend != "synthetic":
            descriptors, self.notes = await asyncio.to_thread(_find_real_cameras, backend)
            if not descriptors and backend != "auto":
                raise CommandError(f"no {backend} camera: {'; '.join(self.notes)}")
            if not descriptors:
                log.warning(
                    "no camera found (%s); offering simulated cameras", "; ".join(self.notes)
                )
        if not descriptors:
            descriptors = backend_class("synthetic").list_cameras(  # type: ignore[call-arg]
                settings["synthetic_count"]
            )
        wanted = [d.strip() for d in (settings.get("devices") or "").split(",") if d.strip()]
        if wanted:
            missing = [w for w in wanted if w not in {d.id for d in descriptors}]
            if missing:
                raise CommandError(
                    f"camera(s) not found: {', '.join(missing)} (found: "
                    f"{', '.join(d.id for d in descriptors)})"
                )
            descriptors = [d for d in descriptors if d.id in wanted]
        try:
            cameras = [CameraPipeline(make_source(d, settings), settings) for d in descriptors]
        except (ValueError, CameraError) as exc:
            raise CommandError(str(exc), protocol.BAD_ARGS) from None
        self.context.simulate = all(d.simulated for d in descriptors)
        # Measured (once per machine and setting) before these cameras capture: not against them.
        self.encoding = await self._check_capacity(len(cameras), settings)
        self.set_devices(cameras)  # run() restarts the capture loops with the new cameras
        return {
            "devices": [
                {"id": d.id, "name": d.name, "backend": d.backend, "simulated": d.simulated}
                | ({"encoding": self.encoding} if self.encoding else {})
                for d in descriptors
            ],
            "notes": self.notes,
        }

    async def _check_capacity(self, cameras: int, settings: dict[str, Any]) -> dict[str, Any]:
        """The encoding capacity check (capacity.py); warns now if the cameras exceed it."""
        if not cameras or settings.get("encoder", "pyav") != "pyav":
            return {}
        size = (cameras, settings["width"], settings["height"], settings["fps"])
        try:
            found = await asyncio.to_thread(
                assess, *size, video_settings(settings), settings.get("pixel_format", "rgb24")
            )
        except Exception as exc:  # a check that cannot run must not stop the cameras
            log.debug("encoding capacity not measured: %s", exc)
            return {}
        if found["warning"]:
            log.warning("%s", found["warning"])
            self.notes.append(found["warning"])
        return found

    async def start_session(self, session: SessionInfo) -> dict[str, Any]:
        result = await super().start_session(session)
        if self.encoding.get("warning"):  # again, into the session's log, before any trial
            log.warning("%s", self.encoding["warning"])
        return result

    async def alongside(self, cameras: list[CameraPipeline]) -> None:
        """Preview JPEGs of each camera's latest frame, a few a second, on a worker thread."""
        rate = self.config.get("preview_fps", 5.0)
        if not rate:
            return
        width = self.config.get("preview_width", 320)
        sent: dict[str, int] = {}
        while True:
            await asyncio.sleep(1.0 / rate)
            for cam in cameras:
                frame = cam.latest
                if frame is None or sent.get(cam.id) == frame.t_mono_ns:
                    continue
                sent[cam.id] = frame.t_mono_ns
                try:
                    data = await asyncio.to_thread(preview_event, cam.id, frame, width)
                except (ValueError, OSError) as exc:  # a preview is never worth a failure
                    log.debug("preview of %s skipped: %s", cam.id, exc)
                    continue
                await self.emit(protocol.EV_PREVIEW, data)

    def status(self) -> dict[str, Any]:
        return {"cameras": self.device_status(), "encoding": self.encoding}
