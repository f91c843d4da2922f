"""One input's pipeline in-process: a writer stalled by slow storage overflows its queue, and
every lost sample is counted, in the status while recording and in the manifest record after,
so the WAV's samples plus those counted as dropped are exactly the trial's."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import soundfile as sf

from rpi_logger.framework.trial import TrialWindow
from rpi_logger.io.sinks import set_latency
from rpi_logger.modules.audio.backends.simulated import SAMPLE_RATE, SimulatedAudioSource
from rpi_logger.modules.audio.pipeline import AudioPipeline

NS = 1_000_000_000


async def test_stalled_writer_overflow_is_counted_with_the_samples_lost(tmp_path: Path) -> None:
    source = SimulatedAudioSource(blocksize=480)
    pipeline = AudioPipeline(source, {"queue_blocks": 8, "flush_interval_s": 0.1})
    async with asyncio.TaskGroup() as tg:
        capture = tg.create_task(pipeline.capture())
        await pipeline.wait_open()
        set_latency(flush_ms=800)  # every flush of this writer stalls it for 0.8 s
        try:
            start = time.monotonic_ns() + 50_000_000
            window = TrialWindow(1, start)
            await pipeline.start_trial(window, tmp_path)
        finally:
            set_latency()
        await asyncio.sleep(1.5)
        status = pipeline.status()
        window.stop_ns = time.monotonic_ns() + 20_000_000
        await asyncio.sleep(0.1)
        record = await pipeline.stop_trial()
        capture.cancel()
    assert record is not None
    assert status["dropped_queue_overflow"] > 0, status
    assert status["samples_dropped"]["queue_overflow"] > 0, status
    dropped = record.extra["samples_dropped"]
    assert record.extra["dropped_by_cause"]["queue_overflow"] == record.dropped > 0
    assert dropped["queue_overflow"] >= 480 * record.dropped - 480
    data, _ = sf.read(record.path, dtype="int16")
    assert len(data) == record.extra["samples"]
    in_window = (window.stop_ns - start) * SAMPLE_RATE / NS
    assert abs(len(data) + sum(dropped.values()) - in_window) <= 1
