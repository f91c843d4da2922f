"""One camera's path from device to disk: source -> trial stream -> video sink (MP4 + timing CSV).

The capture loop takes each frame from the source's hand-off and, during a trial, offers it to
the trial's `TrialStream` (O(1)): the stream keeps the frames inside the trial window, counts
drops by cause and queues the frame for the video sink's writer thread, which encodes it and
writes its timing row (`rpi_logger.io.sinks.video`). What the stream and the sink guarantee
(timing rows cover the video, one timeline per trial from `window.origin_ns`, nothing after the
stop, failures as interrupted records) is documented there; this file only wires a camera to
them and keeps the live figures (latest frame for the preview, measured frame rate).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from operator import attrgetter
from pathlib import Path
from typing import Any

from rpi_logger.framework.base import FileRecord
from rpi_logger.framework.devices import DevicePipeline
from rpi_logger.framework.lsl_outlets import Outlets
from rpi_logger.framework.source import Lost
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.framework.trial_stream import TrialStream
from rpi_logger.io.sinks.base import SinkError
from rpi_logger.io.sinks.video import VideoSettings, VideoSink, sink_class
from rpi_logger.modules.cameras.frames import CameraError, Frame, FrameSource
from rpi_logger.modules.cameras.lsl_streams import frame_marker_spec

log = logging.getLogger("rpi_logger.cameras")

#: The encoder thread's nice value (see `rpi_logger.io.bridge.Worker`).
ENCODER_NICE = 10


def video_settings(settings: dict[str, Any]) -> VideoSettings:
    """The module's settings as `VideoSettings` (keys it lacks keep their defaults)."""
    kw = {k: settings[k] for k in ("encoder", "crf", "preset", "threads") if k in settings}
    if kw.get("encoder") == "ffmpeg" and settings.get("ffmpeg_codec"):
        kw["codec"] = settings["ffmpeg_codec"]
    return VideoSettings(**kw)


def queue_frames(settings: dict[str, Any], fps: float) -> int:
    """Frames the writer's queue holds: the setting, or about one second of frames (rides out
    a stall without holding much memory)."""
    return settings.get("queue_size") or min(120, max(8, math.ceil(fps or 30)))


class CameraPipeline(DevicePipeline[Frame]):
    """A camera's capture loop and, during a trial, its trial stream."""

    kind = "camera"

    def __init__(self, source: FrameSource, settings: dict[str, Any]) -> None:
        super().__init__(source)
        self.settings = settings
        self.latest: Frame | None = None  # for the preview; replaced, never mutated
        self.frames_seen = 0
        self._stream: TrialStream[Frame] | None = None
        self._arrivals: deque[int] = deque(maxlen=61)
        source.on_overflow = self._on_capture_overflow
        self.lsl = Outlets("Cameras", False)  # frame markers (lsl = true)
        self._frame_index = 0  # the next frame's index in the trial's video

    # -- capture ---------------------------------------------------------------------------
    async def capture(self) -> None:
        self.lsl = Outlets("Cameras", self.settings.get("lsl", False))
        await self.lsl.open([frame_marker_spec(self.id, self.source.info.fps)])
        try:
            await super().capture()
        finally:
            await self.lsl.aclose()

    def _on_sample(self, frame: Frame) -> None:
        self.frames_seen += 1
        self.latest = frame
        self._arrivals.append(frame.t_mono_ns)
        index = -1
        if self._stream is not None and self._stream.offer(frame):
            index, self._frame_index = self._frame_index, self._frame_index + 1
        if self.lsl.enabled:
            self.lsl.push("frames", frame.t_mono_ns, (index, frame.sequence))

    def _on_capture_overflow(self, lost: Lost) -> None:
        """The source lost a frame in its hand-off to the loop (loop thread)."""
        if self._stream is not None:
            self._stream.lost(lost.t_mono_ns, lost.sequence)

    @property
    def fps(self) -> float:
        """Frame rate measured over the last two seconds of arrivals."""
        if len(self._arrivals) < 2:
            return 0.0
        span = self._arrivals[-1] - self._arrivals[0]
        return round((len(self._arrivals) - 1) * 1e9 / span, 2) if span > 0 else 0.0

    # -- trials ----------------------------------------------------------------------------
    async def start_trial(
        self,
        window: TrialWindow,
        module_dir: Path,
        announce: Callable[[FileRecord], Awaitable[None]] | None = None,
    ) -> FileRecord:
        """Open the trial's MP4 and timing CSV (announced); frames from `window.start_ns` on
        go in, timed from `window.origin_ns`."""
        await self.wait_open()
        stem = f"{window.stem}_{self.id}"
        folder = module_dir / self.id
        info = self.source.info
        settings = video_settings(self.settings)
        sink = sink_class(settings.encoder)(
            folder / f"{stem}.mp4",
            folder / f"{stem}_timing.csv",
            width=info.width,
            height=info.height,
            fps=info.fps,
            origin_ns=window.origin_ns,
            settings=settings,
        )
        extra = {
            "encoder": sink.kind,
            "width": info.width,
            "height": info.height,
            "fps": info.fps,
            "backend": info.backend,
            "simulated": info.simulated,
        }
        stream = TrialStream(
            window,
            sink,
            FileRecord(self.id, "video", sink.path, sink.timing_path, extra=extra),
            name=f"video {self.id}",
            max_items=queue_frames(self.settings, info.fps),
            sequence_of=attrgetter("sequence"),
            # Encoding is bulk work: it takes the CPU the loops and latency-bound threads
            # (capture, notes) leave; its queue rides out the wait.
            nice=ENCODER_NICE,
            wake_items=1,  # each frame is encoded as it comes, not in batches
        )
        try:
            record = await stream.open(announce)
        except SinkError as exc:
            raise CameraError(f"camera {self.id}: {exc}") from None
        self._stream = stream
        self._frame_index = 0
        return record

    async def stop_trial(self) -> FileRecord | None:
        """Close the trial's files (off the loop) and return their manifest entry. Never
        raises for a failed file: the record says ``"status": "interrupted"`` and why."""
        stream, self._stream = self._stream, None
        if stream is None:
            return None
        started = time.monotonic()
        record = await stream.close()
        sink = stream.sink
        assert isinstance(sink, VideoSink)
        mean_ns = sink.encode_ns_total / sink.frames if sink.frames else 0.0
        record.extra["encode_ms_mean"] = round(mean_ns / 1e6, 3)
        log.info(
            "camera %s: trial %d closed: %d frames, %d dropped (%.2f s to finalize)%s",
            self.id,
            stream.window.trial,
            record.frames,
            record.dropped,
            time.monotonic() - started,
            " [interrupted]" if "error" in record.extra else "",
        )
        return record

    def status(self) -> dict[str, Any]:
        info = self.source.info
        stream = self._stream
        out: dict[str, Any] = {
            "id": self.id,
            "name": info.name,
            "backend": info.backend,
            "simulated": info.simulated,
            "width": info.width,
            "height": info.height,
            "fps": self.fps,
            "error": self.error,
            "recording": stream is not None,
            "dropped_capture_overflow_total": self.source.stats.dropped_queue_overflow,
        }
        if stream is not None:
            out.update(stream.status())
        return out
