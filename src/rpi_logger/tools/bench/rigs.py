"""The rigs `rpi-logger bench` records: which modules, with which settings, notes how often."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RIGS", "Rig"]


@dataclass(frozen=True, slots=True)
class Rig:
    """One simulated rig: modules started (canonical names), their settings, the note rate."""

    name: str
    description: str
    modules: tuple[str, ...]
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    note_interval_s: float = 0.5  # a note through the HTTP API this often (0: none)


_TWO_CAMERAS = {"synthetic_count": 2, "width": 1280, "height": 720, "fps": 30}
_NEON = {"sim_scene_width": 1600, "sim_scene_height": 1200, "sim_scene_fps": 30, "scene": True}
_ONE_MIC = {"sample_rate": 48000, "blocksize": 480}

RIGS: dict[str, Rig] = {
    rig.name: rig
    for rig in (
        Rig(
            "full",
            "design.md §10: two cameras 1280x720 at 30 fps, the simulated Neon (scene 1600x1200 at "
            "30 fps, gaze 200 Hz, IMU 110 Hz), one microphone at 48 kHz, a note every 0.5 s",
            ("Cameras", "EyeTracker", "Audio", "Notes"),
            {"Cameras": _TWO_CAMERAS, "EyeTracker": _NEON, "Audio": _ONE_MIC},
        ),
        Rig(
            "full-yuv420p",
            "the full rig with the cameras capturing yuv420p (pixel_format = yuv420p)",
            ("Cameras", "EyeTracker", "Audio", "Notes"),
            {
                "Cameras": {**_TWO_CAMERAS, "pixel_format": "yuv420p"},
                "EyeTracker": _NEON,
                "Audio": _ONE_MIC,
            },
        ),
        Rig(
            "cameras",
            "two cameras 1280x720 at 30 fps and a note every 0.5 s",
            ("Cameras", "Notes"),
            {"Cameras": _TWO_CAMERAS},
        ),
        Rig(
            "cameras-ffmpeg",
            "two cameras 1280x720 at 30 fps encoded by a separate ffmpeg process each (libx264, "
            "same preset; raw frames through a pipe) and a note every 0.5 s",
            ("Cameras", "Notes"),
            {"Cameras": {**_TWO_CAMERAS, "encoder": "ffmpeg", "ffmpeg_codec": "libx264"}},
        ),
        Rig(
            "camera",
            "one camera 1280x720 at 30 fps and a note every 0.5 s",
            ("Cameras", "Notes"),
            {"Cameras": {**_TWO_CAMERAS, "synthetic_count": 1}},
        ),
        Rig(
            "eyetracker",
            "the simulated Neon (scene 1600x1200 at 30 fps, gaze, IMU) and a note every 0.5 s",
            ("EyeTracker", "Notes"),
            {"EyeTracker": _NEON},
        ),
        Rig(
            "audio",
            "one microphone at 48 kHz and a note every 0.5 s",
            ("Audio", "Notes"),
            {"Audio": _ONE_MIC},
        ),
        Rig("notes", "Notes alone, a note every 0.5 s", ("Notes",)),
        Rig(
            "tiny",
            "one camera 640x480 at 15 fps, one microphone, a note every 0.25 s (for tests)",
            ("Cameras", "Audio", "Notes"),
            {
                "Cameras": {"synthetic_count": 1, "width": 640, "height": 480, "fps": 15},
                "Audio": _ONE_MIC,
            },
            note_interval_s=0.25,
        ),
    )
}
