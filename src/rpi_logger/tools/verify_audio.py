"""Audio checks for `rpi-logger verify`: the WAV decodes, its header agrees with its data, its
length equals the timing CSV's sum of ``frames``, ``sample_index`` runs without gaps, and every
sample lies inside the trial. For the simulated microphone the bursts are found too: each onset,
timed through the timing CSV, must fall on a whole second of the host clock (within 2 ms).

After a crash (`kill -9`, power cut) the WAV sink leaves, on disk, a header declaring the
samples up to its last flush, timing rows for at least those, and possibly samples written after
it (`rpi_logger.io.sinks.wav_sink`): every count may then differ, in that order, which is a
warning. ``--repair`` rewrites the header's sizes (RIFF, data, and the ``fact`` chunk of a
float WAV) to cover every whole sample frame in the data; it never touches a sample.
"""

from __future__ import annotations

import itertools
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rpi_logger.tools.verify import FileContext, Report

#: Largest error allowed between a simulated burst's onset, as timed by the CSV, and its second.
ONSET_TOLERANCE_NS = 2_000_000
NS = 1_000_000_000
_CHUNK_ID_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-")


@dataclass(frozen=True, slots=True)
class WavLayout:
    """Where a WAV's sizes live and what they say, against what the file holds."""

    riff_size: int  # declared
    block_align: int  # bytes per sample frame
    data_offset: int  # first byte of the samples
    data_size: int  # declared
    available: int  # bytes of sample data on disk (whole frames), when the data runs to the end
    fact_offset: int | None  # the fact chunk's sample count (float WAVs), if any
    size: int  # the file's size

    @property
    def declared_frames(self) -> int:
        return min(self.data_size, self.size - self.data_offset) // self.block_align

    @property
    def frames_on_disk(self) -> int:
        return self.available // self.block_align

    @property
    def stale(self) -> bool:
        """The header does not declare the data the file holds (a crash before close)."""
        return self.data_size != self.available or self.riff_size != self._riff_for(self.available)

    def _riff_for(self, data_size: int) -> int:
        return self.data_offset - 8 + data_size + (data_size & 1)


