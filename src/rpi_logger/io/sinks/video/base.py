"""What every video sink shares: the settings, the PTS rule and the timing CSV written in step.

A video sink is a `Sink[Frame]` (open, write, flush, sync, close; one thread at a time, normally
a `SinkWriter`'s worker) that writes two files: the video and its timing CSV, one row per frame
in file order (docs/design.md, "Timing files"). Subclasses only turn frames into video bytes
(`Mp4Sink`: PyAV codec + fragmented-MP4 output; `FFmpegSink`: a pipe into a system ffmpeg).

Presentation times are exact (docs/design.md, "Timing files"): a frame's PTS is
``t_mono_ns - origin_ns`` in microseconds (time base 1/1_000_000), so the first frame keeps its
offset from the trial's start and variable intervals stay variable. PTS strictly increase (a
frame less than 1 µs after the previous one is moved to the next microsecond; the trial stream
already refused frames out of order).

**Timing rows never lag the video.** The sink writes a frame's row before the frame's bytes can
reach the video, and every write into the video file (or ffmpeg's pipe) first flushes the rows
written since the last one to the OS (`GatedFile`); `sync()` fsyncs the rows before the video.
So at any instant, even after ``kill -9``, the timing file on disk holds a row for every frame
in the video on disk (row *i* is frame *i*; it may hold a few more), and after a sync the same
holds for a power cut. If the rows cannot be written, no more video is written either.

Failures raise `SinkError` with one line: "disk full: <path>" (naming the file that filled up:
video or timing) or the reason; the writer reports it once and the trial stream marks the file.
"""

from __future__ import annotations

import io
import os
import select
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpi_logger.io.sinks.base import Sink, SinkError, describe_write_error
from rpi_logger.io.sinks.csv_sink import CsvSink
from rpi_logger.samples import Frame

#: Columns of the video timing CSV (design.md: Timing files names first, then extras).
TIMING_COLUMNS: tuple[str, ...] = (
    "frame_index",
    "t_mono_ns",
    "t_wall_unix",
    "t_device_ns",
    "sequence",
    "pts_us",
    "queue_delay_ns",  # capture -> the writer thread took the frame (hand-off and queue)
    "encode_ns",  # the writer took the frame -> its bytes went to the muxer or pipe
)

TIME_BASE_US = 1_000_000  # stream time base 1/1_000_000 s


@dataclass(slots=True)
class VideoSettings:
    """How video is encoded: every encoder default lives here (the Cameras settings, the
    sinks and the benchmarks take theirs from this class).

    ``tune="zerolatency"`` turns off x264's lookahead and frame threading: a frame's packet
    comes out as it goes in, so a crash loses no frames stuck inside the encoder and the encode
    figure is the real cost of one frame. ``superfast`` keeps two 720p30 streams within reach
    of a Raspberry Pi 5's four cores; ``veryfast`` or slower makes smaller files.
    """

    encoder: str = "pyav"  # "pyav" (in-process) or "ffmpeg" (a system ffmpeg)
    codec: str = "libx264"  # PyAV codec, or the encoder ffmpeg uses (h264_v4l2m2m, ...)
    crf: int = 23  # libx264 constant quality
    preset: str = "superfast"  # libx264
    tune: str | None = "zerolatency"  # libx264
    threads: int = 0  # PyAV encoder threads, 0: x264 chooses
    bitrate: str = "4M"  # ffmpeg encoders without a constant-quality mode
    keyframe_interval_s: float = 1.0  # an IDR at least this often
    fragment_s: float = 0.5  # MP4 fragments at most this long: what a kill -9 can lose
    codec_options: dict[str, str] = field(default_factory=dict)  # PyAV extras, win over ours
    ffmpeg: str = "ffmpeg"  # the binary
    encoder_args: list[str] | None = None  # ffmpeg: replaces the per-encoder arguments
    exit_timeout_s: float = 15.0  # ffmpeg: after end of input (or a stalled pipe), SIGTERM
    kill_timeout_s: float = 5.0  # ffmpeg: after SIGTERM, SIGKILL

    def __post_init__(self) -> None:
        if self.keyframe_interval_s <= 0 or self.fragment_s <= 0:
            raise ValueError("keyframe_interval_s and fragment_s must be positive")


