"""The GPS module's settings (config.txt keys, types, defaults, ranges)."""

from __future__ import annotations

from rpi_logger.config import Setting

SETTINGS = (
    Setting("port", str, "/dev/serial0", "the receiver's serial port"),
    Setting("baudrate", int, 9600, "serial speed", min=1200, max=921600),
    Setting("device_id", str, "gps", "the device's folder name in the session"),
    Setting("stale_s", float, 5.0, "fix age or fix interval: stale", min=1, max=600),
    Setting("silent_timeout_s", float, 5.0, "no data for this long: unplugged", min=1, max=600),
)
