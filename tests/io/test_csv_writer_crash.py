"""After `kill -9` the CSV is readable up to its last flush (design.md: Principles, 3): a
subprocess writes rows
with flush_interval_s=0.2 and is killed; rows older than the interval must all be on disk."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

INTERVAL_S = 0.2
# Scheduling slack on a busy CI machine on top of the flush interval.
MARGIN_S = 0.3

CHILD = textwrap.dedent(
    """
    import sys, time
    from rpi_logger.io.csv_writer import CsvStreamWriter

    path, mode, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
    w = CsvStreamWriter(path, ["i", "t_mono_ns", "t_wall_unix", "x"], flush_interval_s=interval)
    w.start()
    if mode == "burst":
        for i in range(100):  # ~5 kB: less than the file buffer, so only a flush saves them
            w.write_row((i, time.monotonic_ns(), time.time(), i / 3))
        print("written", flush=True)
        time.sleep(60)  # idle: only the writer's own periodic flush can save the rows
    else:
        i = 0
        while True:
            w.write_row((i, time.monotonic_ns(), time.time(), i / 3))
            i += 1
            if i == 20:
                print("streaming", flush=True)
            time.sleep(0.01)  # ~5 kB/s: the file buffer alone would hold rows back > 1 s
    """
)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def run_and_kill(tmp_path: Path, mode: str, run_after_ready_s: float) -> tuple[Path, int]:
    path = tmp_path / f"{mode}.csv"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode, str(INTERVAL_S)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() in ("written", "streaming")
        time.sleep(run_after_ready_s)
        killed_at = time.monotonic_ns()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return path, killed_at


def complete_rows(path: Path) -> list[list[str]]:
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):  # a write cut mid-line: the torn line is not a row
        text = text[: text.rfind("\n") + 1]
    return list(csv.reader(text.splitlines()))


def test_idle_writer_has_every_row_on_disk_after_kill_9(tmp_path: Path) -> None:
    path, _ = run_and_kill(tmp_path, "burst", INTERVAL_S + MARGIN_S)
    rows = complete_rows(path)
    assert rows[0] == ["i", "t_mono_ns", "t_wall_unix", "x"]
    assert [int(r[0]) for r in rows[1:]] == list(range(100))
    assert all(float(r[3]) == int(r[0]) / 3 for r in rows[1:])  # full float precision


def test_streaming_writer_loses_at_most_the_last_interval_after_kill_9(tmp_path: Path) -> None:
    path, killed_at = run_and_kill(tmp_path, "stream", 0.8)
    rows = complete_rows(path)
    assert rows[0] == ["i", "t_mono_ns", "t_wall_unix", "x"]
    idx = [int(r[0]) for r in rows[1:]]
    assert idx == list(range(len(idx))), "rows missing in the middle"
    # The child enqueued a row every ~10 ms until the kill; the newest row on disk must be
    # younger than the flush interval (plus slack), i.e. nothing older was lost.
    newest_age_s = (killed_at - int(rows[-1][1])) / 1e9
    assert newest_age_s < INTERVAL_S + MARGIN_S, f"lost {newest_age_s:.3f} s of rows"


def test_a_writer_never_closed_still_saves_every_row_at_exit(tmp_path: Path) -> None:
    """The writer thread is a daemon (a hung disk must not hang the exit), yet a program that
    forgets close() loses nothing: at exit its queue is drained, flushed and fsynced."""
    path = tmp_path / "forgotten.csv"
    code = textwrap.dedent(
        f"""
        from rpi_logger.io.csv_writer import CsvStreamWriter
        w = CsvStreamWriter({str(path)!r}, ["i"], flush_interval_s=3600)
        w.start()
        for i in range(5000):
            w.write_row((i,))
        """
    )
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - t0 < 30
    assert [int(r[0]) for r in complete_rows(path)[1:]] == list(range(5000))
