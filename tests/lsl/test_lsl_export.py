"""`rpi-logger export --xdf` of a whole session, read back with pyxdf (inside the namespace,
since the session records an LSL inlet stream)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyxdf
from tests.helpers import run_cli
from tests.lsl.test_lsl_inlets import publisher, session_of


def test_export_xdf_holds_every_stream_with_its_exact_times(tmp_path: Path) -> None:
    """Must show: cameras, simulated gaze, notes and an inlet stream; pyxdf returns every
    stream with the CSV's sample count and time stamps (within 1 µs)."""
    with publisher("Inlet100", 100, 60):
        result = run_cli(
            "record", "--modules", "Cameras,EyeTracker,Notes,LSL", "--duration", "3",
            "--simulate", "--data-dir", str(tmp_path),
            "--set", "lsl.stream_name=Inlet100", "--set", "eyetracker.scene=false",
            "--set", "cameras.synthetic_count=1", "--set", "cameras.width=512",
            "--set", "cameras.height=288", "--set", "cameras.fps=15",
        )  # fmt: skip
    session = session_of(result)
    out = tmp_path / "session.xdf"
    export = run_cli("export", str(session), "--xdf", str(out))
    assert export.returncode == 0, export.stdout + export.stderr
    assert "export xdf" in export.stderr  # the progress bar

    streams, header = pyxdf.load_xdf(str(out))  # pyxdf's defaults: clock sync and dejitter on
    by_name = {s["info"]["name"][0]: s for s in streams}
    csvs = sorted(p for p in session.rglob("*.csv"))
    assert set(by_name) == {str(p.relative_to(session).with_suffix("")) for p in csvs}
    for name in (
        "Cameras/synthetic0/trial001_synthetic0_timing",
        "EyeTracker/neon-sim/trial001_gaze",
        "Notes/notes",
        "LSL/Inlet100/trial001_Inlet100",
        "LSL/Inlet100/trial001_time_sync",
    ):
        assert any(n.endswith(name.split("/", 2)[-1]) for n in by_name), name
    for path in csvs:
        stream = by_name[str(path.relative_to(session).with_suffix(""))]
        with path.open() as f:
            rows = list(csv.DictReader(f))
        t = np.array([int(r["t_mono_ns"]) for r in rows], dtype=np.int64)
        stamps = np.asarray(stream["time_stamps"])
        assert len(stamps) == len(rows), path
        if len(rows):
            assert np.max(np.abs(stamps - t / 1e9)) < 1e-6, path
    gaze = next(s for n, s in by_name.items() if n.endswith("trial001_gaze"))
    labels = [c["label"][0] for c in gaze["info"]["desc"][0]["channels"][0]["channel"]]
    x = np.asarray(gaze["time_series"])[:, labels.index("x")]
    s = np.asarray(gaze["time_stamps"])
    assert np.allclose(x, 800 + 600 * np.sin(2 * np.pi * s / 4), atol=0.5)  # design.md §7 gaze
    inlet = by_name["LSL/Inlet100/trial001_Inlet100"]
    labels = [c["label"][0] for c in inlet["info"]["desc"][0]["channels"][0]["channel"]]
    values = np.asarray(inlet["time_series"])
    assert np.max(np.abs(values[:, labels.index("t")] - inlet["time_stamps"])) < 0.001
    events = next(s for n, s in by_name.items() if n.endswith("trial001_events"))
    assert events["info"]["channel_format"][0] == "string"
    assert header["info"]["version"][0] == "1.0"
