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

The picture is `rpi_logger.simulation.scene` (shared with the simulated Neon's scene camera).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from rpi_logger.io.clock import mono_to_wall
from rpi_logger.modules.cameras.frames import (
    CameraDescriptor,
    CameraInfo,
    FrameSource,
)
from rpi_logger.samples import Frame, PixelFormat
from rpi_logger.simulation.scene import SceneRenderer, check_size

DEFAULT_WIDTH = 1280
DEFAULT_HEIGHT = 720
DEFAULT_FPS = 30.0


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
        check_size(width, height, pixel_format, "synthetic camera")
        if not fps > 0:
            raise ValueError(f"synthetic camera fps must be positive, got {fps}")
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
        self._renderer = SceneRenderer(width, height, pixel_format)

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
        self._renderer.prepare()

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
        return self._renderer.render(counter, t_mono_ns)

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
