"""Sinks: where streams end up (CSV, fragmented MP4, ffmpeg pipe, WAV), and the writer that runs
one on a worker thread (or inline, in blocking mode). See base.py and writer.py."""

from .base import (
    Sink,
    SinkError,
    SinkProxy,
    describe_write_error,
    is_disk_full,
    set_latency,
    with_latency,
)
from .csv_sink import CsvSink
from .writer import SinkWriter, WriterClosedError, WriterStats, set_blocking

__all__ = [
    "CsvSink",
    "Sink",
    "SinkError",
    "SinkProxy",
    "SinkWriter",
    "WriterClosedError",
    "WriterStats",
    "describe_write_error",
    "is_disk_full",
    "set_blocking",
    "set_latency",
    "with_latency",
]
