"""WavSink: audio blocks -> a WAV file (soundfile) and its per-block timing CSV, written in step.

One `AudioBlock` (rpi_logger.samples) is one timing row (design.md / design.md §5, audio timing):
``block_index``, ``sample_index`` (the index in the WAV of the block's first sample),
``frames`` (samples per channel), ``t_mono_ns`` (host time of the first sample),
``t_wall_unix``, then extras: ``t_device_ns`` (PortAudio's ADC time, empty without one),
``device_sample_index`` (the device's own sample counter), ``lost_before`` (samples the device
lost just before the block), ``input_overflow``, ``input_underflow`` (its status flags).
Every channel is kept; PCM_16, PCM_24 or FLOAT.

**The header stays valid as the file grows.** libsndfile writes a WAV's sizes only when it
closes the file; a crash would leave a header declaring no data, which many tools refuse. So
every `flush` (the writer does one at least every `flush_interval_s`) first hands the timing
rows to the OS, then has libsndfile rewrite the header for the samples written so far
(``SFC_UPDATE_HEADER_NOW``). The samples themselves go to the OS as they are written (libsndfile
does not buffer PCM). So on disk, at any instant, even after ``kill -9``:
``header's samples <= timing rows' samples <= samples in the data``: an ordinary tool plays the
file up to its last flush, every sample it plays has its timing row, and
``rpi-logger verify --repair`` can extend the header to the samples written after that flush
(rewriting sizes only, never a sample). `sync` makes the same true for a power cut.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rpi_logger.io.atomic import fsync_dir
from rpi_logger.samples import AudioBlock

from .base import Sink, SinkError, describe_write_error
from .csv_sink import CsvSink

__all__ = ["SUBTYPES", "TIMING_COLUMNS", "WavSink"]

#: WAV sample formats offered, and the numpy dtype captured for each (24-bit audio travels as
#: left-aligned int32; libsndfile keeps its top 24 bits).
SUBTYPES: dict[str, str] = {"PCM_16": "int16", "PCM_24": "int32", "FLOAT": "float32"}

#: Columns of the audio timing CSV (design.md §5's names first, then extras).
TIMING_COLUMNS: tuple[str, ...] = (
    "block_index",
    "sample_index",
    "frames",
    "t_mono_ns",
    "t_wall_unix",
    "t_device_ns",
    "device_sample_index",
    "lost_before",
    "input_overflow",
    "input_underflow",
)

# sndfile.h: rewrite the header now for the data written so far (soundfile does not wrap it).
_SFC_UPDATE_HEADER_NOW = 0x1060


class WavSink(Sink[AudioBlock]):
    """Audio blocks to ``path`` (WAV) and ``timing_path`` (CSV). See the module docstring.

    `blocks` and `samples` count what was handed to the file (writer thread; read them after
    close)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        timing_path: str | os.PathLike[str],
        *,
        sample_rate: int,
        channels: int,
        subtype: str = "PCM_16",
    ) -> None:
        if subtype not in SUBTYPES:
            raise ValueError(f"WAV format must be one of {', '.join(SUBTYPES)}, got {subtype!r}")
        if sample_rate <= 0 or channels <= 0:
            raise ValueError(f"bad WAV shape: {sample_rate} Hz, {channels} channels")
        self.path = Path(path)
        self.timing_path = Path(timing_path)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.subtype = subtype
        self.blocks = 0
        self.samples = 0
        self._timing = CsvSink(self.timing_path, TIMING_COLUMNS, append=False)
        self._sf: Any = None  # soundfile.SoundFile
        self._header_samples = 0  # samples the header on disk declares
        self._closed = False

    # -- the Sink contract (one thread at a time) -----------------------------------------------
    def open(self) -> None:
        """Create the timing file (header fsynced) and the WAV (a valid, empty one)."""
        import soundfile as sf  # loads with the first WAV, not with every sink module

        try:
            self._timing.open()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._sf = sf.SoundFile(
                self.path,
                "w",
                samplerate=self.sample_rate,
                channels=self.channels,
                subtype=self.subtype,
                format="WAV",
            )
            self._update_header()
            self._sf.flush()  # fsync
            fsync_dir(self.path.parent)
        except Exception as exc:
            self.abort()
            raise _as_sink_error(self.path, exc) from exc

    def write(self, batch: Sequence[AudioBlock]) -> None:
        """The blocks' samples, then their rows (so no row ever reaches the disk before its
        samples)."""
        f = self._sf
        assert f is not None, "WavSink.write before open"
        rows = []
        for block in batch:
            if block.channels != self.channels or block.sample_rate != self.sample_rate:
                raise SinkError(
                    f"{self.path}: block of {block.channels} channels at {block.sample_rate} Hz "
                    f"in a file of {self.channels} at {self.sample_rate} Hz"
                )
            try:
                f.write(block.data)
            except Exception as exc:
                raise _as_sink_error(self.path, exc, _sf_error(f)) from exc
            rows.append(
                (
                    self.blocks,
                    self.samples,
                    block.frames,
                    block.t_mono_ns,
                    f"{block.t_wall_unix:.6f}",
                    "" if block.t_device_ns is None else block.t_device_ns,
                    block.device_sample_index,
                    block.lost_before,
                    int(block.input_overflow),
                    int(block.input_underflow),
                )
            )
            self.blocks += 1
            self.samples += block.frames
        try:
            self._timing.write(rows)
        except Exception as exc:
            raise _as_sink_error(self.timing_path, exc) from exc

    def flush(self) -> None:
        """Rows to the OS, then a header declaring every sample those rows describe."""
        if self._sf is None:
            return
        try:
            self._timing.flush()
        except Exception as exc:
            raise _as_sink_error(self.timing_path, exc) from exc
        try:
            self._update_header()
        except Exception as exc:
            raise _as_sink_error(self.path, exc) from exc

    def sync(self) -> None:
        """`flush`, then the WAV (samples and header) and the rows on stable storage."""
        self.flush()
        if self._sf is None:
            return
        try:
            self._sf.flush()  # sf_write_sync: fsync
        except Exception as exc:
            raise _as_sink_error(self.path, exc) from exc
        try:
            self._timing.sync()
        except Exception as exc:
            raise _as_sink_error(self.timing_path, exc) from exc

    def close(self) -> None:
        """Final header, both files synced and closed (idempotent)."""
        if self._closed:
            return
        try:
            self.flush()
            f, self._sf = self._sf, None
            if f is not None:
                f.close()  # writes the final header
                _fsync_path(self.path)
            self._timing.close()
        except Exception as exc:
            self.abort()
            raise _as_sink_error(self.path, exc) from exc
        self._closed = True

    def abort(self) -> None:
        """Release both files after a failure: the rows are cut back to their last good flush,
        the WAV keeps its samples (its header says what libsndfile last wrote)."""
        self._closed = True
        f, self._sf = self._sf, None
        if f is not None:
            with contextlib.suppress(Exception):  # the same failure again
                f.close()
        self._timing.abort()

    # -- internals -------------------------------------------------------------------------------
    def _update_header(self) -> None:
        if self._header_samples == self.samples and self.samples:
            return
        import soundfile as sf

        sf._snd.sf_command(self._sf._file, _SFC_UPDATE_HEADER_NOW, sf._ffi.NULL, 0)
        self._header_samples = self.samples


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sf_error(f: Any) -> str:
    """libsndfile's own account of the last failure on `f` ("System error : No space left on
    device."): a short write only raises an AssertionError in soundfile."""
    try:
        import soundfile as sf

        return str(sf._ffi.string(sf._snd.sf_strerror(f._file)).decode("utf-8", "replace"))
    except Exception:  # best effort: the caller reports the failure either way
        return ""


def _as_sink_error(path: Path, exc: BaseException, detail: str = "") -> SinkError:
    """`exc` as the one-line error of writing `path` ("disk full: <path>" for a full disk, which
    libsndfile reports as text, not as an OSError)."""
    if isinstance(exc, SinkError):
        return exc
    if isinstance(exc, OSError):
        return SinkError(describe_write_error(path, exc))
    text = f"{exc} {detail}".strip()
    if "No space left" in text or "Disk quota" in text:
        return SinkError(f"disk full: {path}")
    return SinkError(f"writing {path} failed: {text or type(exc).__name__}")
