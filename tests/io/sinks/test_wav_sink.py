"""WavSink: every channel of every block in the WAV, one timing row per block, and a header that
ordinary tools read while the file is still being written (what a crash leaves)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rpi_logger.io.sinks.wav_sink import SUBTYPES, TIMING_COLUMNS, WavSink
from rpi_logger.samples import AudioBlock

RATE = 48_000
NS = 1_000_000_000


def _blocks(count: int, frames: int, channels: int, dtype: str, t0: int = 10 * NS) -> list:
    rng = np.random.default_rng(1)
    out = []
    for j in range(count):
        if dtype == "float32":
            data = rng.uniform(-0.9, 0.9, (frames, channels)).astype(np.float32)
        else:
            info = np.iinfo(dtype)
            data = rng.integers(info.min // 2, info.max // 2, (frames, channels), dtype=dtype)
            if dtype == "int32":
                data &= ~0xFF  # 24-bit audio travels left-aligned in int32
        t = t0 + j * frames * NS // RATE
        out.append(AudioBlock(data, t, t / 1e9, t + 7, RATE, j, j * frames))
    return out


@pytest.mark.parametrize("subtype", list(SUBTYPES))
def test_every_channel_and_sample_comes_back(tmp_path: Path, subtype: str) -> None:
    dtype = SUBTYPES[subtype]
    blocks = _blocks(10, 480, 3, dtype)
    sink = WavSink(
        tmp_path / "a.wav", tmp_path / "a.csv", sample_rate=RATE, channels=3, subtype=subtype
    )
    sink.open()
    sink.write(blocks[:4])
    sink.write(blocks[4:])
    sink.close()
    data, rate = sf.read(tmp_path / "a.wav", dtype=dtype, always_2d=True)
    assert rate == RATE and sf.info(tmp_path / "a.wav").subtype == subtype
    np.testing.assert_array_equal(data, np.concatenate([b.data for b in blocks]))
    with (tmp_path / "a.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(TIMING_COLUMNS)
    assert [int(r["sample_index"]) for r in rows] == [480 * j for j in range(10)]
    assert [int(r["t_mono_ns"]) for r in rows] == [b.t_mono_ns for b in blocks]
    assert [int(r["t_device_ns"]) for r in rows] == [b.t_mono_ns + 7 for b in blocks]
    assert sum(int(r["frames"]) for r in rows) == len(data) == sink.samples


def test_header_is_valid_after_each_flush_while_open(tmp_path: Path) -> None:
    """What `kill -9` would find: the stdlib `wave` module (which trusts the header) reads every
    sample up to the last flush."""
    sink = WavSink(tmp_path / "a.wav", tmp_path / "a.csv", sample_rate=RATE, channels=2)
    sink.open()
    with wave.open(str(tmp_path / "a.wav")) as w:  # a valid, empty WAV from the start
        assert w.getnframes() == 0 and w.getnchannels() == 2
    blocks = _blocks(6, 480, 2, "int16")
    for n in (2, 4):
        sink.write(blocks[n - 2 : n])
        sink.flush()
        with wave.open(str(tmp_path / "a.wav")) as w:
            assert w.getnframes() == 480 * n
            got = np.frombuffer(w.readframes(480 * n), np.int16).reshape(-1, 2)
        np.testing.assert_array_equal(got, np.concatenate([b.data for b in blocks[:n]]))
        assert len((tmp_path / "a.csv").read_text().splitlines()) == 1 + n
    sink.close()


def test_killed_writer_leaves_a_playable_file(tmp_path: Path) -> None:
    """A process that wrote, flushed, wrote more and died: the header covers the flushed part,
    the rows at least that, and the data at least the rows (header <= rows <= data)."""
    script = f"""
import os, numpy as np
from rpi_logger.io.sinks.wav_sink import WavSink
from rpi_logger.samples import AudioBlock
s = WavSink({str(tmp_path / "a.wav")!r}, {str(tmp_path / "a.csv")!r}, sample_rate=48000, channels=1)
s.open()
for j in range(20):
    block = np.full((480, 1), j, np.int16)
    s.write([AudioBlock(block, j * 10_000_000, 0.0, None, 48000, j, j * 480)])
    if j == 9:
        s.flush()
os._exit(9)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    with wave.open(str(tmp_path / "a.wav")) as w:
        header = w.getnframes()
    rows = (tmp_path / "a.csv").read_text().splitlines()[1:]
    data = (os.path.getsize(tmp_path / "a.wav") - 44) // 2
    assert header == 4800 and len(rows) >= 10 and data == 9600
    assert header <= 480 * len(rows) <= data


def test_block_of_the_wrong_shape_is_a_clear_error(tmp_path: Path) -> None:
    sink = WavSink(tmp_path / "a.wav", tmp_path / "a.csv", sample_rate=RATE, channels=2)
    sink.open()
    with pytest.raises(Exception, match="1 channels at 48000 Hz in a file of 2"):
        sink.write(_blocks(1, 480, 1, "int16"))
    sink.abort()
