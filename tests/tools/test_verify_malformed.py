"""`rpi-logger verify` on damaged or hand-edited sessions: an error line, never a traceback.

Each case is something a hostile tryout fed to verify: wrongly typed manifest fields, garbage
rows, values the manifest does not allow, and paths that lead out of the session folder.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import run_cli

from rpi_logger.tools.verify import verify_session

Manifest = dict[str, Any]


def _edit_manifest(session: Path, change: Callable[[Manifest], object]) -> None:
    path = session / "session.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _files(m: Manifest) -> list[dict[str, Any]]:
    return m["trials"][0]["files"]


def _video(m: Manifest) -> dict[str, Any]:
    return next(f for f in _files(m) if f["kind"] == "video")


def _ticker(m: Manifest) -> dict[str, Any]:
    return next(f for f in _files(m) if f["module"] == "Ticker")


def _edit_lines(path: Path, change: Callable[[list[str]], object]) -> None:
    lines = path.read_text().splitlines()
    change(lines)
    path.write_text("\n".join(lines) + "\n")


def _set_cell(lines: list[str], row: int, col: int, value: str) -> None:
    cells = lines[row].split(",")
    cells[col] = value
    lines[row] = ",".join(cells)


def _verify_cli(session: Path) -> tuple[int, str, str]:
    result = run_cli("verify", str(session))
    return result.returncode, result.stdout, result.stderr


# Each case: (what it does to the session, text the ERROR line must hold).
CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    # verify_video.py used int() on every timing cell: ValueError.
    "timing cell not a number": (
        lambda s: _edit_lines(
            next(s.glob("Cameras/*/*_timing.csv")), lambda ls: _set_cell(ls, 4, 1, "soon")
        ),
        "'t_mono_ns' holds values that are not integers",
    ),
    # verify.py indexed a short row in the middle of a CSV: IndexError.
    "short row in the middle": (
        lambda s: _edit_lines(
            next(s.glob("Ticker/*.csv")), lambda ls: ls.__setitem__(3, ls[3].split(",")[0])
        ),
        "line 4 has 1 fields, the header 5",
    ),
    # A module entry that is not an object: AttributeError.
    "module entry is a string": (
        lambda s: _edit_manifest(s, lambda m: m["modules"].__setitem__("Ticker", "ok")),
        "module Ticker: not an object: 'ok'",
    ),
    # The trial start as text: TypeError comparing it with integers.
    "start time as text": (
        lambda s: _edit_manifest(
            s, lambda m: m["trials"][0]["start"].__setitem__("mono_ns", "123")
        ),
        "trial 1: start.mono_ns is not an integer",
    ),
    # No start at all: KeyError.
    "trial without start": (
        lambda s: _edit_manifest(s, lambda m: m["trials"][0].pop("start")),
        "trial 1: no start time",
    ),
    # A manifest nested a million levels deep: RecursionError in the JSON parser.
    "deeply nested manifest": (
        lambda s: (s / "session.json").write_text("[" * 200_000 + "]" * 200_000),
        "session.json: not a manifest: nested too deeply",
    ),
    "trials not a list": (
        lambda s: _edit_manifest(s, lambda m: m.__setitem__("trials", {"1": {}})),
        "trials is not a list",
    ),
    "frames as text": (
        lambda s: _edit_manifest(s, lambda m: _ticker(m).__setitem__("frames", "150")),
        "frames is not a whole number or null: '150'",
    ),
    "files not a list": (
        lambda s: _edit_manifest(s, lambda m: m["trials"][0].__setitem__("files", "all")),
        "trial 1: files is not a list",
    ),
    "file entry not an object": (
        lambda s: _edit_manifest(s, lambda m: _files(m).append(["Ticker", "x.csv"])),
        "trial 1, file 3: file entry is not an object",
    ),
    "path not text": (
        lambda s: _edit_manifest(s, lambda m: _ticker(m).__setitem__("path", 12)),
        "bad path (expected a path relative to the session folder, got 12); not opened",
    ),
    # Things verify used to call OK.
    "unknown kind": (
        lambda s: _edit_manifest(s, lambda m: _ticker(m).__setitem__("kind", "hologram")),
        "unknown kind 'hologram' (expected video, audio, csv)",
    ),
    "bogus trial status": (
        lambda s: _edit_manifest(s, lambda m: m["trials"][0].__setitem__("status", "bogus")),
        "trial 1: unknown status 'bogus' (expected complete, interrupted, recording)",
    ),
    "bogus module status": (
        lambda s: _edit_manifest(s, lambda m: m["modules"]["Ticker"].__setitem__("status", "meh")),
        "module Ticker: unknown status 'meh'",
    ),
    "bogus file status": (
        lambda s: _edit_manifest(s, lambda m: _ticker(m).__setitem__("status", "fine")),
        "unknown status 'fine'",
    ),
    "complete trial without stop": (
        lambda s: _edit_manifest(s, lambda m: m["trials"][0].__setitem__("stop", None)),
        "trial 1: no stop time",
    ),
    "manifest not an object": (
        lambda s: (s / "session.json").write_text("[1, 2]"),
        "not a manifest: a JSON list",
    ),
    "manifest not UTF-8": (
        lambda s: (s / "session.json").write_bytes(b'{"schema": "\xff"}'),
        "session.json: not UTF-8 text",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_input_is_an_error_line_not_a_traceback(session: Path, case: str) -> None:
    damage, expected = CASES[case]
    damage(session)
    code, out, err = _verify_cli(session)
    assert code == 1, out + err
    assert "Traceback" not in err and "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert any(expected in line for line in errors), out
    assert out.splitlines()[-1].startswith("FAILED: ")


def test_a_session_without_trials_is_a_warning(session: Path) -> None:
    """Ctrl-C during set-up ends a session before its first trial: no data, nothing damaged."""
    _edit_manifest(session, lambda m: m.__setitem__("trials", []))
    code, out, err = _verify_cli(session)
    assert code == 0, out + err
    assert any(
        line.startswith("WARNING") and "no trials recorded" in line for line in out.splitlines()
    ), out


def test_a_timing_file_with_a_bad_cell_still_checks_the_rest(session: Path) -> None:
    _edit_lines(next(session.glob("Cameras/*/*_timing.csv")), lambda ls: _set_cell(ls, 4, 1, "x"))
    report = verify_session(session)
    assert not report.ok
    # The video itself is still decoded and counted against its rows.
    assert not any("could not be checked" in f.message for f in report.findings)
    assert report.checked_files == 4


# ---- paths that lead out of the session folder ------------------------------------------------


@contextmanager
def _opened_files() -> Iterator[list[str]]:
    """Every file the interpreter opens meanwhile (audit events), to prove what was not opened."""
    opened: list[str] = []
    _AUDIT_SINKS.append(opened)
    try:
        yield opened
    finally:
        _AUDIT_SINKS.remove(opened)


_AUDIT_SINKS: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _AUDIT_SINKS and isinstance(args[0], str | bytes | os.PathLike):
        for sink in _AUDIT_SINKS:
            sink.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def outside(tmp_path: Path, session: Path) -> Path:
    """A well-formed CSV outside the session folder (a copy of the Ticker file)."""
    target = tmp_path / "elsewhere" / "secret.csv"
    target.parent.mkdir()
    target.write_bytes(next(session.glob("Ticker/*.csv")).read_bytes())
    return target


def _escape_absolute(session: Path, outside: Path) -> str:
    return str(outside)


def _escape_dotdot(session: Path, outside: Path) -> str:
    return os.path.relpath(outside, session)


def _escape_symlink(session: Path, outside: Path) -> str:
    (session / "Ticker" / "link.csv").symlink_to(outside)
    return "Ticker/link.csv"


def _escape_symlinked_folder(session: Path, outside: Path) -> str:
    (session / "Ticker" / "up").symlink_to(outside.parent, target_is_directory=True)
    return f"Ticker/up/{outside.name}"


@pytest.mark.parametrize(
    ("escape", "why"),
    [
        (_escape_absolute, "absolute path"),
        (_escape_dotdot, "leaves the session folder ('..')"),
        (_escape_symlink, "leads outside the session folder"),
        (_escape_symlinked_folder, "leads outside the session folder"),
    ],
)
@pytest.mark.parametrize("field", ["path", "timing"])
def test_paths_leaving_the_session_are_errors_and_never_opened(
    session: Path,
    outside: Path,
    escape: Callable[[Path, Path], str],
    why: str,
    field: str,
) -> None:
    rel = escape(session, outside)
    _edit_manifest(session, lambda m: _ticker(m).__setitem__(field, rel))
    with _opened_files() as opened:
        report = verify_session(session)
    assert not report.ok
    errors = [f"{f.where}: {f.message}" for f in report.findings if f.level == "error"]
    assert any(why in e and "not opened" in e for e in errors), errors
    assert not [p for p in opened if Path(p).name == outside.name], opened


def test_a_symlink_inside_the_session_is_fine(session: Path) -> None:
    csv_path = next(session.glob("Ticker/*.csv"))
    (session / "Ticker" / "alias.csv").symlink_to(csv_path.name)
    _edit_manifest(session, lambda m: _ticker(m).__setitem__("path", "Ticker/alias.csv"))
    assert verify_session(session).ok


def test_a_session_folder_that_is_missing_or_a_file(tmp_path: Path) -> None:
    for target in (tmp_path / "nope", tmp_path / "file"):
        if target.name == "file":
            target.write_text("x")
        code, out, err = _verify_cli(target)
        assert code == 1 and "Traceback" not in err
        assert "session.json: missing: not a session folder" in out


def test_an_empty_window_video_is_a_warning_but_a_lost_video_is_not(session: Path) -> None:
    """A stop at a trial's very start leaves a 0-frame video that was never written (0 bytes,
    or no file from ffmpeg): nothing is lost. A video the manifest says has frames must exist."""
    video = session / _video(json.loads((session / "session.json").read_text()))["path"]
    video.write_bytes(b"")
    code, out, _ = _verify_cli(session)
    assert code == 1 and "ERROR" in out  # the manifest still says it holds frames

    def empty(m: Manifest) -> None:
        entry = _video(m)
        entry["frames"] = 0
        (session / entry["timing"]).write_text(
            (session / entry["timing"]).read_text().splitlines()[0] + "\n"
        )

    _edit_manifest(session, empty)
    code, out, _ = _verify_cli(session)
    assert code == 0, out
    assert any("no frames" in line for line in out.splitlines() if line.startswith("WARNING"))
    video.unlink()
    code, out, _ = _verify_cli(session)
    assert code == 0, out
