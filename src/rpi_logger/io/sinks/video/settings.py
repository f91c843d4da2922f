"""The encoder's config.txt settings, one list for every module that records video."""

from __future__ import annotations

from rpi_logger.config import Setting
from rpi_logger.io.sinks.video import SINKS, VideoSettings

_VIDEO = VideoSettings()  # the encoder defaults live there

ENCODER_SETTINGS = (
    Setting("encoder", str, _VIDEO.encoder, "video encoder", choices=list(SINKS)),
    Setting("ffmpeg_codec", str, _VIDEO.codec, "encoder used by the ffmpeg option"),
    Setting("crf", int, _VIDEO.crf, "x264 constant quality (lower is better)", min=0, max=51),
    Setting(
        "preset",
        str,
        _VIDEO.preset,
        "x264 preset",
        choices=["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"],
    ),
    Setting("threads", int, _VIDEO.threads, "encoder threads (0: automatic)", min=0, max=16),
)
