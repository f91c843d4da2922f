"""Video sinks: frames -> a fragmented MP4 and its timing CSV, off the loop (SPEC §5, §6).

- `Mp4Sink` (``encoder = "pyav"``, default): `H264Codec` (libx264 in PyAV) into `Mp4Output`.
- `FFmpegSink` (``encoder = "ffmpeg"``): a system ffmpeg fed through a pipe (hardware encoders);
  its process is started and reaped on the loop (`astart` / `astop`).

Both are `Sink[Frame]`s run by a `SinkWriter` (the trial stream owns one); `VideoSettings` holds
every encoder default.
"""

from __future__ import annotations

import os

from rpi_logger.io.sinks.video.base import (
    TIMING_COLUMNS,
    VideoSettings,
    VideoSink,
    pts_us_of,
)
from rpi_logger.io.sinks.video.ffmpeg import FFmpegSink, build_command, check_codec
from rpi_logger.io.sinks.video.mp4 import H264Codec, Mp4Output, Mp4Sink, mp4_muxer_options

SINKS: dict[str, type[VideoSink]] = {"pyav": Mp4Sink, "ffmpeg": FFmpegSink}


def video_sink(
    settings: VideoSettings,
    path: str | os.PathLike[str],
    timing_path: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    fps: float,
    origin_ns: int,
) -> VideoSink:
    """The sink `settings.encoder` names, writing `path` and its timing CSV `timing_path`."""
    try:
        cls = SINKS[settings.encoder]
    except KeyError:
        raise ValueError(
            f"unknown encoder {settings.encoder!r}; expected one of {sorted(SINKS)}"
        ) from None
    return cls(
        path,
        timing_path,
        width=width,
        height=height,
        fps=fps,
        origin_ns=origin_ns,
        settings=settings,
    )


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
    "video_sink",
]
