"""H.264 through PyAV into fragmented MP4: a codec (frames -> packets) and an output (packets ->
file), composed into `Mp4Sink`, as picamera2 splits its encoders from its outputs.

What makes the file right (checked against PyAV 18 / FFmpeg 7):

- Codec and stream time base 1/1_000_000: with a coarser one PTS are rounded to nominal slots.
- No B-frames: decode order = presentation order, and each packet is the next frame's.
- A keyframe at least every ``keyframe_interval_s`` (an IDR forced by time; the encoder's own
  GOP, four intervals long, is only a backstop) and ``frag_duration`` (``fragment_s``): a
  ``kill -9`` loses at most the fragment being built plus the encoder's few frames of latency.
- ``movflags=frag_keyframe+delay_moov``, ``use_editlist=1``, ``movie_timescale=1000000``: the moov
  is written with the first fragment, so the edit list keeps the first frame's offset from the
  trial's origin to the microsecond (``empty_moov`` would lose it).
- The stream is a mux-only stream (no second encoder): its parameter sets come from the first
  packet.

The file is opened by Python, unbuffered, so the sink can fsync it; every write into it first
flushes the timing rows (`GatedFile`).
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.frame import PictureType

from rpi_logger.io.sinks.base import SinkError
from rpi_logger.io.sinks.video.base import (
    TIME_BASE_US,
    GatedFile,
    VideoSettings,
    VideoSink,
    av_frame,
    keyframe_interval_us,
)
from rpi_logger.samples import Frame

MP4_OPTIONS = {
    "movflags": "frag_keyframe+delay_moov",
    "use_editlist": "1",
    "movie_timescale": str(TIME_BASE_US),
}


def mp4_muxer_options(fragment_s: float) -> dict[str, str]:
    """Muxer options for a crash-safe fragmented MP4 with exact PTS."""
    return {**MP4_OPTIONS, "frag_duration": str(max(1, int(fragment_s * 1e6)))}


#: The encoder's own GOP, in keyframe intervals (a backstop: forced IDRs come first).
GOP_BACKSTOP = 4


class H264Codec:
    """Frames in, H.264 packets out (libx264 by default), one packet per frame, in order."""

    def __init__(self, settings: VideoSettings, width: int, height: int, fps: float) -> None:
        self.settings = settings
        self.width, self.height, self.fps = width, height, fps
        self._cc: Any = None
        self._key_every_us = keyframe_interval_us(fps, settings.keyframe_interval_s)
        self._last_key_pts: int | None = None

    def open(self) -> None:
        """Open the encoder; `SinkError` names a codec this PyAV lacks."""
        s = self.settings
        try:
            cc = av.CodecContext.create(s.codec, "w")
        except Exception as exc:
            raise SinkError(f"codec {s.codec!r} is not available in PyAV: {exc}") from exc
        cc.width, cc.height, cc.pix_fmt = self.width, self.height, "yuv420p"
        cc.time_base = Fraction(1, TIME_BASE_US)
        # The nominal rate only guides rate control; timestamps come from the frames.
        cc.framerate = Fraction(self.fps).limit_denominator(1001)
        # Keyframes come from the IDRs forced by time (`encode`). A GOP of the same length on top
        # makes x264 place its own IDR a frame before ours whenever frame times wander, and
        # demote ours to a plain I frame (a warning every second); the GOP is a backstop only,
        # and min-keyint=1 lets a forced IDR follow any other keyframe.
        cc.gop_size = max(1, round(self.fps * s.keyframe_interval_s * GOP_BACKSTOP))
        cc.max_b_frames = 0
        cc.thread_count = s.threads
        options = {"crf": str(s.crf), "preset": s.preset, "forced-idr": "1"}
        if s.codec == "libx264":
            options["x264-params"] = "min-keyint=1"
        if s.tune:
            options["tune"] = s.tune
        cc.options = {**options, **s.codec_options}
        cc.open()
        self._cc = cc

    def encode(self, frame: Frame, pts_us: int) -> list[Any]:
        """The packets that are ready after `frame` (presented at `pts_us`) went in."""
        vf = av_frame(frame, pts_us, self._cc.time_base)
        if self._last_key_pts is None or pts_us - self._last_key_pts >= self._key_every_us:
            vf.pict_type = PictureType.I  # an IDR (forced-idr=1) at least every interval
            self._last_key_pts = pts_us
        return self._packets(self._cc.encode(vf))

    def flush(self) -> list[Any]:
        """The packets still inside the encoder."""
        return self._packets(self._cc.encode(None)) if self._cc is not None else []

    def _packets(self, packets: list[Any]) -> list[Any]:
        for p in packets:
            if p.is_keyframe and p.pts is not None:
                # x264 may place its own keyframes (GOP, scene cut); restart the clock there.
                self._last_key_pts = max(self._last_key_pts or 0, p.pts)
        return packets


class Mp4Output:
    """H.264 packets into a fragmented MP4 file; ``before_write`` runs before every write."""

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fragment_s: float,
        before_write: Callable[[], None],
    ) -> None:
        self.path = path
        self.width, self.height, self.fragment_s = width, height, fragment_s
        self._before_write = before_write
        self._file: GatedFile | None = None
        self._container: Any = None
        self._stream: Any = None

    def open(self) -> None:
        self._file = GatedFile(self.path, self._before_write)  # closed in release()
        self._container = av.open(
            self._file, mode="w", format="mp4", options=mp4_muxer_options(self.fragment_s)
        )
        self._stream = self._container.add_mux_stream(
            "h264", width=self.width, height=self.height, time_base=Fraction(1, TIME_BASE_US)
        )

    def write(self, packet: Any) -> None:
        packet.stream = self._stream
        self._container.mux(packet)

    def finish(self) -> None:
        """Write the last fragment."""
        container, self._container = self._container, None
        if container is not None:
            container.close()

    def sync(self) -> None:
        if self._file is not None and not self._file.closed:
            os.fsync(self._file.fileno())

    def release(self) -> None:
        """Close whatever is open (idempotent; errors of a failed file are not raised again)."""
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):  # the failure that got us here was reported
                container.close()
        if self._file is not None:
            self._file.close()
            self._file = None


class Mp4Sink(VideoSink):
    """The default video sink: `H264Codec` into `Mp4Output`, in-process."""

    kind = "pyav"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self.codec = H264Codec(s, self.width, self.height, self.fps)
        self.output = Mp4Output(
            self.path, self.width, self.height, s.fragment_s, self._before_video_bytes
        )
        # Frames in the encoder whose packets have not come out yet (zerolatency: none).
        self._pending: deque[tuple[Frame, int, int]] = deque()

    def _open_video(self) -> None:
        self.codec.open()
        self.output.open()

    def _encode(self, frame: Frame, pts_us: int, t_take_ns: int) -> None:
        self._pending.append((frame, pts_us, t_take_ns))
        self._mux(self.codec.encode(frame, pts_us))

    def _mux(self, packets: list[Any]) -> None:
        for packet in packets:
            if self._pending:  # no B-frames: packets come out in frame order, one per frame
                self._row(*self._pending.popleft())
            self.output.write(packet)

    def _finish_video(self) -> None:
        self._mux(self.codec.flush())
        self.output.finish()

    def _sync_video(self) -> None:
        self.output.sync()

    def _release_video(self) -> None:
        self.output.release()
