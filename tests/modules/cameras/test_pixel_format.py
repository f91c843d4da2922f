"""`pixel_format = yuv420p`: cameras capture what the encoder takes, and the video is the same
recording (every frame, its simulated content, its timing row)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.helpers import run_cli

from rpi_logger.modules.cameras.module import make_source
from rpi_logger.modules.cameras.sources import backend_class
from rpi_logger.simulation.barcode import read_video_barcodes


def test_the_setting_reaches_the_simulated_camera() -> None:
    [desc] = backend_class("synthetic").list_cameras(1)  # type: ignore[call-arg]
    settings = {"width": 640, "height": 480, "fps": 15.0, "pixel_format": "yuv420p"}
    assert make_source(desc, settings).info.pixel_format == "yuv420p"
    settings["pixel_format"] = "rgb24"
    assert make_source(desc, settings).info.pixel_format == "rgb24"


def test_yuv420p_recording_is_complete(tmp_path: Path) -> None:
    result = run_cli(
        "record", "--modules", "cameras", "--duration", "2", "--simulate",
        "--data-dir", str(tmp_path),
        "--set", "cameras.pixel_format=yuv420p", "--set", "cameras.synthetic_count=1",
        "--set", "cameras.width=640", "--set", "cameras.height=480",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    session = Path(result.stdout.strip().splitlines()[-1])
    [entry] = json.loads((session / "session.json").read_text())["trials"][0]["files"]
    with (session / entry["timing"]).open(newline="") as f:
        rows = list(csv.DictReader(f))
    scan = read_video_barcodes(session / entry["path"])
    assert scan.error is None
    assert len(scan.frames) == len(rows) == entry["frames"] >= 50
    counters = [frame.counter for frame in scan.frames]
    assert counters == list(range(counters[0], counters[0] + len(counters)))
    assert run_cli("verify", str(session)).returncode == 0
