"""One audio input's path from device to disk: source -> trial stream -> WAV sink (+ timing CSV).

The capture loop takes each block from the source's hand-off, feeds the level meter and, during a
trial, offers it to the trial's `TrialStream`, which cuts it to the window at the exact sample
(`blocks.clip_block`), queues it for the `WavSink`'s writer thread and counts drops by cause.

Counting, in the manifest entry of each WAV (kind "audio"): ``frames`` is the number of blocks
written (= timing rows, as a video's frames are its rows), ``dropped`` the blocks lost, by cause
in ``dropped_by_cause``; in samples per channel: ``samples`` (written: the WAV's length),
``samples_dropped`` by cause, and the device's own losses: ``input_overflows`` (blocks flagged
or preceded by a hole in the ADC times) with ``samples_lost_input_overflow`` (the hole's size,
also listed as a gap). ``clock`` says how the blocks were timed (``adc`` or ``sample_counter``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rpi_logger.framework.base import FileRecord
from rpi_logger.framework.devices import DevicePipeline
from rpi_logger.framework.source import Lost
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.framework.trial_stream import DROP_CAUSES, TrialStream
from rpi_logger.io.sinks.base import SinkError
from rpi_logger.io.sinks.wav_sink import SUBTYPES, WavSink
from rpi_logger.modules.audio.backends.base import AudioError, AudioSource
from rpi_logger.modules.audio.blocks import clip_block
from rpi_logger.modules.audio.levels import LevelMeter
from rpi_logger.samples import AudioBlock

log = logging.getLogger("rpi_logger.audio")
NS = 1_000_000_000

CLOCK_NOTES = {
    "adc": "PortAudio ADC time of each block's first sample, mapped to CLOCK_MONOTONIC",
    "sample_counter": "no ADC time from the host API: sample counter anchored at the first "
    "callback (device overflows shift later times)",
}


def subtype_of(dtype: str) -> str:
    """The WAV subtype a capture dtype is written as."""
    return {v: k for k, v in SUBTYPES.items()}[dtype]


class AudioPipeline(DevicePipeline[AudioBlock]):
    """An input's capture loop, level meter and, during a trial, its trial stream."""

    kind = "audio input"

    def __init__(self, source: AudioSource, settings: dict[str, Any]) -> None:
        super().__init__(source)
        self.source: AudioSource = source
        self.settings = settings
        self.meter = LevelMeter(source.info.channels, source.info.dtype)
        self.levels: dict[str, Any] | None = None  # the meter's last reading
        self.blocks_seen = 0
        self.input_overflows_total = 0
        self._stream: TrialStream[AudioBlock] | None = None
        self.on_block: Callable[[AudioBlock], None] | None = None  # every block (LSL outlet)
        self._trial: dict[str, Any] = {}
        self._causes: dict[str, int] = {}
        source.on_overflow = self._on_capture_overflow

    # -- capture ---------------------------------------------------------------------------
    def _on_sample(self, block: AudioBlock) -> None:
        self.blocks_seen += 1
        if self.on_block is not None:
            self.on_block(block)
        self.meter.add(block.data)
        if block.input_overflow or block.lost_before:
            self.input_overflows_total += 1
        stream = self._stream
        if stream is None:
            return
        window = stream.window
        part = clip_block(block, window.start_ns, window.stop_ns)
        if part is None:
            return
        if part.input_overflow or part.lost_before:
            self._trial["input_overflows"] += 1
            self._trial["samples_lost_input_overflow"] += part.lost_before
            if part.lost_before:
                hole = part.lost_before * NS // part.sample_rate
                t = part.t_mono_ns
                stream.gap(t - hole, t, part.lost_before, "input overflow")
        if not stream.offer(part):
            self._count_refused(stream, part.frames)

    def _count_refused(self, stream: TrialStream[AudioBlock], frames: int) -> None:
        """A block the stream refused: its samples go to the cause whose count just grew."""
        causes = stream.dropped_by_cause()
        for cause, n in causes.items():
            if n > self._causes.get(cause, 0):
                self._trial["samples_dropped"][cause] += frames
                break
        self._causes = causes

    def _on_capture_overflow(self, lost: Lost) -> None:
        """The source lost a block in its hand-off to the loop (loop thread)."""
        stream = self._stream
        if stream is not None and stream.window.accepts(lost.t_mono_ns):
            stream.lost(lost.t_mono_ns)
            self._trial["samples_dropped"]["capture_overflow"] += lost.size
            self._causes["capture_overflow"] = self._causes.get("capture_overflow", 0) + 1

    def take_levels(self) -> dict[str, Any] | None:
        """The level meter's reading since the last call (kept for `status`)."""
        levels = self.meter.take()
        if levels is not None:
            self.levels = levels
        return levels

    # -- trials ----------------------------------------------------------------------------
    async def start_trial(
        self,
        window: TrialWindow,
        module_dir: Path,
        announce: Callable[[FileRecord], Awaitable[None]] | None = None,
    ) -> FileRecord:
        """Open the trial's WAV and timing CSV (announced); samples from `window.start_ns` on
        go in."""
        await self.wait_open()
        info = self.source.info
        stem = f"{window.stem}_{self.id}"
        folder = module_dir / self.id
        sink = WavSink(
            folder / f"{stem}.wav",
            folder / f"{stem}_timing.csv",
            sample_rate=info.sample_rate,
            channels=info.channels,
            subtype=subtype_of(info.dtype),
        )
        extra = {
            "backend": info.backend,
            "simulated": info.simulated,
            "device_name": info.name,
            "hostapi": info.hostapi,
            "sample_rate": info.sample_rate,
            "channels": info.channels,
            "format": sink.subtype,
            "blocksize": info.blocksize,
        }
        rate = info.sample_rate / max(1, info.blocksize)
        queue = self.settings.get("queue_blocks") or max(16, round(2 * rate))
        stream = TrialStream(
            window,
            sink,
            FileRecord(self.id, "audio", sink.path, sink.timing_path, extra=extra),
            name=f"audio {self.id}",
            max_items=queue,
            clip=clip_block,
            flush_interval_s=self.settings.get("flush_interval_s", 0.5),
        )
        try:
            record = await stream.open(announce)
        except SinkError as exc:
            raise AudioError(f"audio input {self.id}: {exc}") from None
        self._trial = {
            "input_overflows": 0,
            "samples_lost_input_overflow": 0,
            "samples_dropped": dict.fromkeys(DROP_CAUSES, 0),
        }
        self._causes = stream.dropped_by_cause()
        self._stream = stream
        return record

    async def stop_trial(self) -> FileRecord | None:
        """Close the trial's files (off the loop) and return their manifest entry. Never
        raises for a failed file: the record says ``"status": "interrupted"`` and why."""
        stream, self._stream = self._stream, None
        if stream is None:
            return None
        record = await stream.close()
        sink = stream.sink
        assert isinstance(sink, WavSink)
        clock = self.source.clock
        kind = clock.kind or "adc"
        record.extra.update(
            samples=sink.samples,
            samples_dropped=self._trial["samples_dropped"],
            input_overflows=self._trial["input_overflows"],
            samples_lost_input_overflow=self._trial["samples_lost_input_overflow"],
            clock=kind,
            clock_note=CLOCK_NOTES[kind],
            clock_offset_uncertainty_us=round(clock.uncertainty_ns / 1000, 3),
        )
        log.info(
            "audio %s: trial %d closed: %d samples in %d blocks, %d blocks dropped%s",
            self.id,
            stream.window.trial,
            sink.samples,
            record.frames,
            record.dropped,
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
            "hostapi": info.hostapi,
            "sample_rate": info.sample_rate,
            "channels": info.channels,
            "format": subtype_of(info.dtype),
            "clock": self.source.clock.kind,
            "levels": self.levels,
            "error": self.error,
            "recording": stream is not None,
            "input_overflows_total": self.input_overflows_total,
            "dropped_capture_overflow_total": self.source.stats.dropped_queue_overflow,
        }
        if stream is not None:
            out.update(stream.status())
            out["samples_dropped"] = dict(self._trial["samples_dropped"])
            out["input_overflows"] = self._trial["input_overflows"]
            out["samples_lost_input_overflow"] = self._trial["samples_lost_input_overflow"]
        return out
