"""CSI cameras on a Raspberry Pi through picamera2 (libcamera), captured on a dedicated thread.

- Video configuration, main stream at the requested size: ``BGR888`` for rgb24 (picamera2's
  ``BGR888`` is laid out [R, G, B] in memory) or ``YUV420`` for yuv420p (no conversion before
  the encoder; row padding is removed when the stride is wider than the picture).
- ``FrameDurationLimits`` = (1e6 / fps, 1e6 / fps) µs fixes the frame rate.
- Each frame's ``t_mono_ns`` is the request metadata's ``SensorTimestamp`` (ns, CLOCK_MONOTONIC,
  start of readout), also kept as ``t_device_ns``.
- ``sequence`` advances by ``round(Δ SensorTimestamp / FrameDuration)`` per frame, so a frame the
  camera produced but we never saw shows as a sequence gap.
- The capture thread loops on ``capture_request()`` -> copy -> ``release()`` and hands frames to
  the loop through the framework's threaded source (a bounded bridge.

picamera2 ships with Raspberry Pi OS (apt ``python3-picamera2``; the venv needs
``--system-site-packages``). Without it the backend reports itself unavailable, with the reason.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from rpi_logger.io.clock import mono_to_wall
from rpi_logger.modules.cameras.frames import (
    BackendUnavailable,
    CameraDescriptor,
    CameraError,
    CameraInfo,
    FrameSource,
    unpad_yuv420,
)
from rpi_logger.samples import PIXEL_FORMATS, Frame, PixelFormat

log = logging.getLogger(__name__)

_picamera2: Any = None
_import_error: str | None = None


def _load_picamera2() -> Any:
    """The ``Picamera2`` class, or None (reason in `_import_error`). Imported once, lazily:
    importing it starts libcamera, which is slow and pointless off a Pi."""
    global _picamera2, _import_error
    if _picamera2 is None and _import_error is None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            _import_error = (
                f"picamera2 is not installed ({exc}); on Raspberry Pi OS: "
                "sudo apt install python3-picamera2, and create the venv with "
                "--system-site-packages"
            )
        except Exception as exc:  # libcamera present but broken
            _import_error = f"picamera2 failed to load: {exc}"
        else:
            _picamera2 = Picamera2
    return _picamera2


def sequence_step(prev_ts_ns: int | None, ts_ns: int, frame_duration_us: float | None) -> int:
    """How many capture slots lie between two frames (1 = consecutive, 3 = two missed)."""
    if prev_ts_ns is None or not frame_duration_us or frame_duration_us <= 0:
        return 1
    return max(1, round((ts_ns - prev_ts_ns) / (frame_duration_us * 1000.0)))


class Picamera2Source(FrameSource):
    """A CSI camera (``camera_num`` as picamera2 numbers them). See the module docstring."""

    backend = "picamera2"
    # capture_request() returns within a frame interval while the camera runs.
    close_timeout_s = 5.0

    def __init__(
        self,
        camera_num: int = 0,
        *,
        camera_id: str | None = None,
        name: str | None = None,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        pixel_format: PixelFormat = "rgb24",
        buffer_count: int = 6,
        queue_size: int = 8,
    ) -> None:
        if pixel_format not in PIXEL_FORMATS:
            raise ValueError(f"pixel_format must be one of {PIXEL_FORMATS}, got {pixel_format!r}")
        cid = camera_id or f"picam{camera_num}"
        super().__init__(
            CameraInfo(
                id=cid,
                name=name or cid,
                width=width,
                height=height,
                fps=float(fps),
                backend=self.backend,
                simulated=False,
                pixel_format=pixel_format,
            ),
            queue_size,
        )
        self.camera_num = camera_num
        self.buffer_count = buffer_count
        self._cam: Any = None
        self._stride = width

    # -- enumeration -------------------------------------------------------------------------
    @classmethod
    def available(cls) -> tuple[bool, str]:
        """picamera2 importable?"""
        if _load_picamera2() is None:
            return False, _import_error or "picamera2 unavailable"
        return True, ""

    @classmethod
    def list_cameras(cls) -> list[CameraDescriptor]:
        """CSI cameras libcamera sees (blocking); [] without picamera2."""
        pc2 = _load_picamera2()
        if pc2 is None:
            return []
        try:
            infos = pc2.global_camera_info()
        except Exception:
            log.exception("picamera2: listing cameras failed")
            return []
        out = []
        for num, info in enumerate(infos):
            model = str(info.get("Model", "camera"))
            details = {k: str(v) for k, v in info.items()}
            out.append(
                CameraDescriptor(
                    id=f"picam{num}",
                    name=f"{model} (CSI {num})",
                    backend=cls.backend,
                    path=str(info.get("Id", num)),
                    details=details,
                )
            )
        return out

    # -- device side (worker and capture threads) ---------------------------------------------
    def _device_open(self) -> CameraInfo:
        """Open, configure and start the camera (blocking; worker thread)."""
        pc2 = _load_picamera2()
        if pc2 is None:
            raise BackendUnavailable(_import_error or "picamera2 unavailable")
        i = self.info
        try:
            cam = pc2(self.camera_num)
        except Exception as exc:
            raise CameraError(f"cannot open CSI camera {self.camera_num}: {exc}") from exc
        try:
            fmt = "YUV420" if i.pixel_format == "yuv420p" else "BGR888"  # BGR888 = [R,G,B]
            frame_us = round(1e6 / i.fps)
            config = cam.create_video_configuration(
                main={"size": (i.width, i.height), "format": fmt},
                controls={"FrameDurationLimits": (frame_us, frame_us)},
                buffer_count=self.buffer_count,
            )
            cam.configure(config)
            main = cam.camera_config["main"]
            w, h = main["size"]
            self._stride = int(main.get("stride") or w)
            cam.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                cam.close()
            raise CameraError(
                f"cannot start CSI camera {self.camera_num} at "
                f"{i.width}x{i.height} {i.fps} fps: {exc}"
            ) from exc
        if (w, h) != (i.width, i.height):
            log.warning("picamera2: asked for %dx%d, configured %dx%d", i.width, i.height, w, h)
        self._cam = cam
        return CameraInfo(
            id=i.id,
            name=i.name,
            width=int(w),
            height=int(h),
            fps=i.fps,
            backend=i.backend,
            simulated=False,
            pixel_format=i.pixel_format,
        )

    def _device_close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is None:
            return
        for step in (cam.stop, cam.close):
            try:
                step()
            except Exception:
                log.exception("picamera2: %s failed", step.__name__)

    def _describe_error(self, exc: BaseException) -> str:
        return f"CSI camera {self.camera_num}: {exc}"

    def _device_loop(self) -> None:
        cam = self._cam
        info = self.info
        seq = -1
        prev_ts: int | None = None
        while not self._stop.is_set():
            request = cam.capture_request()
            try:
                image = request.make_array("main")  # a copy: the buffer goes back below
                md = request.get_metadata()
            finally:
                request.release()
            ts = int(md["SensorTimestamp"])
            seq += sequence_step(prev_ts, ts, md.get("FrameDuration"))
            prev_ts = ts
            if info.pixel_format == "yuv420p":
                image = unpad_yuv420(image, info.width, info.height, self._stride)
            frame = Frame(
                image=image,
                t_mono_ns=ts,
                t_wall_unix=mono_to_wall(ts),
                t_device_ns=ts,
                sequence=seq,
                pixel_format=info.pixel_format,
            )
            if not self._emit(frame):
                break
