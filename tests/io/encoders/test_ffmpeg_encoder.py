"""ffmpeg encoder: the same guarantees as the PyAV encoder, through a system ffmpeg."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from tests.io.encoders.camera_video_checks import (
    check_video,
    ffprobe_pts,
    irregular_frames,
    record_live,
    submit_all,
)

from rpi_logger.io.encoders import EncoderError, FFmpegEncoder, FFmpegSettings, WrittenFrame
from rpi_logger.io.encoders.ffmpeg_encoder import build_command
from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg on PATH")


async def test_live_720p_three_seconds_exact(tmp_path: Path) -> None:
    rows: list[WrittenFrame] = []
    threads: set[int] = set()

    def on_written(w: WrittenFrame) -> None:
        threads.add(threading.get_ident())
        rows.append(w)

    enc = FFmpegEncoder(on_written=on_written)
    path = tmp_path / "live.mp4"
    frames, start, _ = await record_live(enc, path, 3.0, 1280, 720, 30)
    assert enc.returncode == 0
    stats = enc.stats
    assert 85 <= len(frames) <= 95
    assert stats.frames_written == len(frames) and stats.dropped == 0
    assert threading.get_ident() not in threads
    pts = check_video(path, frames, start, rows)
    assert 0.1 <= pts[0] <= 0.3
    probed = ffprobe_pts(path)
    assert max(abs(a - b) for a, b in zip(probed, pts, strict=True)) < 2e-6


@pytest.mark.parametrize("pixel_format", ["rgb24", "yuv420p"])
async def test_variable_intervals_stay_variable(tmp_path: Path, pixel_format: str) -> None:
    src = SyntheticSource(width=640, height=480, pixel_format=pixel_format)
    start = 7_000_000_000_000
    frames = irregular_frames(src, 60, start + 120_000_000, seed=11)
    enc = FFmpegEncoder(queue_size=100)
    path = tmp_path / f"vfr_{pixel_format}.mp4"
    await enc.open(path, 640, 480, 30, start)
    assert all(await submit_all(enc, frames))
    stats = await enc.close()
    assert stats.frames_written == 60
    pts = check_video(path, frames, start)
    got = np.diff(pts)
    want = np.diff([f.t_mono_ns for f in frames]) / 1e9
    assert np.max(np.abs(got - want)) < 2e-6
    assert np.std(got) > 0.015


def test_command_keeps_timestamps() -> None:
    cmd = build_command(FFmpegSettings(encoder="h264_v4l2m2m"), 30, "/x.mp4")
    for flag in ("-copyts", "-enc_time_base", "-fps_mode", "-use_editlist", "-movie_timescale"):
        assert flag in cmd
    assert cmd[cmd.index("-c:v") + 1] == "h264_v4l2m2m"
    assert "frag_keyframe+delay_moov" in cmd


async def test_unknown_encoder_reports_ffmpegs_reason(tmp_path: Path) -> None:
    src = SyntheticSource(width=512, height=64)
    enc = FFmpegEncoder(FFmpegSettings(encoder="no_such_encoder"), queue_size=10)
    await enc.open(tmp_path / "bad.mp4", 512, 64, 30, 0)
    for k in range(3):
        enc.submit(src.make_frame(k, (k + 1) * 33_000_000))
    with pytest.raises(EncoderError, match="ffmpeg"):
        await enc.close()
    assert enc.returncode not in (0, None)


async def test_missing_ffmpeg_binary(tmp_path: Path) -> None:
    enc = FFmpegEncoder(FFmpegSettings(ffmpeg="ffmpeg-that-does-not-exist"))
    with pytest.raises(EncoderError, match="not found"):
        await enc.open(tmp_path / "x.mp4", 640, 480, 30, 0)


async def test_trial_without_frames_closes_cleanly(tmp_path: Path) -> None:
    enc = FFmpegEncoder()
    await enc.open(tmp_path / "empty.mp4", 640, 480, 30, 0)
    stats = await enc.close()
    assert stats.frames_written == 0 and stats.dropped == 0
