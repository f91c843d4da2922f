"""The EyeTracker module's settings (config.txt keys, types, defaults, ranges)."""

from __future__ import annotations

from rpi_logger.config import Setting
from rpi_logger.io.sinks.video.settings import ENCODER_SETTINGS

SETTINGS = (
    Setting("backend", str, "auto", "eye tracker backend", choices=["auto", "neon", "simulated"]),
    Setting("address", str, None, "the Neon phone's IP address (empty: zeroconf discovery)"),
    Setting("port", int, 8080, "the Neon's realtime API port", min=1, max=65535),
    Setting("discovery_timeout_s", float, 5.0, "how long discovery looks", min=0.5, max=120),
    Setting("device_id", str, "neon", "the device's folder name in the session"),
    Setting("scene", bool, True, "record the scene video"),
    Setting("gaze", bool, True, "record gaze (200 Hz)"),
    Setting("imu", bool, True, "record the IMU"),
    Setting("events", bool, True, "record fixations, saccades and blinks"),
    Setting("eye_video", bool, False, "record the eye cameras' video"),
    Setting("overlay_video", bool, False, "also record a scene video with the gaze drawn in"),
    Setting(
        "sync_interval_s", float, 60.0, "seconds between clock-offset estimates", min=1, max=3600
    ),
    Setting("sync_measurements", int, 100, "time echoes per estimate", min=3, max=1000),
    Setting(
        "max_roundtrip_ms",
        float,
        50.0,
        "estimates with a longer round trip are rejected",
        min=0.1,
        max=10000,
    ),
    Setting("stall_timeout_s", float, 1.0, "no gaze for this long: disconnected", min=0.1, max=60),
    Setting(
        "reconnect_interval_s", float, 1.0, "seconds between reconnect attempts", min=0.1, max=60
    ),
    *ENCODER_SETTINGS,
    Setting("sim_scene_width", int, 1600, "simulated scene width", min=512, max=4096),
    Setting("sim_scene_height", int, 1200, "simulated scene height", min=32, max=3072),
    Setting("sim_scene_fps", float, 30.0, "simulated scene frame rate", min=1, max=120),
    Setting(
        "sim_gaze_payload",
        str,
        "eyelid",
        "what the simulated gaze carries",
        choices=["plain", "eyestate", "eyelid"],
    ),
    Setting(
        "sim_disconnect_after_s",
        float,
        0.0,
        "simulated disconnect this long into each trial (0: none)",
        min=0,
        max=86400,
    ),
    Setting("sim_disconnect_s", float, 2.0, "length of a simulated disconnect", min=0.1, max=3600),
    Setting("preview_fps", float, 4.0, "preview frames per second (0: off)", min=0, max=30),
    Setting("preview_width", int, 320, "preview width in pixels", min=64, max=1600),
)
