"""Small JPEG previews for the UI, made off the recording path.

The preview loop picks each camera's latest frame a few times a second, scales and encodes it on
a worker thread (one at a time, so previews never queue up behind a slow CPU), and sends it as a
`preview` event. The recording path never waits for it: frames are only read, never copied or
held back.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np

from rpi_logger.modules.cameras.frames import Frame

JPEG_QUALITY = 70


def preview_jpeg(frame: Frame, width: int) -> tuple[bytes, int, int]:
    """The frame scaled to `width` (aspect kept) as JPEG bytes, with its size. Blocking."""
    image = frame.image
    if frame.pixel_format == "yuv420p":
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


def preview_event(camera_id: str, frame: Frame, width: int) -> dict:
    """The `preview` event payload for one frame. Blocking (runs on a worker thread)."""
    jpeg, w, h = preview_jpeg(frame, width)
    return {
        "camera": camera_id,
        "t_mono_ns": frame.t_mono_ns,
        "width": w,
        "height": h,
        "jpeg_base64": base64.b64encode(jpeg).decode("ascii"),
    }