def av_frame(frame: Frame, pts_us: int, time_base: Any) -> Any:
    """`frame` as a PyAV frame presented at `pts_us`, without copying the picture.

    `from_numpy_buffer` wraps the array (a frame is never changed after capture), where
    `from_ndarray` copies it while holding the GIL: 2-3 ms per 720p frame on a Pi-class core,
    the largest GIL holder of the Cameras process. A layout it cannot wrap is copied.
    """
    import av  # PyAV loads with the first video, not with every sink module

    try:
        vf = av.VideoFrame.from_numpy_buffer(frame.image, format=frame.pixel_format)
    except ValueError:  # not contiguous, or a stride PyAV cannot take as it is
        vf = av.VideoFrame.from_ndarray(frame.image, format=frame.pixel_format)
    vf.pts = pts_us
    vf.time_base = time_base
    return vf


def pts_us_of(t_mono_ns: int, origin_ns: int) -> int:
    """PTS in µs of a frame captured at ``t_mono_ns`` (rounded to the nearest µs)."""
    return (t_mono_ns - origin_ns + 500) // 1000


def keyframe_interval_us(fps_hint: float, max_interval_s: float = 1.0) -> int:
    """Force a keyframe once this long has passed since the last one: half a nominal frame short
    of ``max_interval_s``, so keyframe-to-keyframe spans stay within it."""
    period_us = 1e6 / fps_hint if fps_hint > 0 else 0.0
    return max(1, int(max_interval_s * 1e6 - period_us / 2))


