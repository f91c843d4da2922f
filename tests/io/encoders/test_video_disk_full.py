"""A video sink on a full disk (a real tmpfs): it says so once, in one line naming the file,
never holds up its producer, and closes promptly with an error the manifest can carry."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from tests.io.encoders.camera_video_checks import make_sink, writing
from tests.io.small_fs import fill, small_tmpfs

from rpi_logger.io.sinks import SinkError
from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource


@pytest.mark.parametrize("kind", ["pyav", "ffmpeg"])
async def test_video_on_a_full_disk(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with small_tmpfs(tmp_path / "small", "2m") as disk:
        video = disk / "v.mp4"
        src = SyntheticSource(width=640, height=480, fps=30)
        start = time.monotonic_ns()
        await src.open()
        longest = 0.0
        with pytest.raises(SinkError, match=f"^disk full: {video}$"):
            try:
                async with writing(make_sink(kind, video, 640, 480, start)) as writer:
                    await asyncio.to_thread(fill, disk)
                    async for frame in src:
                        t = time.perf_counter()
                        writer.submit(frame)
                        longest = max(longest, time.perf_counter() - t)
                        if frame.t_mono_ns >= start + 2_500_000_000:
                            break
                    t_close = time.monotonic()
            finally:
                await src.close()
        assert time.monotonic() - t_close < 10.0
    # submit() never waits on I/O, failed sink or not (a busy machine may still preempt the
    # loop thread for a while: the bound is loose on purpose)
    assert longest < 0.5
    stats = writer.stats()
    assert stats.dropped_error > 0 and stats.accepted + stats.dropped_error >= 60
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"disk full: {video}"]
    assert errors[0].exc_info is None and "Traceback" not in caplog.text
