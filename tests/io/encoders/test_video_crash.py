"""Crash safety (design.md: Principles, 3): after kill -9 the MP4 is readable up to at most 1 s
before the kill."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from rpi_logger.simulation.barcode import read_video_barcodes

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from rpi_logger.io.sinks import SinkWriter
    from rpi_logger.io.sinks.video import Mp4Sink
    from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource

    async def main(path):
        src = SyntheticSource(width=640, height=480, fps=30)
        start = time.monotonic_ns()  # the trial's origin: before the camera's first frame
        await src.open()
        sink = Mp4Sink(path, Path(path).with_suffix(".csv"), width=640, height=480, fps=30,
                       origin_ns=start)
        writer = SinkWriter(sink, max_queue=30, overflow="drop")
        await writer.astart()
        print(start, flush=True)
        async for frame in src:
            writer.submit(frame)

    asyncio.run(main(sys.argv[1]))
    """
)


def test_kill_9_keeps_all_but_the_last_second(tmp_path: Path) -> None:
    path = tmp_path / "crash.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.strip(), "child did not start recording"
        trial_start = int(line)
        time.sleep(3.0)
        kill_ms = time.monotonic_ns() // 1_000_000
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    scan = read_video_barcodes(path)
    frames = scan.frames
    assert len(frames) >= 55, f"only {len(frames)} frames readable ({scan.error})"
    # Intact and in order from the first frame...
    assert [f.counter for f in frames] == list(range(len(frames)))
    assert all(b.pts_s > a.pts_s for a, b in itertools.pairwise(frames))
    first_ms = frames[0].ms
    assert abs(frames[0].pts_s * 1000 - ((first_ms - trial_start // 1_000_000) % 2**32)) <= 1.5
    # ...up to at most one second before the kill.
    lost_ms = (kill_ms - frames[-1].ms) % 2**32
    assert lost_ms <= 1000, f"last readable frame {lost_ms} ms before the kill"
