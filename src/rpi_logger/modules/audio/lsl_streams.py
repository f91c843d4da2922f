"""An audio input's LSL outlet (``lsl = true``): its samples, pushed a block at a time.

Sample *i* of a block is stamped ``t_mono_ns + i / rate``: the host time of the block's first
sample (PortAudio's ADC time on the host clock), as in the timing CSV.
"""

from __future__ import annotations

from rpi_logger.framework.lsl_outlets import Channel, Chunk, OutletSpec
from rpi_logger.modules.audio.backends.base import AudioInfo
from rpi_logger.samples import AudioBlock

_FORMATS = {"int16": "int16", "int32": "int32", "float32": "float32"}


def outlet_spec(info: AudioInfo) -> OutletSpec:
    unit = "normalized" if info.dtype == "float32" else "counts"
    return OutletSpec(
        info.id,
        f"Audio {info.id}",
        "Audio",
        tuple(Channel(f"ch{i}", unit, "Audio") for i in range(info.channels)),
        nominal_srate=float(info.sample_rate),
        channel_format=_FORMATS.get(info.dtype, "float32"),
        device=info.id,
        chunk_size=info.blocksize,
    )


def chunk_of(block: AudioBlock) -> Chunk:
    return Chunk(block.t_mono_ns, float(block.sample_rate), block.data)
