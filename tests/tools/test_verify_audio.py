"""`rpi-logger verify` on audio: a real simulated recording passes; a crash-cut header is
reported and `--repair` rewrites it without touching a sample; broken accounting and timing are
errors."""

from __future__ import annotations

import csv
import json
import shutil
import struct
from pathlib import Path

import pytest
import soundfile as sf
from tests.helpers import run_cli

from rpi_logger.tools.verify import verify_session


@pytest.fixture(scope="module")
def audio_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("verify_audio")
    result = run_cli(
        "record", "--modules", "audio", "--duration", "2.2", "--simulate",
        "--data-dir", str(root / "data"),
        env={"XDG_STATE_HOME": str(root / "state"), "XDG_CONFIG_HOME": str(root / "config")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.split()[-1])


@pytest.fixture
def session(audio_session: Path, tmp_path: Path) -> Path:
    copy = tmp_path / audio_session.name
    shutil.copytree(audio_session, copy)
    return copy


def _entry(session: Path) -> dict:
    return json.loads((session / "session.json").read_text())["trials"][0]["files"][0]


def _edit_entry(session: Path, **changes: object) -> None:
    manifest = json.loads((session / "session.json").read_text())
    manifest["trials"][0]["files"][0].update(changes)
    (session / "session.json").write_text(json.dumps(manifest))


def _messages(session: Path, level: str, repair: bool = False) -> list[str]:
    report = verify_session(session, repair=repair)
    return [f.message for f in report.findings if f.level == level]


def _rewrite_timing(session: Path, edit) -> None:  # type: ignore[no-untyped-def]
    path = session / _entry(session)["timing"]
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    rows = edit(rows)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def test_a_real_recording_passes_and_its_bursts_are_on_whole_seconds(session: Path) -> None:
    assert _messages(session, "error") == []
    infos = _messages(session, "info")
    assert any("simulated burst onsets on their whole seconds" in m for m in infos), infos


def test_a_header_cut_by_a_crash_is_reported_and_repaired_without_touching_samples(
    session: Path,
) -> None:
    wav = session / _entry(session)["path"]
    frames = sf.info(wav).frames
    raw = bytearray(wav.read_bytes())
    raw[4:8] = struct.pack("<I", 36 + 2 * 1000)  # as if the last flush was 1000 samples in
    raw[40:44] = struct.pack("<I", 2 * 1000)
    wav.write_bytes(raw)
    _edit_entry(session, status="interrupted")
    warnings = _messages(session, "warning")
    assert any(
        f"header declares 1000 sample frames, the data holds {frames}" in m for m in warnings
    )
    infos = _messages(session, "info", repair=True)
    assert any("header repaired" in m for m in infos), infos
    assert wav.read_bytes()[44:] == bytes(raw[44:])  # samples untouched
    assert sf.info(wav).frames == frames
    assert not any("header declares" in m for m in _messages(session, "warning"))


def test_a_gap_in_sample_index_is_an_error(session: Path) -> None:
    def edit(rows: list[dict]) -> list[dict]:
        rows[5]["sample_index"] = str(int(rows[5]["sample_index"]) + 1)
        return rows

    _rewrite_timing(session, edit)
    assert any("sample_index not continuous" in m for m in _messages(session, "error"))


def test_samples_without_timing_rows_are_an_error_in_a_complete_file(session: Path) -> None:
    _rewrite_timing(session, lambda rows: rows[:-3])
    errors = _messages(session, "error")
    assert any("timing rows" in m and "WAV holds" in m for m in errors), errors


def test_bursts_timed_off_their_seconds_are_an_error(session: Path) -> None:
    def edit(rows: list[dict]) -> list[dict]:
        for r in rows:
            r["t_mono_ns"] = str(int(r["t_mono_ns"]) - 5_000_000)
        return rows

    _rewrite_timing(session, edit)
    errors = _messages(session, "error")
    assert any("burst onsets off their whole seconds by up to 5.0" in m for m in errors), errors
