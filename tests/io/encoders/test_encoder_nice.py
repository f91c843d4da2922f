"""x264's own encoding threads run at the writer's nice value, not at the loop's priority.

x264 starts its thread pool when the codec opens; threads inherit the nice value of the thread
that creates them, so a sink opened on a pool thread at nice 0 would encode at nice 0 and
compete with every event loop (measured: docs/performance.md, "Encoding yields the CPU").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from rpi_logger.io.sinks import SinkWriter
from rpi_logger.io.sinks.video import Mp4Sink, VideoSettings

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")


def _threads() -> dict[int, int]:
    """Thread id -> nice value, for this process."""
    out = {}
    for tid in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            stat = Path(f"/proc/{os.getpid()}/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(tid)] = int(stat.rsplit(")", 1)[1].split()[16])
    return out


async def test_encoder_threads_inherit_the_writer_nice(tmp_path: Path) -> None:
    before = set(_threads())
    sink = Mp4Sink(
        tmp_path / "v.mp4",
        tmp_path / "v_timing.csv",
        width=640,
        height=480,
        fps=30,
        origin_ns=0,
        settings=VideoSettings(threads=2),
    )
    writer = SinkWriter(sink, nice=10, wake_items=1, name="nice")
    await writer.astart()
    try:
        new = {tid: nice for tid, nice in _threads().items() if tid not in before}
    finally:
        await writer.aclose()
    assert new, "the writer and x264 start threads"
    # The event loop's default executor may have started a thread meanwhile (nice 0): every
    # other new thread belongs to the writer and its encoder.
    at_ten = [t for t, nice in new.items() if nice == 10]
    assert len(at_ten) >= 2, new  # the writer thread and at least one x264 thread
    assert sum(1 for nice in new.values() if nice == 0) <= 1, new
