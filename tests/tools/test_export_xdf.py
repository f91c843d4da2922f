"""The XDF writer on its own: string and numeric streams, empty cells, a torn last line, and a
folder that is no session (no LSL here: the whole-session export is in tests/lsl)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyxdf
from tests.helpers import run_cli

from rpi_logger.tools.export_xdf import ExportError, write_xdf


def _session(folder: Path) -> Path:
    session = folder / "session_20261129_101010"
    (session / "Notes").mkdir(parents=True)
    (session / "Thing" / "dev").mkdir(parents=True)
    (session / "session.json").write_text(
        json.dumps({"schema": "rpi-logger/session/1", "session_id": session.name, "trials": []})
    )
    (session / "Notes" / "notes.csv").write_text(
        "note_index,t_mono_ns,t_wall_unix,text\n"
        '0,1000000000123,1795000000.5,"a note, with a comma"\n'
        '1,1000500000456,1795000001.0,"ünïcode\nand a line break"\n'
    )
    (session / "Thing" / "dev" / "trial001_thing.csv").write_text(
        "t_mono_ns,t_wall_unix,x,y\n"
        "12345678901234,1795000000.25,1.5,\n"
        "12345688901234,1795000000.26,-2.25,7\n"
        "1234569890"  # torn by a crash: not a sample
    )
    (session / "Thing" / "dev" / "other.csv").write_text("a,b\n1,2\n")  # no t_mono_ns
    return session


def test_strings_numbers_and_exact_times_read_back_with_pyxdf(tmp_path: Path) -> None:
    session = _session(tmp_path)
    out = tmp_path / "out.xdf"
    summary = dict(write_xdf(session, out, progress=False))
    assert summary == {"Notes/notes": 2, "Thing/dev/trial001_thing": 2}
    streams, _ = pyxdf.load_xdf(str(out))
    by_name = {s["info"]["name"][0]: s for s in streams}
    notes = by_name["Notes/notes"]
    assert notes["info"]["channel_format"][0] == "string"
    assert [row[-1] for row in notes["time_series"]] == [
        "a note, with a comma",
        "ünïcode\nand a line break",
    ]
    assert list(notes["time_stamps"]) == [1000000000123 / 1e9, 1000500000456 / 1e9]
    thing = by_name["Thing/dev/trial001_thing"]
    assert thing["info"]["channel_format"][0] == "double64"
    rows = thing["time_series"].tolist()
    assert rows[0][1:2] == [1.5] and math.isnan(rows[0][2]) and rows[1][1:] == [-2.25, 7.0]
    assert list(thing["time_stamps"]) == [12345678901234 / 1e9, 12345688901234 / 1e9]


def test_a_folder_that_is_no_session_is_one_line(tmp_path: Path) -> None:
    try:
        write_xdf(tmp_path, tmp_path / "x.xdf", progress=False)
    except ExportError as exc:
        assert "no session.json" in str(exc)
    else:
        raise AssertionError("no error")
    result = run_cli("export", str(tmp_path), "--xdf", str(tmp_path / "x.xdf"))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no session.json" in result.stderr
