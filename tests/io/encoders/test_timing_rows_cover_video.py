"""The video on disk never holds a frame whose timing row is not on disk (rows ⊇ frames).

Each encoder is run with a real timing `CsvStreamWriter`. Every time the encoder asks for the rows
to be flushed (that is: just before more video bytes move), the test reads what is on disk at
that instant, as another process would: the frames the MP4 holds and the rows the CSV holds. The
frames may never outnumber the rows, and row i must be frame i.
"""

from __future__ import annotations

import asyncio
import csv
import time
from pathlib import Path

import av
import pytest

from rpi_logger.io.csv_writer import CsvStreamWriter
from rpi_logger.io.encoders import TIMING_COLUMNS, make_encoder
from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource


def packets_on_disk(path: Path) -> list[int]:
    """PTS (µs) of the frames a reader finds in the MP4 right now (a cut fragment ends it)."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    out: list[int] = []
    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            for p in c.demux(stream):
                if p.size and p.pts is not None:
                    out.append(int(p.pts * stream.time_base * 1_000_000))
    except (av.error.FFmpegError, OSError, IndexError):
        pass  # a file still being written: what was read so far counts
    return out


def rows_on_disk(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(text.splitlines()))


@pytest.mark.parametrize("kind", ["pyav", "ffmpeg"])
async def test_every_frame_on_disk_has_its_row_on_disk_at_every_write(
    tmp_path: Path, kind: str
) -> None:
    video, timing_path = tmp_path / "v.mp4", tmp_path / "v_timing.csv"
    timing = CsvStreamWriter(timing_path, TIMING_COLUMNS, overflow="block")
    await timing.astart()
    checks: list[tuple[int, int]] = []  # (frames on disk, rows on disk) seen before each flush
    mismatches: list[str] = []

    def flush_rows(durable: bool) -> None:
        # Called before video bytes move: what is on disk now must already be covered.
        if kind == "pyav" or len(checks) % 5 == 0:  # ffmpeg asks once per frame: sample
            frames, rows = packets_on_disk(video), rows_on_disk(timing_path)
            checks.append((len(frames), len(rows)))
            for i, pts in enumerate(frames[: len(rows)]):
                if abs(pts - int(rows[i]["pts_us"])) > 1:
                    mismatches.append(f"frame {i}: pts {pts} != row {rows[i]['pts_us']}")
        else:
            checks.append((-1, -1))
        timing.flush_blocking(20.0, fsync=durable)

    encoder = make_encoder(
        kind, on_written=lambda w: timing.write_row(w.timing_values()), flush_rows=flush_rows
    )
    src = SyntheticSource(width=640, height=480, fps=30)
    await src.open()
    start = time.monotonic_ns()
    await encoder.open(video, 640, 480, 30, start)
    end = start + 2_500_000_000
    try:
        async for frame in src:
            encoder.submit(frame)
            if frame.t_mono_ns >= end:
                break
    finally:
        await src.close()
        stats = await encoder.close()
        await timing.aclose()
    real = [c for c in checks if c[0] >= 0]
    assert len(real) >= 3, checks  # fragments (pyav) / frames (ffmpeg) were written meanwhile
    assert any(frames > 0 for frames, _ in real), real
    assert all(frames <= rows for frames, rows in real), real
    assert not mismatches, mismatches[:5]
    frames, rows = packets_on_disk(video), rows_on_disk(timing_path)
    assert len(frames) == len(rows) == stats.frames_written >= 30
    assert all(abs(p - int(r["pts_us"])) <= 1 for p, r in zip(frames, rows, strict=True))


async def test_a_failing_timing_file_stops_the_video_before_it_gets_ahead(tmp_path: Path) -> None:
    """If the rows cannot be flushed, no more video is written and close() says why."""
    video = tmp_path / "v.mp4"
    rows: list[int] = []
    flushed: list[int] = []  # rows covered at each successful flush

    def flush_rows(durable: bool) -> None:
        if flushed:
            raise OSError(28, "No space left on device", str(tmp_path / "v_timing.csv"))
        flushed.append(len(rows))

    encoder = make_encoder("pyav", on_written=lambda w: rows.append(w.frame_index),
                           flush_rows=flush_rows)
    src = SyntheticSource(width=640, height=480, fps=30)
    await src.open()
    start = time.monotonic_ns()
    await encoder.open(video, 640, 480, 30, start)
    try:
        async for frame in src:
            encoder.submit(frame)
            if frame.t_mono_ns >= start + 2_000_000_000:
                break
    finally:
        await src.close()
    with pytest.raises(Exception, match="timing rows not saved") as info:
        await asyncio.wait_for(encoder.close(), 10)
    assert "disk full" in str(info.value) or "No space" in str(info.value)
    # Only what the one successful flush covered may be in the file, never more.
    assert len(packets_on_disk(video)) <= flushed[0]
    assert encoder.stats.dropped_error > 0
