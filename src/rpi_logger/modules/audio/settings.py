"""The Audio module's settings (config.txt keys, types, defaults, ranges)."""

from __future__ import annotations

from rpi_logger.config import Setting
from rpi_logger.io.sinks.wav_sink import SUBTYPES

SETTINGS = (
    Setting("backend", str, "auto", "audio backend", choices=["auto", "sounddevice", "simulated"]),
    Setting("devices", str, None, "comma-separated input names or indexes; empty: the default"),
    Setting("sample_rate", int, 48000, "samples per second", min=8000, max=384000),
    Setting("channels", int, 0, "channels to record (0: all of the device's)", min=0, max=64),
    Setting("format", str, "PCM_16", "WAV sample format", choices=list(SUBTYPES)),
    Setting("blocksize", int, 480, "samples per channel in each callback", min=16, max=48000),
    Setting("latency", str, "low", "PortAudio input latency", choices=["low", "high"]),
    Setting("queue_blocks", int, 0, "writer queue in blocks (0: about 2 s)", min=0, max=100_000),
    Setting("flush_interval_s", float, 0.5, "seconds between flushes", min=0.05, max=1.0),
    Setting("level_meter_hz", float, 10.0, "level meter updates per second", min=0, max=50),
)
