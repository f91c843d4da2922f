"""`rpi-logger verify` finds what is wrong with a session, and only that."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.helpers import run_cli

from rpi_logger.tools.verify import verify_session


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real session: Ticker (100 Hz CSV), Notes and one simulated camera, one trial."""
    root = tmp_path_factory.mktemp("verify")
    modules = root / "modules"
    shutil.copytree(
        Path(__file__).parents[1] / "fixtures" / "modules" / "ticker", modules / "ticker"
    )
    result = run_cli(
        "record",
        "--modules",
        "ticker,cameras",
        "--duration",
        "1.5",
        "--simulate",
        "--data-dir",
        str(root / "data"),
        "--module-dir",
        str(modules),
        "--set",
        "cameras.synthetic_count=1",
        "--set",
        "cameras.width=640",
        "--set",
        "cameras.height=480",
        env={"XDG_STATE_HOME": str(root / "state"), "XDG_CONFIG_HOME": str(root / "config")},
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.split()[-1])


@pytest.fixture
def session(recorded: Path, tmp_path: Path) -> Path:
    copy = tmp_path / recorded.name
    shutil.copytree(recorded, copy)
    return copy


def _messages(session: Path, level: str) -> list[str]:
    return [f"{f.where}: {f.message}" for f in verify_session(session).findings if f.level == level]


def test_a_good_session_passes(session: Path) -> None:
    report = verify_session(session)
    assert report.ok and report.checked_files == 3
    assert not _messages(session, "warning")


def _as_after_a_crash(session: Path) -> None:
    """Rewrite the manifest as a crash leaves it: files interrupted, no final counts."""
    manifest_path = session / "session.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["trials"][0]["status"] = "interrupted"
    for entry in manifest["trials"][0]["files"]:
        entry.update(status="interrupted", frames=None, dropped=None)
    manifest_path.write_text(json.dumps(manifest))


def test_a_truncated_last_line_is_a_warning_after_a_crash(session: Path) -> None:
    csv_path = next(session.glob("Ticker/*.csv"))
    csv_path.write_bytes(csv_path.read_bytes()[:-9])  # a crash cut the last row short
    # With the manifest of a finished trial, a short file is damage: an error.
    assert any("manifest says" in m for m in _messages(session, "error"))
    _as_after_a_crash(session)
    assert verify_session(session).ok
    assert any("truncated" in m for m in _messages(session, "warning"))


def test_rows_outside_the_trial_and_disorder_are_errors(session: Path) -> None:
    csv_path = next(session.glob("Ticker/*.csv"))
    lines = csv_path.read_text().splitlines()
    header, first, second = lines[0], lines[1], lines[2]
    # Swap two rows and add one from before the trial start.
    early = first.split(",")
    early[1] = str(int(early[1]) - 10_000_000_000)
    csv_path.write_text("\n".join([header, ",".join(early), second, first, *lines[3:]]) + "\n")
    errors = _messages(session, "error")
    assert any("before the trial start" in m for m in errors)
    assert any("not strictly increasing" in m for m in errors)


def test_missing_and_undecodable_files_are_errors(session: Path) -> None:
    next(session.glob("Ticker/*.csv")).unlink()
    video = next(session.glob("Cameras/*/*.mp4"))
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    report = verify_session(session)
    assert not report.ok
    errors = _messages(session, "error")
    assert any("missing" in m for m in errors)
    assert any(".mp4" in m and "frames decoded" in m for m in errors)


def test_a_video_whose_timing_disagrees_is_an_error(session: Path) -> None:
    timing = next(session.glob("Cameras/*/*_timing.csv"))
    lines = timing.read_text().splitlines()
    cells = lines[5].split(",")
    cells[1] = str(int(cells[1]) + 5_000_000)  # claims a capture 5 ms later than the frame shows
    lines[5] = ",".join(cells)
    timing.write_text("\n".join(lines) + "\n")
    errors = _messages(session, "error")
    assert any("more than 1 ms" in m for m in errors)
    assert any("another capture time" in m for m in errors)


def test_an_interrupted_trial_is_reported_not_fatal(session: Path) -> None:
    _as_after_a_crash(session)
    report = verify_session(session)
    assert report.ok
    assert any("interrupted" in m for m in _messages(session, "warning"))


def test_json_report(session: Path) -> None:
    result = run_cli("verify", str(session), "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 0 and data["ok"] is True and data["checked_files"] == 3
