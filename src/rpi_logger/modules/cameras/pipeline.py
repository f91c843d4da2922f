"""One camera's path from device to disk: source -> trial filter -> encoder -> MP4 + timing CSV.

The loop only filters frames against the trial window and hands them to the encoder's bounded
queue (O(1)); encoding and muxing run on the encoder's thread (or in ffmpeg), timing rows go
through a `CsvStreamWriter` thread. Drops are counted by cause: device sequence gaps (frames the
device never delivered inside the trial) and queue overflow (the encoder did not keep up).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpi_logger.io.csv_writer import CsvStreamWriter
from rpi_logger.io.encoders import (
    TIMING_COLUMNS,
    Encoder,
    EncoderError,
    FFmpegSettings,
    PyAVSettings,
    make_encoder,
)
from rpi_logger.modules.base import FileRecord
from rpi_logger.modules.cameras.frames import CameraError, Frame, FrameSource
from rpi_logger.modules.trial import TrialWindow

log = logging.getLogger("rpi_logger.cameras")
OPEN_TIMEOUT_S = 10.0


def make_camera_encoder(settings: dict[str, Any], on_written: Any) -> Encoder:
    """The encoder the settings ask for, configured from them."""
    queue_size = settings.get("queue_size") or None
    if settings.get("encoder", "pyav") == "ffmpeg":
        ff = FFmpegSettings(
            encoder=settings.get("ffmpeg_codec", "libx264"),
            crf=settings.get("crf", 23),
            preset=settings.get("preset", "superfast"),
        )
        return make_encoder("ffmpeg", settings=ff, queue_size=queue_size, on_written=on_written)
    av = PyAVSettings(
        crf=settings.get("crf", 23),
        preset=settings.get("preset", "superfast"),
        threads=settings.get("threads", 0),
    )
    return make_encoder("pyav", settings=av, queue_size=queue_size, on_written=on_written)


@dataclass(slots=True)
class _Recording:
    window: TrialWindow
    encoder: Encoder
    timing: CsvStreamWriter
    record: FileRecord
    last_sequence: int | None = None
    gap_drops: int = 0
    submitted: int = 0


class CameraPipeline:
    """A camera's capture loop and, during a trial, its recording."""

    def __init__(self, source: FrameSource, settings: dict[str, Any]) -> None:
        self.source = source
        self.settings = settings
        self.id = source.info.id
        self.latest: Frame | None = None  # for the preview; replaced, never mutated
        self.error: str | None = None
        self.frames_seen = 0
        self._recording: _Recording | None = None
        self._opened = asyncio.Event()
        self._arrivals: deque[int] = deque(maxlen=61)

    # -- capture ---------------------------------------------------------------------------
    async def capture(self) -> None:
        """Run the source until cancelled. A camera failure is logged and reported in status,
        never raised: the module's other cameras keep recording."""
        try:
            async with self.source:
                self._opened.set()
                async for frame in self.source:
                    self._on_frame(frame)
        except CameraError as exc:
            self.error = str(exc)
            log.error("camera %s failed: %s", self.id, exc)
        finally:
            self._opened.clear()

    def _on_frame(self, frame: Frame) -> None:
        self.frames_seen += 1
        self.latest = frame
        self._arrivals.append(frame.t_mono_ns)
        rec = self._recording
        if rec is None or not rec.window.accepts(frame.t_mono_ns):
            return
        if rec.last_sequence is not None and frame.sequence > rec.last_sequence + 1:
            rec.gap_drops += frame.sequence - rec.last_sequence - 1
        rec.last_sequence = frame.sequence
        rec.submitted += 1
        rec.encoder.submit(frame)  # O(1); counts a queue-overflow drop when full

    @property
    def fps(self) -> float:
        """Frame rate measured over the last two seconds of arrivals."""
        if len(self._arrivals) < 2:
            return 0.0
        span = self._arrivals[-1] - self._arrivals[0]
        return round((len(self._arrivals) - 1) * 1e9 / span, 2) if span > 0 else 0.0

    # -- trials ----------------------------------------------------------------------------
    async def start_trial(
        self, window: TrialWindow, module_dir: Path, session_dir: Path
    ) -> FileRecord:
        """Open the trial's MP4 and timing CSV; frames from `window.start_ns` on go in."""
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                await self._opened.wait()
        except TimeoutError:
            raise CameraError(f"camera {self.id} did not open: {self.error or 'timeout'}") from None
        folder = module_dir / self.id
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        stem = f"{window.stem}_{self.id}"
        video, timing_path = folder / f"{stem}.mp4", folder / f"{stem}_timing.csv"
        # Rows come from the encoder thread; "block" makes that thread wait for room rather
        # than lose a timing row (the loop never calls this writer).
        timing = CsvStreamWriter(
            timing_path,
            TIMING_COLUMNS,
            flush_interval_s=1.0,
            max_queue=10_000,
            overflow="block",
            name=f"timing-{self.id}",
        )
        await asyncio.to_thread(timing.start)
        encoder = make_camera_encoder(
            self.settings, lambda written: timing.write_row(written.timing_values())
        )
        info = self.source.info
        try:
            await encoder.open(video, info.width, info.height, info.fps, window.start_ns)
        except EncoderError:
            await timing.aclose()
            raise
        record = FileRecord(
            self.id,
            "video",
            video,
            timing_path,
            extra={
                "encoder": encoder.name,
                "width": info.width,
                "height": info.height,
                "fps": info.fps,
                "backend": info.backend,
                "simulated": info.simulated,
            },
        )
        self._recording = _Recording(window, encoder, timing, record)
        return record

    async def stop_trial(self) -> FileRecord | None:
        """Close the trial's files (off the loop) and return their manifest entry."""
        rec, self._recording = self._recording, None
        if rec is None:
            return None
        started = time.monotonic()
        error = None
        try:
            stats = await rec.encoder.close()
        except EncoderError as exc:
            error = str(exc)
            stats = rec.encoder.stats
            log.error("camera %s: encoder failed: %s", self.id, exc)
        await rec.timing.aclose()
        rec.record.frames = stats.frames_written
        rec.record.dropped = stats.dropped + rec.gap_drops
        rec.record.extra["dropped_by_cause"] = {
            "device_sequence_gap": rec.gap_drops,
            "queue_overflow": stats.dropped_queue_overflow,
            "timestamp": stats.dropped_timestamp,
            "encoder_error": stats.dropped_error,
        }
        rec.record.extra["encode_ms_mean"] = round(stats.encode_ns_mean / 1e6, 3)
        if error:
            rec.record.extra["error"] = error
        log.info(
            "camera %s: trial %d closed: %d frames, %d dropped (%.2f s to finalize)",
            self.id,
            rec.window.trial,
            stats.frames_written,
            rec.record.dropped,
            time.monotonic() - started,
        )
        return rec.record

    def status(self) -> dict[str, Any]:
        info = self.source.info
        rec = self._recording
        out: dict[str, Any] = {
            "id": self.id,
            "name": info.name,
            "backend": info.backend,
            "simulated": info.simulated,
            "width": info.width,
            "height": info.height,
            "fps": self.fps,
            "error": self.error,
            "recording": rec is not None,
        }
        if rec is not None:
            stats = rec.encoder.stats
            out.update(
                frames=stats.frames_written,
                dropped=stats.dropped + rec.gap_drops,
                dropped_queue_overflow=stats.dropped_queue_overflow,
                dropped_device_gap=rec.gap_drops,
                queue_depth=stats.queue_depth,
            )
        return out
