"""The simulated microphone (design.md §7) through the real callback path: content a function of the
host clock, blocks back to back on it, never ahead of real time, and an overrun when its thread
is starved, reported as a device would (the flag and the samples lost)."""

from __future__ import annotations

import asyncio
import itertools
import time

import numpy as np

from rpi_logger.modules.audio.backends.simulated import (
    SAMPLE_RATE,
    SimulatedAudioSource,
    as_dtype,
    burst_onsets,
    signal,
)
from rpi_logger.samples import AudioBlock

NS = 1_000_000_000


def test_signal_has_a_burst_at_each_whole_second_and_low_noise() -> None:
    x = signal(5 * SAMPLE_RATE - 1000, 3 * SAMPLE_RATE)  # 4.979 s .. 7.979 s
    assert burst_onsets(x) == [1000, 1000 + SAMPLE_RATE, 1000 + 2 * SAMPLE_RATE]
    quiet = x[2000:40_000]
    assert np.abs(quiet).max() < 0.002  # noise far below the burst (0.5)
    burst = x[1000 : 1000 + 480]
    assert abs(burst[0] - 0.5) < 0.002 and np.abs(burst).max() <= 0.502
    assert np.abs(x[1000 + 480 : 1000 + 2000]).max() < 0.002  # 10 ms long


async def test_blocks_arrive_back_to_back_on_the_host_clock() -> None:
    source = SimulatedAudioSource(channels=2, blocksize=480)
    blocks: list[AudioBlock] = []
    async with source:
        opened = time.monotonic_ns()
        async for block in source:
            blocks.append(block)
            if len(blocks) == 30:
                break
        received = time.monotonic_ns()
    assert source.clock.kind == "adc"
    for a, b in itertools.pairwise(blocks):
        assert b.sequence == a.sequence + 1 and b.device_sample_index == a.device_sample_index + 480
        assert abs(b.t_mono_ns - a.end_ns) <= 1  # back to back, to the ns
    k0 = round(blocks[0].t_mono_ns * SAMPLE_RATE / NS)
    expected = as_dtype(signal(k0, 30 * 480), "int16")
    got = np.concatenate([b.data for b in blocks])
    np.testing.assert_array_equal(got[:, 0], expected)
    np.testing.assert_array_equal(got[:, 1], expected)
    # Real time: a block is delivered only once its last sample has been taken.
    assert blocks[-1].end_ns <= received
    assert blocks[0].t_mono_ns >= opened - 20_000_000


async def test_a_starved_device_thread_reports_an_input_overflow_with_samples_lost() -> None:
    jump = [0]

    def clock() -> int:
        return time.monotonic_ns() + jump[0]

    source = SimulatedAudioSource(blocksize=480, buffer_s=0.5, clock=clock)
    blocks: list[AudioBlock] = []
    async with asyncio.timeout(20), source:
        async for block in source:
            blocks.append(block)
            if len(blocks) == 5:
                jump[0] = 3 * NS  # the thread "wakes" 3 s later
            if block.input_overflow or len(blocks) > 400:
                break
    flagged = blocks[-1]
    assert flagged.input_overflow, "no overflow reported"
    # 3 s passed, the device buffer holds 0.5 s: about 2.5 s of samples were lost.
    assert 2.3 * SAMPLE_RATE <= flagged.lost_before <= 2.6 * SAMPLE_RATE
    assert source.input_overflows >= 1
