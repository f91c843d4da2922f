"""USB / V4L2 webcams through OpenCV (headless), read on a dedicated thread.

- Enumeration: ``/dev/video*`` nodes that can capture video (``VIDIOC_QUERYCAP``), named from
  ``/sys/class/video4linux/videoN/name``; metadata nodes (UVC's second node), memory-to-memory
  codecs and the Raspberry Pi's CSI/ISP nodes (libcamera's, use picamera2) are left out.
- Open: ``CAP_V4L2``, MJPG FOURCC set explicitly (OpenCV would probe it last), requested size and
  rate, ``CAP_PROP_BUFFERSIZE``.
- Reading: ``grab()`` / ``retrieve()`` on the device thread, frames handed to the loop through
  the framework's threaded source (a bounded bridge (full -> counted drop).
- Timestamp: ``CAP_PROP_POS_MSEC`` is the driver's buffer timestamp, on CLOCK_MONOTONIC for UVC;
  it is used when plausible (within a few seconds of now, not in the future), else the time
  ``grab()`` returned. The raw value is kept as ``t_device_ns``.
- ``sequence`` counts grabs: V4L2's own buffer sequence is not exposed by OpenCV, so frames the
  driver drops before we see them do not show as gaps.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import logging
import os
import re
import struct
import sys
import time
from pathlib import Path
from typing import Any

from rpi_logger.io.clock import mono_to_wall
from rpi_logger.modules.cameras.frames import (
    BackendUnavailable,
    CameraDescriptor,
    CameraError,
    CameraInfo,
    FrameSource,
)
from rpi_logger.samples import Frame

log = logging.getLogger(__name__)

try:
    import cv2
except ImportError as _exc:  # pragma: no cover - opencv-python-headless is a dependency
    cv2 = None
    _CV2_ERROR = str(_exc)
else:
    _CV2_ERROR = ""

PLAUSIBLE_WINDOW_NS = 5_000_000_000  # a driver timestamp further than this from now is not ours
FUTURE_SLACK_NS = 50_000_000  # how far "in the future" a timestamp may be (clock read jitter)

# VIDIOC_QUERYCAP = _IOR('V', 0, struct v4l2_capability) with sizeof == 104.
_VIDIOC_QUERYCAP = 0x80685600
_CAP_VIDEO_CAPTURE = 0x00000001
_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
_CAP_VIDEO_M2M = 0x00008000
_CAP_VIDEO_M2M_MPLANE = 0x00004000
_CAP_DEVICE_CAPS = 0x80000000
# Nodes that belong to libcamera / the Pi's codecs, not to a webcam.
_NOT_WEBCAM_DRIVERS = {
    "unicam",
    "rp1-cfe",
    "bcm2835-isp",
    "pispbe",
    "bcm2835-codec",
    "rpivid",
    "bcm2835-v4l2",
    "hantro-vpu",
}


def plausible_timestamp(
    ts_ns: int | None, now_ns: int, window_ns: int = PLAUSIBLE_WINDOW_NS
) -> bool:
    """Whether a driver timestamp can be a CLOCK_MONOTONIC capture time read just now: positive,
    at most ``window_ns`` old, and not more than a little in the future."""
    if ts_ns is None or ts_ns <= 0:
        return False
    return now_ns - window_ns <= ts_ns <= now_ns + FUTURE_SLACK_NS


def pos_msec_to_ns(pos_msec: float | None) -> int | None:
    """``CAP_PROP_POS_MSEC`` (ms, µs resolution) as integer ns; None for 0 / missing / NaN."""
    if pos_msec is None or not pos_msec == pos_msec or pos_msec <= 0:  # NaN != NaN
        return None
    return round(pos_msec * 1000) * 1000


def choose_timestamp(pos_msec: float | None, read_ns: int) -> tuple[int, int | None]:
    """``(t_mono_ns, t_device_ns)`` for a frame grabbed at ``read_ns``."""
    dev = pos_msec_to_ns(pos_msec)
    if plausible_timestamp(dev, read_ns):
        assert dev is not None
        return dev, dev
    return read_ns, dev


def _querycap(path: str) -> tuple[str, str, str, int] | None:
    """(driver, card, bus_info, device capabilities) of a V4L2 node, or None."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        buf = bytearray(104)
        fcntl.ioctl(fd, _VIDIOC_QUERYCAP, buf, True)
    except OSError:
        return None
    finally:
        os.close(fd)
    driver = bytes(buf[0:16]).split(b"\0", 1)[0].decode(errors="replace")
    card = bytes(buf[16:48]).split(b"\0", 1)[0].decode(errors="replace")
    bus = bytes(buf[48:80]).split(b"\0", 1)[0].decode(errors="replace")
    caps, device_caps = struct.unpack_from("<II", buf, 84)
    return driver, card, bus, device_caps if caps & _CAP_DEVICE_CAPS else caps


def _is_webcam(driver: str, caps: int) -> bool:
    if driver in _NOT_WEBCAM_DRIVERS:
        return False
    if caps & (_CAP_VIDEO_M2M | _CAP_VIDEO_M2M_MPLANE):
        return False
    return bool(caps & (_CAP_VIDEO_CAPTURE | _CAP_VIDEO_CAPTURE_MPLANE))


