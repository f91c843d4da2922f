"""Video encoders: frames from the event loop, encoded off it into fragmented MP4 (SPEC §5, §6).

- `PyAVEncoder` (``"pyav"``, default): libx264 in-process on an encoder thread.
- `FFmpegEncoder` (``"ffmpeg"``): a system ffmpeg fed through a pipe (hardware encoders).

Both share `Encoder`'s interface; see `rpi_logger.io.encoders.base`.
"""

from __future__ import annotations

from rpi_logger.io.encoders.base import (
    TIMING_COLUMNS,
    Encoder,
    EncoderError,
    EncoderStats,
    FlushRows,
    OnWritten,
    WrittenFrame,
    pts_us_of,
)
from rpi_logger.io.encoders.ffmpeg_encoder import (
    FFmpegEncoder,
    FFmpegSettings,
    check_codec,
    ffmpeg_available,
    ffmpeg_encoders,
)
from rpi_logger.io.encoders.pyav_encoder import PyAVEncoder, PyAVSettings

ENCODERS: dict[str, type[Encoder]] = {"pyav": PyAVEncoder, "ffmpeg": FFmpegEncoder}


def make_encoder(
    kind: str = "pyav",
    *,
    settings: PyAVSettings | FFmpegSettings | None = None,
    queue_size: int | None = None,
    on_written: OnWritten | None = None,
    flush_rows: FlushRows | None = None,
) -> Encoder:
    """An encoder by name (``"pyav"`` or ``"ffmpeg"``); see `Encoder` for the callbacks."""
    if kind == "pyav":
        if settings is not None and not isinstance(settings, PyAVSettings):
            raise TypeError("the pyav encoder takes PyAVSettings")
        return PyAVEncoder(
            settings, queue_size=queue_size, on_written=on_written, flush_rows=flush_rows
        )
    if kind == "ffmpeg":
        if settings is not None and not isinstance(settings, FFmpegSettings):
            raise TypeError("the ffmpeg encoder takes FFmpegSettings")
        return FFmpegEncoder(
            settings, queue_size=queue_size, on_written=on_written, flush_rows=flush_rows
        )
    raise ValueError(f"unknown encoder {kind!r}; expected one of {sorted(ENCODERS)}")


__all__ = [
    "ENCODERS",
    "TIMING_COLUMNS",
    "Encoder",
    "EncoderError",
    "EncoderStats",
    "FFmpegEncoder",
    "FFmpegSettings",
    "FlushRows",
    "OnWritten",
    "PyAVEncoder",
    "PyAVSettings",
    "WrittenFrame",
    "check_codec",
    "ffmpeg_available",
    "ffmpeg_encoders",
    "make_encoder",
    "pts_us_of",
]
