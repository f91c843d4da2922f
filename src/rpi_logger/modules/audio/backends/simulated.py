"""The simulated microphone of design.md §7: 48 kHz, low noise, and a 1 kHz burst of 10 ms that
starts exactly at each whole second of the host clock.

Content is a function of the capture time alone: sample *k* of the host-clock grid is taken at
``k * 1e9 / rate`` ns, so whole second *s* is sample ``s * rate`` exactly and a checker finds
each burst's onset in the WAV and compares the time the timing CSV gives it with the whole
second (`burst_onsets`). The burst is a cosine (a sine a quarter period ahead), so its first
sample is at full amplitude: the onset is found to the sample.

The device runs in real time on its own thread, like a sound card: block *j* is complete once
its last sample has been taken; the thread sleeps until then and delivers it through the same
PortAudio-style callback as the real backend (`AudioSource._callback`), with the block's ADC
time on its stream clock (CLOCK_MONOTONIC in seconds, as PortAudio's on ALSA). A thread that
wakes late delivers the blocks it missed, in order, as long as they fit in the device's buffer
(`buffer_s`); older ones are gone and the next block carries the input-overflow flag, as ALSA
reports an overrun.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from rpi_logger.modules.audio.backends.base import AudioInfo, AudioSource

NS = 1_000_000_000
SAMPLE_RATE = 48_000
BURST_HZ = 1000.0
BURST_NS = 10_000_000
BURST_AMPLITUDE = 0.5
NOISE_AMPLITUDE = 0.001  # about -63 dBFS RMS: "low noise"
#: Onset detection threshold (linear): far above the noise, below the burst's first sample.
ONSET_THRESHOLD = 0.25

_NOISE = np.random.default_rng(20261129).uniform(-1.0, 1.0, SAMPLE_RATE) * NOISE_AMPLITUDE
_FULL_SCALE = {"int16": 32767.0, "int32": 2147483647.0, "float32": 1.0}


def signal(k0: int, n: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Samples ``k0 .. k0 + n - 1`` of the host-clock grid (float64, full scale 1.0)."""
    k = np.arange(k0, k0 + n, dtype=np.int64)
    phase = k % rate  # samples since the last whole second
    burst_len = rate * BURST_NS // NS
    burst = np.where(
        phase < burst_len, BURST_AMPLITUDE * np.cos(2 * np.pi * BURST_HZ * phase / rate), 0.0
    )
    return burst + _NOISE[k % len(_NOISE)]


def as_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    """Full-scale-1.0 floats as the device's sample type."""
    if dtype == "float32":
        return x.astype(np.float32)
    return np.rint(x * _FULL_SCALE[dtype]).astype(dtype)


def burst_onsets(samples: np.ndarray, rate: int = SAMPLE_RATE) -> list[int]:
    """Indexes of the first sample of each burst in a recording (floats, full scale 1.0; one
    channel). A burst cut by the start of the recording is not an onset."""
    above = np.flatnonzero(np.abs(samples) > ONSET_THRESHOLD)
    if not len(above):
        return []
    gap = rate // 10  # bursts are a second apart; 100 ms of quiet starts a new one
    starts = above[np.diff(above, prepend=-gap - 1) > gap]
    # The recording's first sample inside a burst is a cut burst, not its onset.
    return [int(i) for i in starts if i > 0 and abs(samples[i - 1]) <= ONSET_THRESHOLD]


class _Time(NamedTuple):
    """What PortAudio passes as ``time`` (the fields sounddevice's callback gets)."""

    inputBufferAdcTime: float  # PortAudio's names
    currentTime: float
    outputBufferDacTime: float = 0.0


class _Flags(NamedTuple):
    """What PortAudio passes as ``status`` (sounddevice.CallbackFlags' fields we read)."""

    input_overflow: bool = False
    input_underflow: bool = False


def _stream_clock() -> float:
    return time.monotonic()


class SimulatedAudioSource(AudioSource):
    """The simulated microphone (see the module docstring)."""

    backend = "simulated"

    def __init__(
        self,
        device_id: str = "simulated0",
        *,
        channels: int = 1,
        dtype: str = "int16",
        blocksize: int = 480,
        queue_size: int = 64,
        buffer_s: float = 1.0,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        super().__init__(
            AudioInfo(
                id=device_id,
                name=f"Simulated microphone ({device_id})",
                backend=self.backend,
                simulated=True,
                sample_rate=SAMPLE_RATE,
                channels=channels,
                dtype=dtype,
                blocksize=blocksize,
                hostapi="simulated",
            ),
            queue_size,
        )
        self._clock = clock
        self.buffer_blocks = max(1, round(buffer_s * SAMPLE_RATE / blocksize))
        self._k = 0

    def _stream_time(self) -> float:
        return self._clock() / NS

    def _device_open(self) -> AudioInfo:
        self.clock.measure(self._stream_time)
        self._k = -(-self._clock() * SAMPLE_RATE // NS)  # the next sample of the grid
        return self.info

    def _device_close(self) -> None:
        return None

    def make_block(self, k0: int) -> np.ndarray:
        """The device's buffer for samples ``k0 ..`` (frames, channels)."""
        info = self.info
        x = as_dtype(signal(k0, info.blocksize), info.dtype)
        return np.repeat(x[:, None], info.channels, axis=1)

    def _device_loop(self) -> None:
        n, rate, clock, stop = self.info.blocksize, SAMPLE_RATE, self._clock, self._stop
        next_measure = clock() + NS
        k = self._k
        while not stop.is_set():
            due = -(-(k + n) * NS // rate)  # the block's last sample has been taken
            now = clock()
            if now < due:
                if stop.wait((due - now) / 1e9):
                    return
                now = clock()
            if now >= next_measure:
                self.clock.measure(self._stream_time)
                next_measure = now + NS
            # Blocks complete and waiting; beyond the device's buffer the oldest are gone.
            waiting = (now * rate // NS - k) // n
            overflow = waiting > self.buffer_blocks
            if overflow:
                k += (waiting - self.buffer_blocks) * n
            if not self._callback(
                self.make_block(k), n, _Time(k / rate, now / NS), _Flags(input_overflow=overflow)
            ):
                return
            k += n
