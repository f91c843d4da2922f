"""A block's host time (ADC time through the measured offset, or the sample-counter fallback),
samples lost detected from the ADC times, and a trial window cutting blocks at the exact sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from rpi_logger.framework.base import FileRecord
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.framework.trial_stream import TrialStream
from rpi_logger.io.sinks.wav_sink import WavSink
from rpi_logger.modules.audio.blocks import clip_block
from rpi_logger.modules.audio.clock import BlockClock
from rpi_logger.samples import AudioBlock

NS = 1_000_000_000
RATE = 48_000


def _block(t0: int, k0: int, n: int = 480) -> AudioBlock:
    data = (np.arange(k0, k0 + n, dtype=np.int32) << 8)[:, None]  # 24-bit, left-aligned
    return AudioBlock(data, t0, t0 / 1e9, None, RATE, k0 // n, k0)


def test_adc_time_on_another_clock_is_mapped_through_the_measured_offset() -> None:
    import time

    skew = 1234.5  # the stream clock runs 1234.5 s behind the host clock
    clock = BlockClock(RATE)
    clock.measure(lambda: time.monotonic() - skew)
    assert clock.uncertainty_ns < 1e6
    adc = 5000.0
    t, t_dev, lost = clock.time_block(adc, 480, 0, time.monotonic_ns())
    assert clock.kind == "adc" and t_dev == round(adc * NS) and lost == 0
    assert abs(t - (adc + skew) * NS) < 1e5  # within 0.1 ms (a read of the pair)


def test_a_hole_in_the_adc_times_is_counted_as_samples_lost() -> None:
    clock = BlockClock(RATE)
    clock.offset_ns = 0.0
    first = clock.time_block(100.0, 480, 0, 0)
    assert first[2] == 0
    # 480 samples later, plus 2 µs of jitter: nothing lost.
    assert clock.time_block(100.0 + 480 / RATE + 2e-6, 480, 480, 0)[2] == 0
    # The next block comes 1000 samples late: an overrun lost 1000 samples.
    assert clock.time_block(100.0 + (960 + 1000) / RATE, 480, 960, 0)[2] == 1000


def test_no_adc_time_falls_back_to_a_sample_counter_anchored_at_the_first_callback() -> None:
    clock = BlockClock(RATE)
    clock.offset_ns = 0.0
    now = 50 * NS
    t0, dev, _ = clock.time_block(0.0, 480, 0, now)
    assert clock.kind == "sample_counter" and dev is None
    assert t0 == now - 10_000_000  # the block's first sample, 10 ms before its callback
    t1, _, _ = clock.time_block(0.0, 480, 480, now + 123)
    assert t1 == t0 + 10_000_000


def test_clip_cuts_at_the_exact_sample() -> None:
    period = NS / RATE
    block = _block(10 * NS, 0)
    start = 10 * NS + 5_000  # inside the first sample period
    part = clip_block(block, start, None)
    assert part is not None and part.frames == 479 and int(part.data[0, 0]) == 1 << 8
    assert start <= part.t_mono_ns < start + period
    stop = 10 * NS + 300 * NS // RATE  # exactly sample 300
    part = clip_block(block, 0, stop)
    assert part is not None and part.frames == 300
    assert clip_block(block, stop, stop + 1) is not None  # sample 300 itself
    assert clip_block(block, 11 * NS, None) is None
    assert clip_block(block, 0, None) is block


async def test_trial_stream_cuts_blocks_straddling_start_and_stop(tmp_path: Path) -> None:
    """Continuous blocks through a trial: the WAV holds exactly the samples whose times lie in
    [start, stop), and the first lies within one sample period after the start."""
    t0 = 10 * NS
    blocks = [_block(t0 + j * 10_000_000, j * 480) for j in range(100)]  # 1 s
    start, stop = t0 + 123_456_789, t0 + 876_543_210
    window = TrialWindow(1, start)
    sink = WavSink(
        tmp_path / "a.wav", tmp_path / "a.csv", sample_rate=RATE, channels=1, subtype="PCM_24"
    )
    stream = TrialStream(
        window, sink, FileRecord("d", "audio", sink.path), name="a", max_items=1000, clip=clip_block
    )
    await stream.open()
    for j, b in enumerate(blocks):
        if j == 50:
            window.stop_ns = stop
        stream.offer(b)
    record = await stream.close()
    data, _ = sf.read(tmp_path / "a.wav", dtype="int32")
    kept = [k for k in range(48_000) if start <= t0 + k * NS / RATE < stop]
    np.testing.assert_array_equal(data >> 8, np.array(kept))
    rows = (tmp_path / "a.csv").read_text().splitlines()[1:]
    first_t = int(rows[0].split(",")[3])
    assert start <= first_t < start + NS / RATE
    assert record.frames == len(rows) and record.dropped == 0
