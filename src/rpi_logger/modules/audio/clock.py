"""Each audio block's host time: PortAudio's ADC time mapped onto CLOCK_MONOTONIC.

PortAudio stamps every input buffer with the time its first sample entered the ADC
(``inputBufferAdcTime``), on the stream's own clock (``stream.time``). On Linux/ALSA that clock
is CLOCK_MONOTONIC in seconds (design.md §11), elsewhere it may not be, so the offset between the
two is measured, never assumed: the pair (``stream.time``, ``time.monotonic_ns()``) is read
when the stream starts and again every second (the tightest of a few reads, so a preempted read
does not count), and a block's host time is its ADC time plus that offset.

A host API that gives no ADC time (0) gets a sample-counter clock instead: the first callback's
arrival, less the block's duration, anchors sample 0, and sample *n* is ``n / rate`` later. It
cannot see samples the device lost, so its times slip by every overflow; the manifest says which
clock a file used (``clock``: ``adc`` or ``sample_counter``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

NS = 1_000_000_000
#: Seconds between measurements of the stream-clock offset.
REMEASURE_S = 1.0


class BlockClock:
    """Host times of one stream's blocks. `measure` runs on the device thread, `time_block` in
    the audio callback; the offset is one float, replaced whole (no lock needed)."""

    def __init__(self, sample_rate: int) -> None:
        self.rate = int(sample_rate)
        self.kind: str | None = None  # "adc" or "sample_counter", fixed by the first block
        self.offset_ns: float | None = None  # host ns minus stream-clock ns
        self.uncertainty_ns = 0.0  # half the tightest read's duration
        self.measurements = 0
        self._anchor_ns = 0
        self._next_adc_ns: float | None = None  # where the next block should start (ADC ns)

    def measure(self, stream_time: Callable[[], float], tries: int = 5) -> None:
        """Read (stream time, host time) a few times; keep the tightest pair's offset."""
        best: tuple[int, float] | None = None
        for _ in range(tries):
            a = time.monotonic_ns()
            s = stream_time()
            b = time.monotonic_ns()
            if s and (best is None or b - a < best[0]):
                best = (b - a, (a + b) / 2 - s * NS)
        if best is not None:
            self.offset_ns = best[1]
            self.uncertainty_ns = best[0] / 2
            self.measurements += 1

    def time_block(
        self, adc_s: float, frames: int, sample_index: int, now_ns: int
    ) -> tuple[int, int | None, int]:
        """(host time of the block's first sample, its ADC time in ns or None, samples lost
        just before it). `sample_index` is the device's count of samples delivered so far."""
        if self.kind is None:
            self.kind = "adc" if adc_s and self.offset_ns is not None else "sample_counter"
            self._anchor_ns = now_ns - frames * NS // self.rate
        if self.kind == "sample_counter":
            return self._anchor_ns + sample_index * NS // self.rate, None, 0
        adc_ns = adc_s * NS
        lost = 0
        expected = self._next_adc_ns
        if expected is not None:
            missing = round((adc_ns - expected) * self.rate / NS)
            # ADC times jitter by microseconds; a real overrun loses at least a period.
            if missing >= max(2, frames // 4):
                lost = missing
        self._next_adc_ns = adc_ns + frames * NS / self.rate
        assert self.offset_ns is not None
        return round(adc_ns + self.offset_ns), round(adc_ns), lost