def _by_id_links() -> dict[str, str]:
    links: dict[str, str] = {}
    for link in glob.glob("/dev/v4l/by-id/*"):
        with contextlib.suppress(OSError):
            links[os.path.realpath(link)] = link
    return links


def list_v4l2_cameras(
    dev_glob: str = "/dev/video*", sysfs: str = "/sys/class/video4linux"
) -> list[CameraDescriptor]:
    """Webcams among the V4L2 nodes (blocking; never raises). [] on a host without any."""
    if not sys.platform.startswith("linux"):
        return []
    found: list[CameraDescriptor] = []
    by_id = _by_id_links()

    def node_number(p: str) -> int:
        m = re.search(r"(\d+)$", p)
        return int(m.group(1)) if m else 1 << 30

    for path in sorted(glob.glob(dev_glob), key=node_number):
        node = os.path.basename(path)
        try:
            name = Path(sysfs, node, "name").read_text(encoding="utf-8").strip()
        except OSError:
            name = node
        cap = _querycap(path)
        if cap is None:
            continue
        driver, card, bus, caps = cap
        if not _is_webcam(driver, caps):
            continue
        details = {"driver": driver, "card": card, "bus_info": bus}
        if os.path.realpath(path) in by_id:
            details["by_id"] = by_id[os.path.realpath(path)]
        found.append(
            CameraDescriptor(
                id=node, name=name or card or node, backend="opencv", path=path, details=details
            )
        )
    return found


class OpenCVSource(FrameSource):
    """A V4L2 webcam read through OpenCV. ``device`` is a node path or an index."""

    backend = "opencv"
    # grab() returns within a frame interval, or after V4L2's select timeout if unplugged.
    close_timeout_s = 12.0

    def __init__(
        self,
        device: str | int,
        *,
        camera_id: str | None = None,
        name: str | None = None,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        buffer_count: int = 4,
        queue_size: int = 8,
        fourcc: str = "MJPG",
    ) -> None:
        path = f"/dev/video{device}" if isinstance(device, int) else str(device)
        cid = camera_id or os.path.basename(path)
        super().__init__(
            CameraInfo(
                id=cid,
                name=name or cid,
                width=width,
                height=height,
                fps=float(fps),
                backend=self.backend,
                simulated=False,
            ),
            queue_size,
        )
        self.path = path
        self.buffer_count = buffer_count
        self.fourcc = fourcc
        self._cap: Any = None
        self.timestamps_from_driver = 0  # frames stamped with the driver's buffer time

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """OpenCV importable and a Linux host (V4L2)."""
        if cv2 is None:
            return False, f"OpenCV is not installed ({_CV2_ERROR})"
        if not sys.platform.startswith("linux"):
            return False, "the opencv backend reads V4L2 devices, which exist only on Linux"
        return True, ""

    @classmethod
    def list_cameras(cls) -> list[CameraDescriptor]:
        """Webcams found under /dev/video* (blocking)."""
        try:
            return list_v4l2_cameras()
        except Exception:  # enumeration must never take the module down
            log.exception("listing V4L2 cameras failed")
            return []

    async def _open(self) -> None:
        ok, why = self.available()
        if not ok:
            raise BackendUnavailable(why)
        await super()._open()

    # -- device side (worker and capture threads) ---------------------------------------------
    def _device_open(self) -> CameraInfo:
        """Open and configure the device."""
        cap = cv2.VideoCapture(self.path, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise CameraError(
                f"cannot open {self.path} (unplugged, busy, or no permission: "
                "is the user in the 'video' group?)"
            )
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.info.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.info.height)
        cap.set(cv2.CAP_PROP_FPS, self.info.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, self.buffer_count)
        # Grab one frame so the driver settles on what it really delivers.
        if not cap.grab():
            cap.release()
            raise CameraError(f"{self.path} opened but delivered no frame")
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or self.info.width
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or self.info.height
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or self.info.fps
        if (w, h) != (self.info.width, self.info.height):
            log.warning(
                "%s: asked for %dx%d, the camera gives %dx%d",
                self.path,
                self.info.width,
                self.info.height,
                w,
                h,
            )
        self._cap = cap
        i = self.info
        return CameraInfo(
            id=i.id, name=i.name, width=w, height=h, fps=fps, backend=i.backend, simulated=False
        )

    def _device_close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def _describe_error(self, exc: BaseException) -> str:
        return f"{self.path}: {exc}"

    def _device_loop(self) -> None:
        cap = self._cap
        seq = 0
        failures = 0
        while not self._stop.is_set():
            if not cap.grab():
                failures += 1
                if failures >= 3:
                    self._error = f"{self.path} stopped delivering frames (unplugged?)"
                    return
                time.sleep(0.05)  # capture thread, not the loop
                continue
            read_ns = time.monotonic_ns()
            failures = 0
            pos = cap.get(cv2.CAP_PROP_POS_MSEC)
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                continue
            t_mono, t_dev = choose_timestamp(pos, read_ns)
            if t_dev is not None and t_mono == t_dev:
                self.timestamps_from_driver += 1
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            frame = Frame(
                image=rgb,
                t_mono_ns=t_mono,
                t_wall_unix=mono_to_wall(t_mono),
                t_device_ns=t_dev,
                sequence=seq,
            )
            seq += 1
            if not self._emit(frame):
                return
