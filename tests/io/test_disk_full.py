"""A full disk (ENOSPC) on a real file system: the CSV writer says so once, in one line, keeps
its producers moving, and closes promptly with an error the caller can put in the manifest.
(Video sinks: tests/io/encoders/test_video_disk_full.py.)
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from tests.io.small_fs import fill, small_tmpfs

from rpi_logger.io.csv_writer import CsvStreamWriter
from rpi_logger.io.sinks import SinkError

COLS = ["i", "t_mono_ns", "text"]


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 2 MB tmpfs; fill it with `fill(path)` once the files under test are open."""
    with small_tmpfs(tmp_path / "small", "2m") as path:
        yield path


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_csv_writer_on_a_full_disk(full_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    path = full_disk / "rows.csv"
    w = CsvStreamWriter(path, COLS, flush_interval_s=0.05, max_queue=64, overflow="block")
    w.start()
    fill(full_disk)
    accepted: list[bool] = []
    longest = 0.0

    def produce() -> None:
        nonlocal longest
        for i in range(5000):  # ~500 kB of rows: far more than the page the header left
            t = time.monotonic()
            accepted.append(w.write_row((i, time.monotonic_ns(), "x" * 80)))
            longest = max(longest, time.monotonic() - t)

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(30)
    assert not producer.is_alive(), "a producer blocked on a writer that hit a full disk"
    assert longest < 5.0
    assert accepted.count(False) > 0  # rows refused once the writer stopped
    t = time.monotonic()
    with pytest.raises(SinkError, match=f"^disk full: {path}$"):
        w.close(timeout=10)
    assert time.monotonic() - t < 5.0
    w.close()  # reported once
    errors = _errors(caplog)
    assert [r.getMessage() for r in errors] == [f"disk full: {path}"]
    assert errors[0].exc_info is None and "Traceback" not in caplog.text
    # The file ends with a whole row (no half row the full disk took) and holds what it says.
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    rows = text.splitlines()[1:]
    assert len(rows) == w.stats().written
    assert [int(r.split(",")[0]) for r in rows] == list(range(len(rows)))
    assert w.stats().dropped + w.stats().written == 5000