def read_layout(path: Path) -> WavLayout:
    """Parse a WAV's chunk headers (never its samples). Raises ValueError for a file that is
    not a PCM/float WAV."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError("not a RIFF/WAVE file")
        riff_size = struct.unpack("<I", head[4:8])[0]
        pos, block_align, fact = 12, 0, None
        while True:
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                raise ValueError("no data chunk")
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(16)
                if len(fmt) < 16:
                    raise ValueError("fmt chunk cut short")
                block_align = struct.unpack("<H", fmt[12:14])[0]
            elif cid == b"fact":
                fact = pos + 8
            elif cid == b"data":
                if not block_align:
                    raise ValueError("data before the fmt chunk")
                data_offset = pos + 8
                break
            if not set(cid) <= _CHUNK_ID_CHARS:
                raise ValueError(f"damaged chunk header at byte {pos}")
            pos += 8 + csize + (csize & 1)
        end = data_offset + csize
        # Chunks libsndfile writes after the data (at close) mean the data ends where declared.
        f.seek(end + (csize & 1))
        after = f.read(4)
    complete = 0 < csize <= size - data_offset and (len(after) < 4 or set(after) <= _CHUNK_ID_CHARS)
    raw = csize if complete else size - data_offset
    available = raw - raw % block_align
    return WavLayout(riff_size, block_align, data_offset, csize, available, fact, size)


def repair_header(path: Path, layout: WavLayout) -> None:
    """Rewrite the sizes so the header covers every whole frame on disk (samples untouched)."""
    data = layout.available
    with open(path, "r+b") as f:
        f.seek(4)
        f.write(struct.pack("<I", layout._riff_for(data)))
        f.seek(layout.data_offset - 4)
        f.write(struct.pack("<I", data))
        if layout.fact_offset is not None:
            f.seek(layout.fact_offset)
            f.write(struct.pack("<I", data // layout.block_align))
        f.flush()
        os.fsync(f.fileno())


def _int_column(ctx: FileContext, name: str) -> list[int] | None:
    assert ctx.timing is not None
    values = ctx.timing.column(name)
    if values is None:
        return None
    try:
        return [int(v) for v in values]
    except ValueError:
        return None


def check_audio(report: Report, ctx: FileContext) -> None:
    """Append findings about one audio file entry of the manifest to `report`."""
    import soundfile as sf  # loads only when a WAV is checked

    from rpi_logger.tools.verify import ERROR, INFO, WARNING

    rel = ctx.rel
    interrupted = ctx.interrupted or ctx.trial_interrupted
    soft = WARNING if interrupted else ERROR
    try:
        layout = read_layout(ctx.path)
    except (OSError, ValueError, struct.error) as exc:
        report.add(soft, rel, f"not a readable WAV: {exc}")
        return
    if layout.stale:
        if ctx.repair:
            was = layout.declared_frames
            repair_header(ctx.path, layout)
            report.add(
                INFO,
                rel,
                f"header repaired: it declared {was} sample frames, the data holds "
                f"{layout.frames_on_disk} (samples untouched)",
            )
            layout = read_layout(ctx.path)
        else:
            report.add(
                soft,
                rel,
                f"header declares {layout.declared_frames} sample frames, the data holds "
                f"{layout.frames_on_disk} (cut by a crash; `rpi-logger verify --repair` "
                "rewrites the header)",
            )
    try:
        info = sf.info(str(ctx.path))
        decoded = 0
        for block in sf.blocks(str(ctx.path), blocksize=1 << 18, dtype="float32"):
            decoded += len(block)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        report.add(soft, rel, f"does not decode: {exc}")
        return
    rate = info.samplerate
    if ctx.timing is None:
        if ctx.timing_rel is None:
            report.add(ERROR, rel, "no timing file to check the samples against")
        return
    frames = _int_column(ctx, "frames")
    index = _int_column(ctx, "sample_index")
    blocks = _int_column(ctx, "block_index")
    if frames is None or index is None or blocks is None:
        report.add(
            ERROR, ctx.timing_rel or rel, "timing needs integer block_index, sample_index, frames"
        )
        return
    starts = [0, *itertools.accumulate(frames)]
    breaks = [i for i, (got, want) in enumerate(zip(index, starts, strict=False)) if got != want]
    if breaks:
        i = breaks[0]
        report.add(
            ERROR,
            rel,
            f"sample_index not continuous at {len(breaks)} rows (first at block {i}: "
            f"{index[i]}, expected {starts[i]})",
        )
    if blocks != list(range(len(blocks))):
        report.add(ERROR, rel, "block_index does not count 0, 1, 2, ...")
    in_rows = starts[-1]
    if decoded != in_rows:
        if interrupted and decoded > in_rows:
            report.add(
                WARNING,
                rel,
                f"{decoded - in_rows} samples after the last timing row (written after the "
                "last flush before the crash)",
            )
        elif interrupted:
            report.add(
                WARNING,
                rel,
                f"WAV holds {decoded} samples, timing rows {in_rows}: interrupted"
                + ("" if ctx.repair else " (`--repair` may recover the rest)"),
            )
        else:
            report.add(ERROR, rel, f"WAV holds {decoded} samples, timing rows {in_rows}")
    if ctx.frames is not None and not interrupted and ctx.frames != len(frames):
        report.add(ERROR, rel, f"manifest says {ctx.frames} blocks, timing has {len(frames)}")
    samples = ctx.entry.get("samples")
    if isinstance(samples, int) and not interrupted and samples != decoded:
        report.add(ERROR, rel, f"manifest says {samples} samples, the WAV holds {decoded}")
    times = ctx.times
    if times and ctx.stop_ns is not None:
        end = times[-1] + (frames[-1] - 1) * NS // rate  # the last sample's time
        if end >= ctx.stop_ns:
            report.add(ERROR, rel, f"samples until {end}, after the trial stop {ctx.stop_ns}")
    if ctx.simulated and times:
        _check_bursts(report, ctx, times, index, frames, rate)


def _check_bursts(
    report: Report,
    ctx: FileContext,
    times: list[int],
    index: list[int],
    frames: list[int],
    rate: int,
) -> None:
    """Each simulated burst's onset, timed through the CSV, lies on a whole second."""
    import bisect

    import soundfile as sf

    from rpi_logger.modules.audio.backends.simulated import burst_onsets
    from rpi_logger.tools.verify import ERROR, INFO

    data, _ = sf.read(str(ctx.path), dtype="float32", always_2d=True)
    covered = index[-1] + frames[-1]
    onsets = [i for i in burst_onsets(data[:covered, 0], rate) if i < covered]
    errors = []
    for i in onsets:
        row = bisect.bisect_right(index, i) - 1
        t = times[row] + (i - index[row]) * NS // rate
        errors.append(abs(t - round(t / NS) * NS))
    if not onsets:
        report.add(INFO, ctx.rel, "no simulated burst onset in this recording")
        return
    worst = max(errors)
    if worst > ONSET_TOLERANCE_NS:
        report.add(
            ERROR,
            ctx.rel,
            f"simulated burst onsets off their whole seconds by up to {worst / 1e6:.3f} ms",
        )
    else:
        report.add(
            INFO,
            ctx.rel,
            f"{len(onsets)} simulated burst onsets on their whole seconds "
            f"(largest error {worst / 1e3:.1f} µs)",
        )
