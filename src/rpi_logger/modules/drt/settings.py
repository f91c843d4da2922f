"""The DRT module's settings (config.txt keys, types, defaults, ranges)."""

from __future__ import annotations

from rpi_logger.config import Setting

SETTINGS = (
    Setting("port", str, None, "serial port (empty: found by USB VID:PID)"),
    Setting(
        "device_type", str, "sDRT", "the DRT: wired sDRT or wireless wDRT", choices=["sDRT", "wDRT"]
    ),
    Setting("device_id", str, None, "the device's folder name (empty: the device type)"),
    Setting("iso_preset", bool, True, "ISO 17488 preset: ISI 3000-5000 ms, stimulus 1000 ms"),
    Setting("lower_isi_ms", int, 3000, "shortest gap between stimuli", min=500, max=60000),
    Setting("upper_isi_ms", int, 5000, "longest gap between stimuli", min=500, max=60000),
    Setting("stim_dur_ms", int, 1000, "stimulus duration", min=10, max=10000),
    Setting("intensity", int, 255, "stimulus intensity", min=0, max=255),
    Setting("map_clock", bool, True, "map device onset times onto the host clock"),
    Setting("fit_settle_pairs", int, 16, "rows wait for this many clock pairs", min=1, max=1000),
    Setting("silent_timeout_s", float, 10.0, "no lines for this long: unplugged", min=1, max=600),
)
