"""The Cameras module's encoding capacity: measured, cached, and a warning naming what fits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rpi_logger.io.sinks.video import VideoSettings
from rpi_logger.modules.cameras import capacity


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_measured_once_then_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "MEASURE_S", 0.3)
    calls = []
    real = capacity.measure_fps

    def counting(*args: object, **kw: object) -> float:
        calls.append(args)
        return real(*args, seconds=0.3)  # type: ignore[arg-type]

    monkeypatch.setattr(capacity, "measure_fps", counting)
    first = capacity.assess(1, 640, 480, 15, VideoSettings())
    again = capacity.assess(1, 640, 480, 15, VideoSettings())
    assert len(calls) == 1
    assert first["capacity_fps"] == again["capacity_fps"] > 0
    cached = json.loads(capacity.cache_path().read_text())
    [key] = cached
    assert "640x480" in key and "superfast" in key and "rgb24" in key and cached[key]["fps"] > 0


def test_a_rig_beyond_capacity_is_told_what_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    measured = {"superfast": 40.0, "ultrafast": 90.0}
    monkeypatch.setattr(capacity, "measure_fps", lambda n, w, h, s, seconds=1.0: measured[s.preset])
    verdict = capacity.assess(2, 1280, 720, 30, VideoSettings(preset="superfast"))
    assert not verdict["fits"]
    assert verdict["need_fps"] == 60 and verdict["capacity_fps"] == 40
    warning = verdict["warning"]
    assert "2 camera(s) at 1280x720 and 30 fps need 60 frames/s" in warning
    assert "fps = 16" in warning  # 40 * 0.8 / 2
    # The largest 16:9 size within the pixel rate: 60 * 640*360 <= 32 * 1280*720 (960x540 not).
    assert "width = 640, height = 360" in warning
    assert "preset = ultrafast (measured 90 frames/s)" in warning
    assert "at most 1 camera(s)" in warning


def test_a_rig_within_capacity_says_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "measure_fps", lambda *a, **k: 200.0)
    verdict = capacity.assess(2, 1280, 720, 30, VideoSettings())
    assert verdict["fits"] and verdict["warning"] is None
