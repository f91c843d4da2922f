"""Preview JPEGs of the scene with the gaze point drawn, made on a worker thread (the Cameras
pattern: the latest frame a few times a second; the recording path never waits for it)."""

from __future__ import annotations

from rpi_logger.io.preview import preview_payload
from rpi_logger.samples import Frame
from rpi_logger.tools.overlay import draw_gaze


def preview_event(
    device_id: str, frame: Frame, gaze: tuple[float, float] | None, width: int
) -> dict:
    """The `preview` event payload for one scene frame and gaze point. Blocking."""
    image = None if gaze is None else draw_gaze(frame.image, frame.pixel_format, *gaze)
    return {
        "device": device_id,
        "stream": "scene",
        "gaze": None if gaze is None else {"x": gaze[0], "y": gaze[1]},
        **preview_payload(frame, width, image),
    }
