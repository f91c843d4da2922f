"""What every audio backend shares: the device's description and the PortAudio-style callback.

A backend is a `ThreadedSource` (rpi_logger.framework.source) whose device calls `_callback`
exactly as PortAudio calls a sounddevice stream's callback: ``(indata, frames, time, status)``,
``time.inputBufferAdcTime`` the ADC time of the first sample, ``status.input_overflow`` /
``input_underflow`` the flags. The callback does no more than the device's deadline allows:
it copies the block (PortAudio reuses its buffer), stamps it from the ADC time (`BlockClock`:
a few float operations) and hands it to the loop with `_emit` (a non-blocking put; a full
hand-off drops the block there, counted, and tells the loop how many samples it held). The
simulated device calls the same method from its own thread, so both run one path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from rpi_logger.framework.source import Lost, SourceError, ThreadedSource
from rpi_logger.io.clock import mono_to_wall
from rpi_logger.modules.audio.clock import REMEASURE_S, BlockClock
from rpi_logger.samples import AudioBlock


class AudioError(SourceError):
    """An audio device could not be opened or stopped delivering; the message says why."""


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """One input stream: what was asked for before it opens, what it delivers after."""

    id: str  # the folder name in the session (Audio/<id>/)
    name: str
    backend: str
    simulated: bool
    sample_rate: int
    channels: int
    dtype: str  # numpy dtype of the blocks: int16, int32 or float32
    blocksize: int
    hostapi: str = ""
    device: int | str | None = None  # the backend's handle (PortAudio index)


class AudioSource(ThreadedSource[AudioBlock, AudioInfo]):
    """An audio input on its own thread; see the module docstring. Subclasses open the device
    in `_device_open`, have it call `_callback`, and give `_stream_time` (the clock the ADC
    times are on)."""

    error_class = AudioError

    def __init__(self, info: AudioInfo, queue_size: int = 64) -> None:
        super().__init__(info.id, info, queue_size)
        self.clock = BlockClock(info.sample_rate)
        self.blocks = 0  # callbacks so far (device thread)
        self.samples_delivered = 0  # samples per channel delivered so far (device thread)
        self.input_overflows = 0

    def _stream_time(self) -> float:
        """The stream's clock in seconds (PortAudio's ``stream.time``)."""
        raise NotImplementedError

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> bool:
        """PortAudio's input callback: copy, stamp, hand off. Never blocks. False once the
        source is closed (PortAudio ignores the value; the simulated device stops on it)."""
        now = time.monotonic_ns()
        data = np.array(indata, copy=True)  # PortAudio reuses `indata` after we return
        t_mono, t_adc, lost = self.clock.time_block(
            time_info.inputBufferAdcTime, frames, self.samples_delivered, now
        )
        overflow = bool(status.input_overflow)
        if overflow or lost:
            self.input_overflows += 1
        block = AudioBlock(
            data,
            t_mono,
            mono_to_wall(t_mono),
            t_adc,
            self.info.sample_rate,
            self.blocks,
            self.samples_delivered,
            lost,
            overflow,
            bool(status.input_underflow),
        )
        self.blocks += 1
        self.samples_delivered += frames
        return self._emit(block)

    def _lost_of(self, sample: AudioBlock) -> Lost:
        return Lost(sample.t_mono_ns, sample.sequence, sample.frames)

    def _device_loop(self) -> None:
        """The callback delivers; this thread re-measures the clock offset until stopped."""
        while not self._stop.wait(REMEASURE_S):
            self._check_alive()
            self.clock.measure(self._stream_time)

    def _check_alive(self) -> None:
        """Raise `AudioError` when the device stopped on its own (backends override)."""
