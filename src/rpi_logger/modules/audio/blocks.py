"""Cutting an audio block to a trial's window at the exact sample (`TrialStream`'s ``clip``).

Sample *i* of a block was taken at ``t_mono_ns + i * 1e9 / rate``. A trial keeps the samples
with ``start <= t < stop``; a block that straddles the start or the stop is cut there, so the
first kept sample lies within one sample period after the start and none at or after the stop.
Integer arithmetic throughout (ceilings), so a cut never moves a sample across a boundary.
"""

from __future__ import annotations

import dataclasses

from rpi_logger.io.clock import mono_to_wall
from rpi_logger.samples import AudioBlock

NS = 1_000_000_000


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def clip_block(block: AudioBlock, start_ns: int, stop_ns: int | None) -> AudioBlock | None:
    """The part of `block` inside ``[start_ns, stop_ns)`` (the block itself when whole), or None."""
    rate, n, t0 = block.sample_rate, block.frames, block.t_mono_ns
    first = max(0, _ceil_div((start_ns - t0) * rate, NS))
    end = n if stop_ns is None else min(n, _ceil_div((stop_ns - t0) * rate, NS))
    if first >= end:
        return None
    if first == 0 and end == n:
        return block
    shift = _ceil_div(first * NS, rate)  # the first kept sample's exact time, rounded up
    t = t0 + shift
    return dataclasses.replace(
        block,
        data=block.data[first:end],
        t_mono_ns=t,
        t_wall_unix=mono_to_wall(t),
        t_device_ns=None if block.t_device_ns is None else block.t_device_ns + shift,
        device_sample_index=block.device_sample_index + first,
        lost_before=block.lost_before if first == 0 else 0,
        input_overflow=block.input_overflow if first == 0 else False,
    )
