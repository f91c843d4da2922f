"""One camera's path from device to disk: source -> trial filter -> encoder -> MP4 + timing CSV.

The loop only filters frames against the trial window and hands them to the encoder's bounded
queue (O(1)); encoding and muxing run on the encoder's thread (or in ffmpeg), timing rows go
through a `CsvStreamWriter` thread. Drops are counted by cause: device sequence gaps (frames the
device never delivered inside the trial), capture overflow (the source's hand-off to the loop was
full), queue overflow (the encoder did not keep up), timestamps and encoder errors.

Guarantees:

- **Timing rows cover the video.** The encoder hands each frame's row to the timing writer before
  the frame's bytes go to the muxer or ffmpeg's pipe, and waits for those rows to be flushed to
  the OS before any byte reaches the video (fsynced before the video is fsynced). At any instant,
  even after ``kill -9``, row *i* of the timing CSV on disk describes frame *i* of the MP4 on
  disk, and rows >= frames.
- **One timeline per trial.** PTS are measured from the trial's origin (``window.origin_ns``, the
  true trial start, earlier than ``window.start_ns`` for a module that rejoined after a restart),
  so a part-2 video lines up with part 1 and with every other module.
- **Nothing after the stop.** No frame captured at or after ``window.stop_ns`` is written, even if
  the stop instant becomes known after such frames were queued (the encoder discards them).
- **Failures end in the manifest, not in a crash.** An encoder or timing-file failure (a full
  disk, ffmpeg dying) is logged once; the file's record gets ``"status": "interrupted"`` and
  ``"error": "<reason>"``, and the module keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpi_logger.framework.base import FileRecord
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.io.csv_writer import CsvStreamWriter, CsvWriterError, describe_write_error
from rpi_logger.io.encoders import (
    TIMING_COLUMNS,
    Encoder,
    EncoderError,
    FFmpegSettings,
    FlushRows,
    PyAVSettings,
    make_encoder,
)
from rpi_logger.modules.cameras.frames import CameraError, Frame, FrameSource

log = logging.getLogger("rpi_logger.cameras")
OPEN_TIMEOUT_S = 10.0
# How long the encoder thread waits for the timing rows to be flushed before a video write; past
# it the video stops (interrupted) rather than get ahead of its timing file.
ROWS_FLUSH_TIMEOUT_S = 10.0
TIMING_CLOSE_TIMEOUT_S = 10.0


def make_camera_encoder(
    settings: dict[str, Any], on_written: Any, flush_rows: FlushRows | None = None
) -> Encoder:
    """The encoder the settings ask for, configured from them."""
    queue_size = settings.get("queue_size") or None
    if settings.get("encoder", "pyav") == "ffmpeg":
        ff = FFmpegSettings(
            encoder=settings.get("ffmpeg_codec", "libx264"),
            crf=settings.get("crf", 23),
            preset=settings.get("preset", "superfast"),
        )
        return make_encoder(
            "ffmpeg", settings=ff, queue_size=queue_size, on_written=on_written,
            flush_rows=flush_rows,
        )
    av = PyAVSettings(
        crf=settings.get("crf", 23),
        preset=settings.get("preset", "superfast"),
        threads=settings.get("threads", 0),
    )
    return make_encoder(
        "pyav", settings=av, queue_size=queue_size, on_written=on_written, flush_rows=flush_rows
    )


def trial_origin_ns(window: TrialWindow) -> int:
    """The trial's true start (PTS zero): `window.origin_ns` where the runtime provides it (a
    module that rejoined a trial after a restart), else `window.start_ns`."""
    origin = getattr(window, "origin_ns", None)
    return window.start_ns if origin is None else int(origin)


@dataclass(slots=True)
class _Recording:
    window: TrialWindow
    encoder: Encoder
    timing: CsvStreamWriter
    record: FileRecord
    last_sequence: int | None = None
    gap_drops: int = 0
    submitted: int = 0
    capture_overflow: int = 0  # trial frames the source's hand-off to the loop dropped
    overflowed: deque[int] = field(default_factory=deque)  # their sequence numbers, not yet past
    stop_sent: int | None = None  # the stop instant last passed to the encoder


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
        source.on_overflow = self._on_capture_overflow

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
        if rec is None:
            return
        stop = rec.window.stop_ns
        if stop != rec.stop_sent:  # the stop became known (or moved): frames queued after it go
            rec.stop_sent = stop
            rec.encoder.set_stop(stop)
        if not rec.window.accepts(frame.t_mono_ns):
            return
        last = rec.last_sequence
        if last is not None and frame.sequence > last + 1:
            gap = frame.sequence - last - 1
            overflowed = rec.overflowed
            while overflowed and overflowed[0] < frame.sequence:  # holes the source made
                if overflowed.popleft() > last:
                    gap -= 1
            rec.gap_drops += max(0, gap)
        rec.last_sequence = frame.sequence
        rec.submitted += 1
        rec.encoder.submit(frame)  # O(1); counts a queue-overflow drop when full

    def _on_capture_overflow(self, frame: Frame) -> None:
        """The source dropped `frame` in its hand-off to the loop (loop thread)."""
        rec = self._recording
        if rec is not None and rec.window.accepts(frame.t_mono_ns):
            rec.capture_overflow += 1
            rec.overflowed.append(frame.sequence)

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
        try:
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(timing.start)
        except OSError as exc:
            raise CameraError(
                f"camera {self.id}: {describe_write_error(exc.filename or timing_path, exc)}"
            ) from None

        def flush_rows(durable: bool) -> None:  # encoder thread, before video bytes move
            timing.flush_blocking(ROWS_FLUSH_TIMEOUT_S, fsync=durable)

        encoder = make_camera_encoder(
            self.settings, lambda written: timing.write_row(written.timing_values()), flush_rows
        )
        info = self.source.info
        try:
            await encoder.open(
                video, info.width, info.height, info.fps, trial_origin_ns(window)
            )
        except EncoderError as exc:
            try:
                await timing.aclose()
            except CsvWriterError:
                pass  # the encoder's failure is the one to report
            raise CameraError(f"camera {self.id}: {exc}") from None
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
        """Close the trial's files (off the loop) and return their manifest entry.

        Never raises for a failed file: the record then carries ``"status": "interrupted"`` and
        ``"error"`` (the reason, already logged once).
        """
        rec, self._recording = self._recording, None
        if rec is None:
            return None
        started = time.monotonic()
        errors: list[str] = []
        rec.encoder.set_stop(rec.window.stop_ns)
        try:
            stats = await rec.encoder.close()
        except EncoderError as exc:
            errors.append(str(exc))
            stats = rec.encoder.stats
        try:
            async with asyncio.timeout(TIMING_CLOSE_TIMEOUT_S):
                await rec.timing.aclose()
        except CsvWriterError as exc:
            if not any(str(exc) in e for e in errors):  # not already the encoder's reason
                errors.append(str(exc))
        except TimeoutError:
            errors.append(f"timing file not closed after {TIMING_CLOSE_TIMEOUT_S:g} s: "
                          f"{rec.timing.path}")
            log.error("camera %s: %s", self.id, errors[-1])
        if rec.timing.rows_dropped and not errors:
            errors.append(f"{rec.timing.rows_dropped} timing rows not written")
        dropped = stats.dropped + rec.gap_drops + rec.capture_overflow
        rec.record.frames = stats.frames_written
        rec.record.dropped = dropped
        rec.record.extra["dropped_by_cause"] = {
            "device_sequence_gap": rec.gap_drops,
            "capture_overflow": rec.capture_overflow,
            "queue_overflow": stats.dropped_queue_overflow,
            "timestamp": stats.dropped_timestamp,
            "encoder_error": stats.dropped_error,
        }
        rec.record.extra["encode_ms_mean"] = round(stats.encode_ns_mean / 1e6, 3)
        if errors:
            rec.record.extra["status"] = "interrupted"
            rec.record.extra["error"] = "; ".join(errors)
        log.info(
            "camera %s: trial %d closed: %d frames, %d dropped (%.2f s to finalize)%s",
            self.id,
            rec.window.trial,
            stats.frames_written,
            dropped,
            time.monotonic() - started,
            " [interrupted]" if errors else "",
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
        out["dropped_capture_overflow_total"] = self.source.stats.dropped_queue_overflow
        if rec is not None:
            stats = rec.encoder.stats
            out.update(
                frames=stats.frames_written,
                dropped=stats.dropped + rec.gap_drops + rec.capture_overflow,
                dropped_queue_overflow=stats.dropped_queue_overflow,
                dropped_capture_overflow=rec.capture_overflow,
                dropped_device_gap=rec.gap_drops,
                queue_depth=stats.queue_depth,
                recording_error=rec.encoder.error_text,
            )
        return out
