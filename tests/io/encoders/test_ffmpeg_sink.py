"""The ffmpeg video sink: the same guarantees as the PyAV sink, through a system ffmpeg."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.io.encoders.camera_video_checks import (
    check_video,
    ffprobe_pts,
    irregular_frames,
    make_sink,
    record_live,
    submit_all,
    writing,
)

from rpi_logger.io.sinks import SinkError
from rpi_logger.io.sinks.video import FFmpegSink, VideoSettings, build_command
from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg on PATH")


async def test_live_720p_three_seconds_exact(tmp_path: Path) -> None:
    path = tmp_path / "live.mp4"
    frames, origin = await record_live("ffmpeg", path, 3.0, 1280, 720, 30)
    assert 85 <= len(frames) <= 95
    pts = check_video(path, frames, origin)
    assert 0.1 <= pts[0] <= 0.3
    probed = ffprobe_pts(path)
    assert max(abs(a - b) for a, b in zip(probed, pts, strict=True)) < 2e-6


@pytest.mark.parametrize("pixel_format", ["rgb24", "yuv420p"])
async def test_variable_intervals_stay_variable(tmp_path: Path, pixel_format: str) -> None:
    src = SyntheticSource(width=640, height=480, pixel_format=pixel_format)
    origin = 7_000_000_000_000
    frames = irregular_frames(src, 60, origin + 120_000_000, seed=11)
    path = tmp_path / f"vfr_{pixel_format}.mp4"
    sink = make_sink("ffmpeg", path, 640, 480, origin)
    async with writing(sink, max_queue=100) as writer:
        assert all(await submit_all(writer, frames))
    assert sink.frames == 60 and sink.returncode == 0
    pts = check_video(path, frames, origin)
    got = np.diff(pts)
    want = np.diff([f.t_mono_ns for f in frames]) / 1e9
    assert np.max(np.abs(got - want)) < 2e-6
    assert np.std(got) > 0.015


def test_command_keeps_timestamps() -> None:
    cmd = build_command(VideoSettings(encoder="ffmpeg", codec="h264_v4l2m2m"), 30, "/x.mp4")
    for flag in ("-copyts", "-enc_time_base", "-fps_mode", "-use_editlist", "-movie_timescale"):
        assert flag in cmd
    assert cmd[cmd.index("-c:v") + 1] == "h264_v4l2m2m"
    assert "frag_keyframe+delay_moov" in cmd


async def test_unknown_encoder_reports_ffmpegs_reason(tmp_path: Path) -> None:
    src = SyntheticSource(width=512, height=64)
    sink = make_sink("ffmpeg", tmp_path / "bad.mp4", 512, 64, 0, codec="no_such_encoder")
    with pytest.raises(SinkError, match="ffmpeg"):
        async with writing(sink, max_queue=10) as writer:
            for k in range(3):
                writer.submit(src.make_frame(k, (k + 1) * 33_000_000))
    assert sink.returncode not in (0, None)


async def test_missing_ffmpeg_binary(tmp_path: Path) -> None:
    sink = make_sink("ffmpeg", tmp_path / "x.mp4", 640, 480, 0, ffmpeg="ffmpeg-not-there")
    with pytest.raises(SinkError, match="not found"):
        await sink.astart()


async def test_trial_without_frames_closes_cleanly(tmp_path: Path) -> None:
    sink = make_sink("ffmpeg", tmp_path / "empty.mp4", 640, 480, 0)
    assert isinstance(sink, FFmpegSink)
    async with writing(sink) as writer:
        pass
    assert sink.frames == 0 and writer.stats().dropped == 0
