"""Small JPEG previews for the UI, made off the recording path.

The preview loop picks each camera's latest frame a few times a second, scales and encodes it on
a worker thread (one at a time, so previews never queue up behind a slow CPU), and sends it as a
`preview` event. The recording path never waits for it: frames are only read, never copied or
held back.
"""

from __future__ import annotations

from rpi_logger.io.preview import preview_payload
from rpi_logger.modules.cameras.frames import Frame


def preview_event(camera_id: str, frame: Frame, width: int) -> dict:
    """The `preview` event payload for one frame. Blocking (runs on a worker thread)."""
    return {"camera": camera_id, **preview_payload(frame, width)}
