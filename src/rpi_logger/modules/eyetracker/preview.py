"""Preview JPEGs of the scene with the gaze point drawn, made on a worker thread (the Cameras
pattern: the latest frame a few times a second; the recording path never waits for it)."""

from __future__ import annotations

import base64

import cv2
import numpy as np

from rpi_logger.samples import Frame
from rpi_logger.tools.overlay import draw_gaze

JPEG_QUALITY = 70


def preview_event(
    device_id: str, frame: Frame, gaze: tuple[float, float] | None, width: int
) -> dict:
    """The `preview` event payload for one scene frame and gaze point. Blocking."""
    image = frame.image
    if gaze is not None:
        image = draw_gaze(image, frame.pixel_format, *gaze)
    if frame.pixel_format == "yuv420p":
        image = cv2.cvtColor(image, cv2.COLOR_YUV2BGR_I420)
    else:
        image = image[:, :, ::-1]
    h, w = image.shape[:2]
    height = max(2, round(h * width / w))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(
        ".jpg", np.ascontiguousarray(small), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return {
        "device": device_id,
        "stream": "scene",
        "t_mono_ns": frame.t_mono_ns,
        "gaze": None if gaze is None else {"x": gaze[0], "y": gaze[1]},
        "width": width,
        "height": height,
        "jpeg_base64": base64.b64encode(data.tobytes()).decode("ascii"),
    }
