"""The simulated camera of design.md: Simulated devices: real-time, clock-derived, with two
barcodes per frame.

It runs like a real camera, on its own device thread (`rpi_logger.framework.source`): capture
slot *k* falls at ``start + k * period`` on the host clock; the thread sleeps to the slot,
renders the frame and stamps it with the slot's time, as a sensor stamps its exposure, so its
timing depends neither on the event loop nor on how late the thread woke. Like a V4L2 or
libcamera device it holds `buffers` frames: a thread that wakes late delivers the slots it
missed, in order, as long as they fit; older ones are gone and the sequence number (= the
barcode counter) jumps, exactly as a real camera's would (a device sequence gap). A consumer
that falls behind loses frames in the hand-off instead (capture overflow).

Cost per frame is one copy of a pre-rendered, horizontally scrolling background (each frame needs
its own buffer, because consumers such as the encoder queue keep frames for a while) plus writing
32 x 512 barcode pixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from rpi_logger.io.clock import mono_to_wall
from rpi_logger.modules.cameras.barcode import BARCODE_WIDTH, draw_barcodes, ms_of
from rpi_logger.modules.cameras.frames import (
    CameraDescriptor,
    CameraInfo,
    FrameSource,
)
from rpi_logger.samples import PIXEL_FORMATS, Frame, PixelFormat

DEFAULT_WIDTH = 1280
DEFAULT_HEIGHT = 720
DEFAULT_FPS = 30.0
_SCROLL_PERIOD = 256  # background repeats every 256 px horizontally, so a scroll is a slice
_SCROLL_STEP = 4  # px per frame (even: keeps yuv420p chroma aligned)


def _render_background_rgb(width: int, height: int) -> np.ndarray:
    """A colourful, horizontally periodic picture of width ``width + _SCROLL_PERIOD``."""
    w = width + _SCROLL_PERIOD
    x = np.arange(w, dtype=np.float32)[None, :]
    y = np.arange(height, dtype=np.float32)[:, None]
    phase = 2 * np.pi * x / _SCROLL_PERIOD
    r = 127.5 + 100 * np.sin(phase + y / 40.0)
    g = 127.5 + 100 * np.sin(2 * phase + 2.0) * np.cos(y / 90.0)
    b = np.broadcast_to(40 + 175 * (y / max(1, height - 1)), (height, w))
    img = np.stack([r, g, b], axis=2)
    # Vertical bars every 64 px give the encoder sharp, moving edges to track.
    img[:, (np.arange(w) % 64) < 6, :] = 235
    return np.clip(img, 0, 255).astype(np.uint8)


def _rgb_to_yuv420p_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 video-range conversion, done once at start-up."""
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u = u.reshape(u.shape[0] // 2, 2, u.shape[1] // 2, 2).mean(axis=(1, 3))
    v = v.reshape(v.shape[0] // 2, 2, v.shape[1] // 2, 2).mean(axis=(1, 3))

    def u8(a: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)

    return u8(y), u8(u), u8(v)


class SyntheticSource(FrameSource):
    """A simulated camera (design.md: Simulated devices). See the module docstring for its timing
    behaviour."""

    backend = "synthetic"

    def __init__(
        self,
        camera_id: str = "synthetic0",
        *,
        name: str | None = None,
        width: int = DEFAULT_WIDTH,
        height: int = DEFAULT_HEIGHT,
        fps: float = DEFAULT_FPS,
        pixel_format: PixelFormat = "rgb24",
        clock: Callable[[], int] = time.monotonic_ns,
        queue_size: int = 8,
        buffers: int = 4,
    ) -> None:
        if width < BARCODE_WIDTH:
            raise ValueError(
                f"synthetic camera width must be at least {BARCODE_WIDTH}, got {width}"
            )
        if height < 32:
            raise ValueError(f"synthetic camera height must be at least 32, got {height}")
        if not fps > 0:
            raise ValueError(f"synthetic camera fps must be positive, got {fps}")
        if pixel_format not in PIXEL_FORMATS:
            raise ValueError(f"pixel_format must be one of {PIXEL_FORMATS}, got {pixel_format!r}")
        if pixel_format == "yuv420p" and (width % 2 or height % 2):
            raise ValueError("yuv420p needs an even width and height")
        super().__init__(
            CameraInfo(
                id=camera_id,
                name=name or f"Simulated camera ({camera_id})",
                width=width,
                height=height,
                fps=float(fps),
                backend=self.backend,
                simulated=True,
                pixel_format=pixel_format,
            ),
            queue_size,
        )
        self._clock = clock
        self.buffers = max(1, buffers)
        self._period_ns = round(1e9 / fps)
        self._start_ns = 0
        self._bg_rgb: np.ndarray | None = None
        self._bg_yuv: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # -- enumeration -------------------------------------------------------------------------
    @classmethod
    def list_cameras(cls, count: int = 1) -> list[CameraDescriptor]:
        """``count`` simulated cameras, ids ``synthetic0``, ``synthetic1``, ..."""
        return [
            CameraDescriptor(
                id=f"synthetic{i}",
                name=f"Simulated camera {i}",
                backend=cls.backend,
                simulated=True,
            )
            for i in range(count)
        ]

    # -- life cycle --------------------------------------------------------------------------
    def prepare(self) -> None:
        """Pre-render the background (tens of ms at 720p); `open()` runs it on the device
        thread."""
        info = self.info
        if self._bg_rgb is None and self._bg_yuv is None:
            rgb = _render_background_rgb(info.width, info.height)
            if info.pixel_format == "yuv420p":
                self._bg_yuv = _rgb_to_yuv420p_planes(rgb)
            else:
                self._bg_rgb = rgb

    def _device_open(self) -> CameraInfo:
        self.prepare()
        self._start_ns = self._clock()
        return self.info

    def _device_close(self) -> None:
        return None

    def _device_loop(self) -> None:
        period, start, clock, stop = self._period_ns, self._start_ns, self._clock, self._stop
        slot = 0
        while not stop.is_set():
            due = start + slot * period
            now = clock()
            if now < due:
                if stop.wait((due - now) / 1e9):
                    return
                now = clock()
            # Late by more than the device's buffers: the oldest slots are gone (a gap).
            slot = max(slot, (now - start) // period - self.buffers + 1)
            if not self._emit(self.make_frame(slot, start + slot * period)):
                return
            slot += 1

    @property
    def period_ns(self) -> int:
        """Nominal frame interval."""
        return self._period_ns

    def render(self, counter: int, t_mono_ns: int) -> np.ndarray:
        """The image for capture slot ``counter`` captured at ``t_mono_ns`` (a fresh buffer)."""
        if self._bg_rgb is None and self._bg_yuv is None:
            self.prepare()
        w, h = self.info.width, self.info.height
        off = (counter * _SCROLL_STEP) % _SCROLL_PERIOD
        if self._bg_yuv is not None:
            y, u, v = self._bg_yuv
            img = np.empty((h * 3 // 2, w), dtype=np.uint8)
            img[:h] = y[:, off : off + w]
            chroma = img[h:].reshape(-1)
            cw, ch, c_off = w // 2, h // 2, off // 2
            chroma[: ch * cw].reshape(ch, cw)[:] = u[:, c_off : c_off + cw]
            chroma[ch * cw :].reshape(ch, cw)[:] = v[:, c_off : c_off + cw]
            draw_barcodes(img, counter, ms_of(t_mono_ns), "yuv420p")
            return img
        assert self._bg_rgb is not None
        img = np.empty((h, w, 3), dtype=np.uint8)
        img[:] = self._bg_rgb[:, off : off + w]
        draw_barcodes(img, counter, ms_of(t_mono_ns))
        return img

    def make_frame(self, counter: int, t_mono_ns: int) -> Frame:
        """A complete `Frame` for slot ``counter`` at ``t_mono_ns`` (no pacing; for tests/bench)."""
        return Frame(
            image=self.render(counter, t_mono_ns),
            t_mono_ns=t_mono_ns,
            t_wall_unix=mono_to_wall(t_mono_ns),
            t_device_ns=None,
            sequence=counter,
            pixel_format=self.info.pixel_format,
        )
