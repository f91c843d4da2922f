"""Encoding capacity: how many frames per second this machine's encoder keeps up with.

A rig can ask for more than the CPU can encode (two 1280x720 cameras at 30 fps with x264 on two
slow cores): frames then pile up in the encoder queues and are dropped, and the first anyone
hears of it is the drop count after the trial. So the module measures, once per machine and
setting, the frames/s its configured cameras' encoders sustain together (the same `H264Codec`
the sinks use, one thread per camera, simulated-scene frames of the configured size), keeps the
figure in a small cache file, and when the cameras ask for more it says so before any trial
starts (log warning -> the UI's warnings, the module's status, the manifest's device entries)
with settings that would fit.

Only the in-process PyAV encoder is measured; an ffmpeg encoder (a hardware one, say) is not.
Each figure is measured once (on a busy machine it comes out low); delete the cache file to
measure again. Scene content matters to x264: real cameras may encode faster or slower.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rpi_logger.io.atomic import atomic_write_text
from rpi_logger.io.sinks.video import VideoSettings
from rpi_logger.io.sinks.video.mp4 import H264Codec

__all__ = ["HEADROOM", "assess", "cache_path", "measure_fps"]

log = logging.getLogger("rpi_logger.cameras")

#: The share of the measured capacity a rig may use: capture, previews, the loops and the
#: other modules need CPU too.
HEADROOM = 0.8
#: Seconds of encoding per measurement.
MEASURE_S = 1.0
#: Sizes offered when a smaller picture would fit (16:9 and 4:3 steps down).
SIZES = [(1920, 1080), (1600, 1200), (1280, 960), (1280, 720), (1024, 768), (1024, 576),
         (960, 540), (800, 600), (640, 480), (640, 360)]  # fmt: skip


def cache_path() -> Path:
    """`$XDG_CACHE_HOME/rpi-logger/encoding_capacity.json` (default under `~/.cache`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rpi-logger" / "encoding_capacity.json"


def _machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cores"


def _key(encoders: int, width: int, height: int, settings: VideoSettings, fmt: str) -> str:
    return (
        f"{_machine()}|{settings.codec}|{settings.preset}|{settings.tune}|crf{settings.crf}|"
        f"threads{settings.threads}|{width}x{height}|{fmt}|x{encoders}"
    )


def _frames(width: int, height: int, fmt: str, n: int = 8) -> list[Any]:
    from rpi_logger.modules.cameras.sources.synthetic import SyntheticSource

    source = SyntheticSource(width=width, height=height, pixel_format=fmt)  # type: ignore[arg-type]
    source.prepare()
    return [source.make_frame(k, k * 33_333_333) for k in range(n)]


def measure_fps(
    encoders: int,
    width: int,
    height: int,
    settings: VideoSettings,
    fmt: str = "rgb24",
    seconds: float = MEASURE_S,
) -> float:
    """Frames/s that `encoders` encoders of `width`x`height` frames in pixel format `fmt`
    sustain together (the conversion to yuv420p included), each on its own thread, encoding as
    fast as they can for `seconds` (blocking: run it off the loop)."""
    frames = _frames(width, height, fmt)
    counts = [0] * encoders
    errors: list[BaseException] = []
    start = threading.Barrier(encoders + 1)

    def encode(i: int) -> None:
        try:
            codec = H264Codec(settings, width, height, 30.0)
            codec.open()
            start.wait()
            deadline = time.monotonic() + seconds
            k = 0
            while time.monotonic() < deadline:
                codec.encode(frames[k % len(frames)], k * 33_333)
                k += 1
            counts[i] = k
            codec.flush()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=encode, args=(i,), daemon=True) for i in range(encoders)]
    for t in threads:
        t.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts) / seconds


def _cached(key: str) -> float | None:
    try:
        return float(json.loads(cache_path().read_text())[key]["fps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(key: str, fps: float) -> None:
    path = cache_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    data[key] = {"fps": round(fps, 1), "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    except OSError as exc:  # a read-only home: measure again next time
        log.debug("encoding capacity not cached: %s", exc)


def capacity_fps(
    encoders: int, width: int, height: int, settings: VideoSettings, fmt: str = "rgb24"
) -> float:
    """The cached figure, else measured now and cached (blocking)."""
    key = _key(encoders, width, height, settings, fmt)
    fps = _cached(key)
    if fps is None:
        fps = measure_fps(encoders, width, height, settings, fmt)
        _store(key, fps)
    return fps


def assess(
    cameras: int,
    width: int,
    height: int,
    fps: float,
    settings: VideoSettings,
    fmt: str = "rgb24",
) -> dict[str, Any]:
    """Whether `cameras` cameras of `width`x`height` at `fps` fit this machine's encoder.

    Returns `{"need_fps", "capacity_fps", "preset", "fits", "warning"}`; the warning (None
    when it fits) names the settings that would fit: a lower rate, a smaller picture (scaled by
    pixel rate from the measured figure), a faster preset (measured too), fewer cameras.
    Blocking: may encode for a second or two.
    """
    need = cameras * fps
    have = capacity_fps(cameras, width, height, settings, fmt)
    out: dict[str, Any] = {
        "cameras": cameras,
        "need_fps": round(need, 1),
        "capacity_fps": round(have, 1),
        "preset": settings.preset,
        "headroom": HEADROOM,
        "fits": need <= have * HEADROOM,
        "warning": None,
    }
    if out["fits"]:
        return out
    usable = have * HEADROOM
    options = [f"fps = {max(1, math.floor(usable / cameras))}"]
    pixel_rate = usable * width * height  # pixels/s the encoders keep up with
    smaller = [(w, h) for w, h in SIZES if w * h < width * height]
    same_shape = [(w, h) for w, h in smaller if abs(w / h - width / height) < 0.02]
    for w, h in same_shape or smaller:  # largest first
        if cameras * fps * w * h <= pixel_rate:
            options.append(f"width = {w}, height = {h} (estimated)")
            break
    if settings.preset != "ultrafast":
        fast = replace(settings, preset="ultrafast")
        quick = capacity_fps(cameras, width, height, fast, fmt)
        if need <= quick * HEADROOM:
            options.append(f"preset = ultrafast (measured {quick:.0f} frames/s)")
    if cameras > 1 and usable >= fps:
        options.append(f"at most {math.floor(usable / fps)} camera(s) at these settings")
    out["warning"] = (
        f"{cameras} camera(s) at {width}x{height} and {fps:g} fps need {need:.0f} frames/s, "
        f"more than this machine's encoder keeps up with at preset {settings.preset} "
        f"({have:.0f} frames/s measured, {HEADROOM:.0%} of it usable): frames will be "
        f"dropped. Would fit: {'; or '.join(options)}"
    )
    return out
