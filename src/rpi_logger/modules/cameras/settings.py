"""The Cameras module's settings (config.txt keys, types, defaults, ranges)."""

from __future__ import annotations

from rpi_logger.config import Setting
from rpi_logger.io.sinks.video.settings import ENCODER_SETTINGS

SETTINGS = (
    Setting(
        "backend",
        str,
        "auto",
        "camera backend",
        choices=["auto", "synthetic", "opencv", "picamera2"],
    ),
    Setting("devices", str, None, "comma-separated camera ids; empty for all"),
    Setting("synthetic_count", int, 2, "simulated cameras offered", min=1, max=8),
    Setting("width", int, 1280, "frame width in pixels", min=512, max=4096),
    Setting("height", int, 720, "frame height in pixels", min=32, max=3072),
    Setting("fps", float, 30.0, "frames per second", min=1, max=240),
    Setting(
        "pixel_format",
        str,
        "rgb24",
        "capture format of CSI and simulated cameras (yuv420p: no conversion before encoding)",
        choices=["rgb24", "yuv420p"],
    ),
    *ENCODER_SETTINGS,
    Setting("queue_size", int, 0, "encoder queue in frames (0: one second)", min=0, max=1000),
    Setting("preview_fps", float, 5.0, "preview frames per second (0: off)", min=0, max=30),
    Setting("preview_width", int, 320, "preview width in pixels", min=64, max=1280),
)
