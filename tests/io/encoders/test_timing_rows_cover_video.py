"""The video on disk never holds a frame whose timing row is not on disk (rows ⊇ frames).

Each video sink runs under a real `SinkWriter`. Every time the sink is about to move video bytes
(into the MP4, or into ffmpeg's pipe), the test reads what is on disk at that instant, as another
process would: the frames the MP4 holds and the rows the CSV holds. The frames may never
outnumber the rows, and row i must be frame i.
"""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest
from tests.io.encoders.camera_video_checks import make_sink, read_rows, timing_path, writing

from rpi_logger.io.sinks import SinkError
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


@pytest.mark.parametrize("kind", ["pyav", "ffmpeg"])
async def test_every_frame_on_disk_has_its_row_on_disk_at_every_write(
    tmp_path: Path, kind: str
) -> None:
    video = tmp_path / "v.mp4"
    start = time.monotonic_ns()
    sink = make_sink(kind, video, 640, 480, start)
    checks: list[tuple[int, int]] = []  # (frames on disk, rows on disk) seen before the write
    mismatches: list[str] = []
    gate = sink._before_video_bytes

    def before_video_bytes() -> None:
        # Video bytes are about to move: what is on disk now must already be covered...
        if kind == "pyav" or len(checks) % 5 == 0:  # ffmpeg's pipe moves per frame: sample
            frames, rows = packets_on_disk(video), read_rows(timing_path(video))
            checks.append((len(frames), len(rows)))
            for i, pts in enumerate(frames[: len(rows)]):
                if abs(pts - int(rows[i]["pts_us"])) > 1:
                    mismatches.append(f"frame {i}: pts {pts} != row {rows[i]['pts_us']}")
        else:
            checks.append((-1, -1))
        gate()  # ...and the rows of the frames these bytes may hold go out first

    sink._before_video_bytes = before_video_bytes  # type: ignore[method-assign]
    if kind == "pyav":  # the MP4 output took the gate when the sink was made
        sink.output._before_write = before_video_bytes  # type: ignore[attr-defined]
    src = SyntheticSource(width=640, height=480, fps=30)
    await src.open()
    try:
        async with writing(sink) as writer:
            async for frame in src:
                writer.submit(frame)
                if frame.t_mono_ns >= start + 2_500_000_000:
                    break
    finally:
        await src.close()
    real = [c for c in checks if c[0] >= 0]
    assert len(real) >= 3, checks  # fragments (pyav) / frames (ffmpeg) were written meanwhile
    assert any(frames > 0 for frames, _ in real), real
    assert all(frames <= rows for frames, rows in real), real
    assert not mismatches, mismatches[:5]
    frames, rows = packets_on_disk(video), read_rows(timing_path(video))
    assert len(frames) == len(rows) == sink.frames >= 30
    assert all(abs(p - int(r["pts_us"])) <= 1 for p, r in zip(frames, rows, strict=True))


@pytest.mark.parametrize("kind", ["pyav", "ffmpeg"])
async def test_a_failing_timing_file_stops_the_video_before_it_gets_ahead(
    tmp_path: Path, kind: str
) -> None:
    """If the rows cannot be flushed, no more video is written and the error names the file."""
    video = tmp_path / "v.mp4"
    start = time.monotonic_ns()
    sink = make_sink(kind, video, 640, 480, start)
    timing = sink._timing
    flushed: list[int] = []  # rows on disk after the one flush that succeeds
    real_flush = timing.flush

    def flush() -> None:
        if flushed:
            raise OSError(28, "No space left on device")
        real_flush()
        flushed.append(len(read_rows(timing.path)))

    timing.flush = flush  # type: ignore[method-assign]
    src = SyntheticSource(width=640, height=480, fps=30)
    await src.open()
    with pytest.raises(SinkError) as info:
        try:
            async with writing(sink) as writer:
                async for frame in src:
                    writer.submit(frame)
                    if frame.t_mono_ns >= start + 2_000_000_000:
                        break
        finally:
            await src.close()
    assert f"disk full: {timing.path}" in str(info.value)
    assert writer.stats().dropped_error > 0
    # Only what the one successful flush covered may be in the file, never more.
    assert len(packets_on_disk(video)) <= flushed[0]
