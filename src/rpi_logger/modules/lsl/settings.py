"""The LSL module's settings: which streams to record (the predicate) and how."""

from __future__ import annotations

from rpi_logger.config import Setting

SETTINGS = (
    Setting("stream_name", str, None, "record streams of this name (empty: any)"),
    Setting("stream_type", str, None, "record streams of this type, e.g. EEG (empty: any)"),
    Setting("source_id", str, None, "record the stream with this source id (empty: any)"),
    Setting("host", str, None, "record streams published by this host name (empty: any)"),
    Setting(
        "record_own",
        bool,
        False,
        "also record this host's own RPi Logger outlets (lsl = true in other modules)",
    ),
    Setting(
        "clock_interval_s",
        float,
        5.0,
        "seconds between clock offset measurements per stream",
        min=0.5,
        max=60,
    ),
)
