"""The simulated camera (design.md: Simulated devices): barcodes carry counter and capture ms,
real-time pacing on
its own thread, a slow consumer loses frames in the hand-off (counted, reported), cheap frames."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from rpi_logger.framework.gaps import SequenceGapCounter
from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource
from rpi_logger.simulation.barcode import decode_barcodes, ms_of


@pytest.mark.parametrize("pixel_format", ["rgb24", "yuv420p"])
@pytest.mark.parametrize(
    ("counter", "t_ns"),
    [
        (0, 0),
        (1, 999_999),
        (12345, 1_234_567_890_123),
        (2**32 - 1, (2**32 - 1) * 1_000_000),
        (2**32 + 5, 2**33 * 1_000_000 + 7),
    ],
)
def test_barcodes_read_back_counter_and_ms(pixel_format: str, counter: int, t_ns: int) -> None:
    src = SyntheticSource(width=640, height=480, pixel_format=pixel_format)
    frame = src.make_frame(counter, t_ns)
    assert decode_barcodes(frame.image) == (counter % 2**32, ms_of(t_ns))
    assert ms_of(t_ns) == (t_ns // 1_000_000) % 2**32


def test_barcode_layout_matches_spec() -> None:
    """Row 0 = counter, row 1 = ms, 32 cells of 16x16 px, MSB first, white=1."""
    src = SyntheticSource(width=512, height=64)
    img = src.make_frame(0b101, 2 * 1_000_000).image
    # Counter 5: only the last cells (bits 2 and 0) are white; cell 0 is the MSB.
    assert img[8, 31 * 16 + 8].tolist() == [255, 255, 255]
    assert img[8, 30 * 16 + 8].tolist() == [0, 0, 0]
    assert img[8, 29 * 16 + 8].tolist() == [255, 255, 255]
    assert img[0:16, 0:16].max() == 0  # MSB of a small counter is black, whole cell
    # ms = 2: bit 1 set, in row 1 (y 16-31).
    assert img[16:32, 30 * 16 : 31 * 16].min() == 255
    assert img[16:32, 31 * 16 : 32 * 16].max() == 0


def test_barcodes_survive_heavy_h264_compression() -> None:
    src = SyntheticSource(width=640, height=480)
    stamps = [(k * 7919, 10**12 + k * 33_366_667) for k in range(12)]
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt = 640, 480, "yuv420p"
    cc.time_base = Fraction(1, 30)
    cc.options = {"crf": "45", "preset": "ultrafast"}  # far worse than any recording setting
    packets = []
    for i, (counter, t) in enumerate(stamps):
        vf = av.VideoFrame.from_ndarray(src.make_frame(counter, t).image, format="rgb24")
        vf.pts = i
        packets += cc.encode(vf)
    packets += cc.encode(None)
    dec = av.CodecContext.create("h264", "r")
    decoded = [f for p in packets for f in dec.decode(p)] + list(dec.decode(None))
    assert len(decoded) == len(stamps)
    for f, (counter, t) in zip(decoded, stamps, strict=True):
        assert decode_barcodes(f.to_ndarray(format="rgb24")) == (counter, ms_of(t))


def test_default_geometry_and_minimum_width() -> None:
    src = SyntheticSource()
    assert (src.info.width, src.info.height, src.info.fps) == (1280, 720, 30.0)
    assert src.info.simulated and src.info.backend == "synthetic"
    with pytest.raises(ValueError, match="at least 512"):
        SyntheticSource(width=500)
    ids = [d.id for d in SyntheticSource.list_cameras(2)]
    assert ids == ["synthetic0", "synthetic1"]


async def test_live_frames_are_paced_and_carry_their_capture_time() -> None:
    src = SyntheticSource(width=640, height=480, fps=30)
    frames = []
    async with src:
        t0 = time.monotonic_ns()
        async for frame in src:
            frames.append(frame)
            if len(frames) == 45:
                break
        elapsed = (time.monotonic_ns() - t0) / 1e9
    gaps = SequenceGapCounter()
    for f in frames:
        assert decode_barcodes(f.image) == (f.sequence, ms_of(f.t_mono_ns))
        gaps.update(f.sequence)
    # A consumer that keeps up sees every slot (a starved device thread may skip one or two).
    assert gaps.gaps <= 2 and src.stats.dropped_queue_overflow == 0
    assert frames[0].sequence == 0
    # 45 frames = 44 intervals of 1/30 s after the first (which is due at open).
    slots = frames[-1].sequence
    assert slots / 30 * 0.9 < elapsed < slots / 30 * 1.15
    intervals = np.diff([f.t_mono_ns for f in frames]) / 1e6
    assert abs(statistics.median(intervals) - 1000 / 30) < 3
    assert all(i > 0 for i in intervals)
    # Each frame is stamped with its slot's time, as a sensor stamps its exposure.
    period = src.period_ns
    assert all(f.t_mono_ns - frames[0].t_mono_ns == f.sequence * period for f in frames)


async def test_slow_consumer_loses_frames_in_the_hand_off_and_is_told_which() -> None:
    src = SyntheticSource(width=640, height=480, fps=30, queue_size=2)
    lost: list[tuple[int, int]] = []
    src.on_overflow = lambda item: lost.append((item.t_mono_ns, item.sequence))
    frames = []
    async with src:
        async for frame in src:
            frames.append(frame)
            if len(frames) == 10:
                break
            await asyncio.sleep(0.1)  # ~3 capture slots per frame, 2 of them find no room
    seqs = [f.sequence for f in frames]
    assert all(b > a for a, b in itertools.pairwise(seqs))
    missing = sum(b - a - 1 for a, b in itertools.pairwise(seqs))
    assert missing >= 8
    # Every slot between the frames delivered was lost in the hand-off, and reported (before
    # the next frame through) with its capture time; the camera itself skipped none.
    reported = [seq for _, seq in lost if seq < seqs[-1]]
    assert reported == [s for s in range(seqs[0], seqs[-1]) if s not in seqs]
    assert src.stats.dropped_queue_overflow >= missing
    period = src.period_ns
    assert all(t - frames[0].t_mono_ns == (seq - seqs[0]) * period for t, seq in lost)
    for f in frames:  # the barcode counter is the device sequence number
        assert decode_barcodes(f.image)[0] == f.sequence


async def test_close_ends_iteration() -> None:
    src = SyntheticSource(width=512, height=64, fps=10)
    await src.open()
    got = []

    async def consume() -> None:
        async for f in src:
            got.append(f)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(consume())
        await asyncio.sleep(0.25)
        await src.close()
    assert 2 <= len(got) <= 4
