"""Video sinks: frames -> a fragmented MP4 and its timing CSV, off the loop (design.md: Timing
files, Modules and trials).

- `Mp4Sink` (``encoder = "pyav"``, default): `H264Codec` (libx264 in PyAV) into `Mp4Output`.
- `FFmpegSink` (``encoder = "ffmpeg"``): a system ffmpeg fed through a pipe (hardware encoders);
  its process is started and reaped on the loop (`astart` / `astop`).

Both are `Sink[Frame]`s run by a `SinkWriter` (the trial stream owns one); `VideoSettings` holds
every encoder default.
"""

from __future__ import annotations

from rpi_logger.io.sinks.video.base import (
    TIMING_COLUMNS,
    VideoSettings,
    VideoSink,
    pts_us_of,
)
from rpi_logger.io.sinks.video.ffmpeg import FFmpegSink, build_command, check_codec
from rpi_logger.io.sinks.video.mp4 import H264Codec, Mp4Output, Mp4Sink, mp4_muxer_options

SINKS: dict[str, type[VideoSink]] = {"pyav": Mp4Sink, "ffmpeg": FFmpegSink}


def sink_class(encoder: str) -> type[VideoSink]:
    """The video sink an ``encoder`` setting names (``"pyav"`` or ``"ffmpeg"``)."""
    try:
        return SINKS[encoder]
    except KeyError:
        raise ValueError(f"unknown encoder {encoder!r}; expected one of {sorted(SINKS)}") from None


__all__ = [
    "SINKS",
    "TIMING_COLUMNS",
    "FFmpegSink",
    "H264Codec",
    "Mp4Output",
    "Mp4Sink",
    "VideoSettings",
    "VideoSink",
    "build_command",
    "check_codec",
    "mp4_muxer_options",
    "pts_us_of",
    "sink_class",
]
