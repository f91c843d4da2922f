"""H.264 in fragmented MP4 through PyAV (libx264), encoded on a dedicated thread.

What makes the file right (checked against PyAV 18 / FFmpeg 7):

- Stream and codec time base 1/1_000_000: with a coarser codec time base PTS are rounded to
  nominal frame slots.
- ``movflags=frag_keyframe+delay_moov``, ``use_editlist=1``, ``movie_timescale=1000000``: the
  moov is written with the first fragment, so the edit list keeps the first frame's offset from
  the trial start to the microsecond (``empty_moov`` would lose it).
- A keyframe at least every second (GOP from the frame rate, plus an IDR forced by time), and
  ``frag_duration`` (default 0.5 s): a ``kill -9`` loses at most the fragment being built plus
  the encoder's few frames of latency.
- No B-frames: decode order = presentation order, and each output packet is the next frame.

The file is opened by Python (unbuffered) so the encoder thread can ``fsync`` it now and then,
for power cuts; the muxer flushes each finished fragment to it. Every write to it first calls
`Encoder._flush_rows` (a no-op unless frames were emitted since the last one): the timing rows of
all frames that can be in those bytes reach the OS before the bytes do, and the rows are fsynced
before the video is (see `rpi_logger.io.encoders.base`).
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
from av.video.frame import PictureType

from rpi_logger.io.encoders.base import (
    TIME_BASE_US,
    Encoder,
    EncoderError,
    FlushRows,
    GatedFile,
    OnWritten,
    keyframe_interval_us,
)
from rpi_logger.modules.cameras.frames import Frame

MP4_OPTIONS = {
    "movflags": "frag_keyframe+delay_moov",
    "use_editlist": "1",
    "movie_timescale": str(TIME_BASE_US),
}


def mp4_muxer_options(fragment_s: float) -> dict[str, str]:
    """Muxer options for a crash-safe fragmented MP4 with exact PTS."""
    opts = dict(MP4_OPTIONS)
    opts["frag_duration"] = str(max(1, int(fragment_s * 1e6)))
    return opts


@dataclass(slots=True)
class PyAVSettings:
    """Encoder settings (libx264 names). ``threads=0`` lets x264 choose.

    ``tune="zerolatency"`` (default) turns off x264's lookahead and frame threading: a frame's
    packet comes out as it goes in, so a crash loses no frames stuck inside the encoder and the
    encode latency figure is the real cost of one frame. ``superfast`` keeps two 720p30 streams
    within reach of a Raspberry Pi 5's four cores; use ``veryfast`` or slower for smaller files.
    """

    codec: str = "libx264"
    crf: int = 23
    preset: str = "superfast"
    tune: str | None = "zerolatency"
    threads: int = 0
    keyframe_interval_s: float = 1.0
    fragment_s: float = 0.5
    fsync_interval_s: float | None = 1.0  # None: never fsync (kill -9 safety only)
    codec_options: dict[str, str] = field(default_factory=dict)  # extra options, win over ours


class PyAVEncoder(Encoder):
    """The default encoder: see the module docstring."""

    name = "pyav"

    def __init__(
        self,
        settings: PyAVSettings | None = None,
        *,
        queue_size: int | None = None,
        on_written: OnWritten | None = None,
        flush_rows: FlushRows | None = None,
    ) -> None:
        super().__init__(queue_size=queue_size, on_written=on_written, flush_rows=flush_rows)
        self.settings = settings or PyAVSettings()
        if self.settings.keyframe_interval_s <= 0 or self.settings.fragment_s <= 0:
            raise ValueError("keyframe_interval_s and fragment_s must be positive")
        self._file: Any = None
        self._container: Any = None
        self._stream: Any = None
        self._pending: deque[tuple[int, Frame, int, int]] = deque()
        self._key_every_us = 1
        self._last_key_pts: int | None = None
        self._last_sync_ns = 0

    # -- thread side -------------------------------------------------------------------------
    def _thread_open(self) -> None:
        s = self.settings
        assert self.path is not None
        # Unbuffered: every muxer write reaches the kernel, so a kill -9 keeps it; and each is
        # preceded by the flush of the timing rows of the frames it can hold.
        self._file = GatedFile(self.path, self._flush_rows)  # closed in _thread_finish
        self._container = av.open(
            self._file, mode="w", format="mp4", options=mp4_muxer_options(s.fragment_s)
        )
        gop = max(1, round(self.fps_hint * s.keyframe_interval_s))
        options = {"crf": str(s.crf), "preset": s.preset, "forced-idr": "1"}
        if s.tune:
            options["tune"] = s.tune
        options.update(s.codec_options)
        try:
            stream = self._container.add_stream(s.codec, options=options)
        except Exception as exc:
            raise EncoderError(f"codec {s.codec!r} is not available in PyAV: {exc}") from exc
        stream.width = self.width
        stream.height = self.height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, TIME_BASE_US)
        cc = stream.codec_context
        cc.time_base = Fraction(1, TIME_BASE_US)
        # The nominal rate only guides rate control; timestamps come from the frames.
        cc.framerate = Fraction(self.fps_hint).limit_denominator(1001)
        cc.gop_size = gop
        cc.max_b_frames = 0
        cc.thread_count = s.threads
        self._stream = stream
        self._key_every_us = keyframe_interval_us(self.fps_hint, s.keyframe_interval_s)

    def _thread_encode(self, frame: Frame, pts_us: int, qdelay_ns: int, t_take_ns: int) -> None:
        if frame.pixel_format == "yuv420p":
            vf = av.VideoFrame.from_ndarray(frame.image, format="yuv420p")
        else:
            vf = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
        vf.pts = pts_us
        vf.time_base = self._stream.codec_context.time_base
        if self._last_key_pts is None or pts_us - self._last_key_pts >= self._key_every_us:
            vf.pict_type = PictureType.I  # an IDR (forced-idr=1) at least every interval
            self._last_key_pts = pts_us
        self._pending.append((pts_us, frame, qdelay_ns, t_take_ns))
        self._mux(self._stream.encode(vf))
        self._maybe_fsync()

    def _mux(self, packets: list[Any]) -> None:
        for packet in packets:
            if packet.is_keyframe and packet.pts is not None:
                # x264 may place its own keyframes (GOP, scene cut); restart the clock there.
                self._last_key_pts = max(self._last_key_pts or 0, packet.pts)
            # No B-frames: packets come out in submission order, one per frame. The frame's
            # row is handed over before its packet can reach the file (rows ⊇ frames).
            if self._pending:
                pts_us, frame, qdelay_ns, t_take_ns = self._pending.popleft()
                self._emit(frame, pts_us, qdelay_ns, t_take_ns)
            self._container.mux(packet)

    def _maybe_fsync(self) -> None:
        interval = self.settings.fsync_interval_s
        if interval is None or self._file is None:
            return
        now = time.monotonic_ns()
        if now - self._last_sync_ns >= interval * 1e9:
            self._last_sync_ns = now
            self._flush_rows(durable=True)  # rows on stable storage before the frames are
            os.fsync(self._file.fileno())

    def _thread_finish(self) -> None:
        err: BaseException | None = None
        try:
            if self._stream is not None and self._error is None:
                self._mux(self._stream.encode(None))
        except Exception as exc:
            err = exc
        try:
            if self._container is not None:
                self._container.close()
        except Exception as exc:
            err = err or exc
        finally:
            self._container = None
            if self._file is not None:
                try:
                    if not self._file.closed:
                        self._flush_rows(durable=True)
                        os.fsync(self._file.fileno())
                except Exception as exc:  # rows not durable: leave the video unsynced too
                    err = err or exc
                finally:
                    self._file.close()
                    self._file = None
        if err is not None:
            raise err
