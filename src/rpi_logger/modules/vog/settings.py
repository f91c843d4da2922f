"""The VOG module's settings (config.txt keys, types, defaults, ranges)."""

from __future__ import annotations

from rpi_logger.config import Setting
from rpi_logger.modules.vog.protocol import MODES

SETTINGS = (
    Setting("port", str, None, "serial port (empty: found by USB VID:PID)"),
    Setting("device_type", str, "sVOG", "the goggles: sVOG or wVOG", choices=["sVOG", "wVOG"]),
    Setting("device_id", str, None, "the device's folder name (empty: the device type)"),
    Setting("mode", str, "cycle", "cycle, peek, eBlindfold or direct", choices=list(MODES)),
    Setting("open_ms", int, 1500, "lenses open for this long (cycle, peek)", min=100, max=60000),
    Setting(
        "closed_ms", int, 1500, "closed for this long (cycle; peek lockout)", min=100, max=60000
    ),
    Setting("debounce_ms", int, 20, "the button's debounce time", min=0, max=1000),
    Setting("silent_timeout_s", float, 10.0, "no lines for this long: unplugged", min=1, max=600),
)
