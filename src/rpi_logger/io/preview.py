"""Small JPEG previews of frames for the UI. Blocking: modules call it on a worker thread, a few
times a second, with the latest frame; the recording path never waits for it."""

from __future__ import annotations

import base64
from typing import Any

import cv2
import numpy as np

from rpi_logger.samples import Frame

JPEG_QUALITY = 70


def preview_jpeg(image: np.ndarray, pixel_format: str, width: int) -> tuple[bytes, int, int]:
    """`image` (rgb24 or yuv420p) scaled to `width` (aspect kept) as JPEG bytes, with its size."""
    if pixel_format == "yuv420p":
        image = cv2.cvtColor(image, cv2.COLOR_YUV2BGR_I420)
    else:
        image = image[:, :, ::-1]  # RGB -> BGR, as OpenCV expects
    h, w = image.shape[:2]
    height = max(2, round(h * width / w))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(
        ".jpg", np.ascontiguousarray(small), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes(), width, height


def preview_payload(frame: Frame, width: int, image: np.ndarray | None = None) -> dict[str, Any]:
    """The picture part of a `preview` event: the frame (or `image`, a drawn-on copy of it in
    the frame's pixel format) as a base64 JPEG, its size and capture time."""
    jpeg, w, h = preview_jpeg(frame.image if image is None else image, frame.pixel_format, width)
    return {
        "t_mono_ns": frame.t_mono_ns,
        "width": w,
        "height": h,
        "jpeg_base64": base64.b64encode(jpeg).decode("ascii"),
    }