class GatedFile(io.FileIO):
    """An unbuffered binary file (a path, or a descriptor such as a pipe's write end) whose every
    write first calls ``before_write()``, which may raise to refuse it.

    With ``stall_timeout_s`` the descriptor is non-blocking and a write that finds no room for
    that long raises `TimeoutError` (a reader that stopped reading), instead of hanging.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | int,
        before_write: Callable[[], None],
        stall_timeout_s: float | None = None,
    ) -> None:
        super().__init__(target, "wb")
        self._before_write = before_write
        self._stall_s = stall_timeout_s
        if stall_timeout_s is not None:
            os.set_blocking(self.fileno(), False)

    def write(self, data: Any) -> int:  # type: ignore[override]
        self._before_write()
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):  # a pipe may take a large buffer in parts
            n = super().write(view[done:])
            if n is None:  # non-blocking and full: wait for room, but not forever
                assert self._stall_s is not None
                _, ready, _ = select.select([], [self.fileno()], [], self._stall_s)
                if not ready:
                    raise TimeoutError(f"no room in {self.name} for {self._stall_s:g} s")
                continue
            done += n
        return done


class VideoSink(Sink[Frame]):
    """Frames to a video file and its timing CSV (see the module docstring).

    Subclasses implement `_open_video`, `_encode` (call `_row` for each frame before its bytes
    can reach the file), `_finish_video` (trailer, remaining packets), `_sync_video` and
    `_release_video` (idempotent, also after a failure). `frames` counts the frames given to the
    file, each with its row.
    """

    #: The manifest's "encoder" name.
    kind = "abstract"

    def __init__(
        self,
        path: str | os.PathLike[str],
        timing_path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: float,
        origin_ns: int,
        settings: VideoSettings | None = None,
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"video size must be positive and even, got {width}x{height}")
        self.path = Path(path)
        self.timing_path = Path(timing_path)
        self.width, self.height = int(width), int(height)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.origin_ns = int(origin_ns)
        self.settings = settings or VideoSettings()
        self.frames = 0
        self.encode_ns_total = 0
        self._timing = CsvSink(self.timing_path, TIMING_COLUMNS)
        self._last_pts = -1
        self._rows_pending = False  # rows written since the last flush of the timing file
        self._rows_error: SinkError | None = None  # the rows failed: no more video either
        self._error: SinkError | None = None
        self._closed = False

    # -- the Sink contract (one thread at a time) ---------------------------------------------
    def open(self) -> None:
        """Create the timing file (header fsynced) and the video."""
        try:
            try:
                self._timing.open()
            except Exception as exc:
                raise self._rows_failed(exc) from exc
            self._open_video()
        except Exception as exc:
            self.abort()
            raise self._failure(exc) from exc

    def write(self, batch: Sequence[Frame]) -> None:
        """Encode frames in order; each frame's row is written before its bytes."""
        if self._error is not None:
            raise self._error
        for frame in batch:
            t_take = time.monotonic_ns()
            pts = max(pts_us_of(frame.t_mono_ns, self.origin_ns), self._last_pts + 1)
            self._last_pts = pts
            try:
                self._encode(frame, pts, t_take)
            except Exception as exc:
                raise self._failure(exc) from exc

    def flush(self) -> None:
        """Rows to the OS (the video's bytes go out unbuffered as the muxer writes them)."""
        if self._error is None:
            self._flush_rows()

    def sync(self) -> None:
        """Rows, then the video, on stable storage (in that order)."""
        if self._error is not None:
            raise self._error
        try:
            self._flush_rows(durable=True)
            self._sync_video()
        except Exception as exc:
            raise self._failure(exc) from exc

    def close(self) -> None:
        """Finish the video, sync rows then video, release both (idempotent)."""
        if self._closed:
            return
        if self._error is not None:
            self.abort()
            return
        try:
            self._finish_video()
            self._timing.close()  # synced: the rows reach the disk before the video
            self._sync_video()
        except Exception as exc:
            self.abort()
            raise self._failure(exc) from exc
        self._closed = True
        self._release_video()

    def abort(self) -> None:
        """Release both files after a failure; the timing file is cut back to its last good
        flush (no torn row), the video keeps what reached it."""
        self._closed = True
        try:
            self._release_video()
        finally:
            self._timing.abort()

    # -- for subclasses (writer thread) --------------------------------------------------------
    def _row(self, frame: Frame, pts_us: int, t_take_ns: int) -> None:
        """Write the timing row of the next frame of the file (before its bytes go out)."""
        enc_ns = time.monotonic_ns() - t_take_ns
        self.encode_ns_total += enc_ns
        device = "" if frame.t_device_ns is None else frame.t_device_ns
        row = (
            self.frames,
            frame.t_mono_ns,
            f"{frame.t_wall_unix:.6f}",
            device,
            frame.sequence,
            pts_us,
            max(0, t_take_ns - frame.t_mono_ns),
            enc_ns,
        )
        try:
            self._timing.write((row,))
        except Exception as exc:
            raise self._rows_failed(exc) from exc
        self.frames += 1
        self._rows_pending = True

    def _before_video_bytes(self) -> None:
        """`GatedFile` hook: the rows of every frame handed over so far reach the OS first."""
        if self._rows_error is not None:
            raise self._rows_error
        if self._rows_pending:
            self._flush_rows()

    def _flush_rows(self, durable: bool = False) -> None:
        try:
            if durable:
                self._timing.sync()
            else:
                self._timing.flush()
        except Exception as exc:
            raise self._rows_failed(exc) from exc
        self._rows_pending = False

    def _rows_failed(self, exc: BaseException) -> SinkError:
        if self._rows_error is None:
            self._rows_error = _as_sink_error(self.timing_path, exc)
        return self._rows_error

    def _failure(self, exc: BaseException) -> SinkError:
        """The one error this sink reports (the rows' failure wins: a muxer error after it is
        its echo)."""
        if self._error is None:
            self._error = self._rows_error or _as_sink_error(self.path, exc)
        return self._error

    def _open_video(self) -> None:
        raise NotImplementedError

    def _encode(self, frame: Frame, pts_us: int, t_take_ns: int) -> None:
        raise NotImplementedError

    def _finish_video(self) -> None:
        raise NotImplementedError

    def _sync_video(self) -> None:
        raise NotImplementedError

    def _release_video(self) -> None:
        raise NotImplementedError


def _as_sink_error(path: Path, exc: BaseException) -> SinkError:
    """`exc` as the one-line error of writing `path` (PyAV may wrap the disk's OSError)."""
    if isinstance(exc, SinkError):
        return exc
    while not isinstance(exc, OSError) and isinstance(exc.__cause__, OSError):
        exc = exc.__cause__
    if isinstance(exc, OSError):
        return SinkError(describe_write_error(path, exc))
    return SinkError(f"{path}: {exc or type(exc).__name__}")
