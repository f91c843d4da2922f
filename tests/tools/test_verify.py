"""`rpi-logger verify` finds what is wrong with a session, and only that."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.helpers import run_cli

from rpi_logger.tools.verify import verify_session


def _messages(session: Path, level: str) -> list[str]:
    return [f"{f.where}: {f.message}" for f in verify_session(session).findings if f.level == level]


def test_a_good_session_passes(session: Path) -> None:
    report = verify_session(session)
    assert report.ok and report.checked_files == 4
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
    assert result.returncode == 0 and data["ok"] is True and data["checked_files"] == 4


# ---- a video cut short by a crash (design.md: Command line "Nothing lost": fragments reach the
# disk) ----------


def _timing_lines(session: Path) -> tuple[Path, list[str]]:
    timing = next(session.glob("Cameras/*/*_timing.csv"))
    return timing, timing.read_text().splitlines()


def _add_timing_rows(session: Path, k: int) -> None:
    """k rows for frames that were encoded but never reached the disk, before the trial stop."""
    timing, lines = _timing_lines(session)
    stop = json.loads((session / "session.json").read_text())["trials"][0]["stop"]["mono_ns"]
    last = lines[-1].split(",")
    index, t = int(last[0]), int(last[1])
    for j in range(1, k + 1):
        cells = list(last)
        cells[0], cells[1] = str(index + j), str(t + (stop - t) * j // (k + 1))
        lines.append(",".join(cells))
    timing.write_text("\n".join(lines) + "\n")


def _mark_interrupted(session: Path, which: str) -> None:
    """Mark the video's file entry, or only its trial, as interrupted."""
    path = session / "session.json"
    manifest = json.loads(path.read_text())
    trial = manifest["trials"][0]
    trial["status"] = "interrupted"
    if which == "file":
        video = next(f for f in trial["files"] if f["kind"] == "video")
        video.update(status="interrupted", frames=None)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("which", ["file", "trial"])
def test_an_interrupted_video_may_miss_its_last_frames(session: Path, which: str) -> None:
    _add_timing_rows(session, 3)
    _mark_interrupted(session, which)
    report = verify_session(session)
    assert report.ok, _messages(session, "error")
    assert any(
        ".mp4: 3 timing rows have no frame: interrupted" in m for m in _messages(session, "warning")
    )
    result = run_cli("verify", str(session))
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "3 timing rows have no frame: interrupted" in result.stdout


def test_a_complete_video_must_have_one_row_per_frame(session: Path) -> None:
    n = len(_timing_lines(session)[1]) - 1
    _add_timing_rows(session, 3)
    errors = _messages(session, "error")
    assert any(f".mp4: {n} frames decoded, {n + 3} timing rows" in m for m in errors), errors


@pytest.mark.parametrize("status", ["complete", "interrupted"])
def test_frames_without_a_timing_row_are_an_error(session: Path, status: str) -> None:
    timing, lines = _timing_lines(session)
    timing.write_text("\n".join(lines[:-3]) + "\n")
    if status == "interrupted":
        _mark_interrupted(session, "file")
    report = verify_session(session)
    assert not report.ok
    assert any("3 frames have no timing row" in m for m in _messages(session, "error"))


def test_an_interrupted_video_still_pairs_row_i_with_frame_i(session: Path) -> None:
    timing, lines = _timing_lines(session)
    del lines[10]  # every later row now claims the next frame's capture time
    timing.write_text("\n".join(lines) + "\n")
    _add_timing_rows(session, 4)
    _mark_interrupted(session, "file")
    errors = _messages(session, "error")
    assert any("more than 1 ms from their capture time" in m for m in errors), errors
    assert any("another capture time than their timing row" in m for m in errors), errors
