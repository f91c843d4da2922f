"""The typed manifest and the session controller: what lands in session.json, and what a save
costs the loop in a long session."""

from __future__ import annotations

import asyncio
import errno
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from rpi_logger.core import session as session_mod
from rpi_logger.core.manifest import Health, ModuleStatus, SessionManifest
from rpi_logger.core.session import SessionController
from rpi_logger.io.clock import now, stamp


def _on_disk(session: SessionController) -> dict[str, Any]:
    return json.loads((session.directory / "session.json").read_text(encoding="utf-8"))


async def _session(tmp_path: Path, trials: int = 0) -> SessionController:
    modules = {"Ticker": ModuleStatus("ok", devices=[{"id": "t0"}])}
    session = await SessionController.create(tmp_path, now(), "Fahrt ü", modules, True)
    session.upsert_file({"module": "Notes", "device": "notes", "kind": "csv", "path": "n.csv"})
    for n in range(1, trials + 1):
        _run_trial(session, n)
    return session


def _run_trial(session: SessionController, n: int, finish: bool = True) -> None:
    start = now()
    session.add_trial(f"t{n}", start)
    record = {"module": "Ticker", "device": "t0", "kind": "csv", "path": f"T/trial{n:03d}.csv"}
    session.upsert_file({**record, "status": "recording"}, n)
    if finish:
        session.upsert_file({**record, "frames": 10, "dropped": 0, "status": "complete"}, n)
        session.finish_trial(
            stamp(start.t_mono_ns + 10**9),
            cut_short=False,
            reason=None,
            health={"Ticker": Health({"p50": 0.1, "p99": 0.2, "max": 0.3, "samples": 9})},
        )


async def test_the_file_is_the_whole_manifest_as_pretty_json(tmp_path: Path) -> None:
    session = await _session(tmp_path, trials=3)
    # A late record of a finished trial (extra fields ride along), a trial still recording.
    session.upsert_file(
        {"path": "T/trial001.csv", "dropped": 2, "dropped_by_cause": {"device_gap": 2}}, 1
    )
    _run_trial(session, 4, finish=False)
    session.halt("disk full", "disk full: 1 MB free")
    session.set_health({"master": Health({"p50": 1.0}, 3.0, 50.5)})
    assert await session.save()
    text = (session.directory / "session.json").read_text(encoding="utf-8")
    expected = session.manifest.to_json()
    assert text == json.dumps(expected, indent=2, ensure_ascii=False)
    data = json.loads(text)
    assert data["trials"][0]["files"][0]["dropped_by_cause"] == {"device_gap": 2}
    assert [t["status"] for t in data["trials"]] == ["complete"] * 3 + ["recording"]
    assert data["halted"] == {"reason": "disk full", "detail": "disk full: 1 MB free"}
    assert data["label"] == "Fahrt ü" and session.directory.name.endswith("_Fahrt_u")
    assert SessionManifest.from_json(data).to_json() == data


async def test_a_save_serializes_no_finished_trial_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save's cost on the loop must not grow with the session: finished trials are
    serialized once, on the writer thread, and spliced in from then on."""
    session = await _session(tmp_path, trials=60)
    await session.save()
    loop_thread = threading.current_thread()
    on_loop: list[str] = []
    real = json.dumps

    def dumps(obj: Any, **kw: Any) -> str:
        if threading.current_thread() is loop_thread:
            on_loop.append(repr(obj)[:60])
        return real(obj, **kw)

    monkeypatch.setattr(json, "dumps", dumps)
    _run_trial(session, 61, finish=False)
    for _ in range(5):
        session.upsert_file({"path": "T/trial061.csv", "frames": 1}, 61)
        assert await session.save()
    assert on_loop == []
    assert len(_on_disk(session)["trials"]) == 61


async def test_a_failed_or_cancelled_save_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await _session(tmp_path, trials=1)
    assert await session.save()
    real = session_mod.atomic_write_text

    def full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(session_mod, "atomic_write_text", full)
    _run_trial(session, 2)
    assert not await session.save()
    assert session.save_error == "No space left on device"
    assert len(_on_disk(session)["trials"]) == 1  # the previous manifest, whole

    gate = threading.Event()

    def slow(path: Path, text: str) -> None:
        gate.wait(10)
        real(path, text)

    monkeypatch.setattr(session_mod, "atomic_write_text", slow)
    _run_trial(session, 3)
    saving = asyncio.create_task(session.save())
    await asyncio.sleep(0.05)
    saving.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await saving
    monkeypatch.setattr(session_mod, "atomic_write_text", real)
    assert await session.save() and session.save_error is None
    assert [t["number"] for t in _on_disk(session)["trials"]] == [1, 2, 3]


async def test_only_the_running_trials_open_files_of_a_failed_module_are_interrupted(
    tmp_path: Path,
) -> None:
    session = await _session(tmp_path, trials=1)
    _run_trial(session, 2, finish=False)
    session.mark_interrupted("Ticker")
    trial = session.finish_trial(now(), cut_short=False, reason=None, health={})
    assert trial.status == "interrupted"
    assert [f.status for t in session.trials for f in t.files] == ["complete", "interrupted"]


async def test_a_full_disk_still_gets_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session folder holds a reserve the manifest can use once the writers filled the
    disk; it is gone once the session has ended."""
    session = await _session(tmp_path, trials=1)
    reserve = session.directory / session_mod.RESERVE
    assert reserve.stat().st_size == session_mod.RESERVE_BYTES
    real = session_mod.atomic_write_text

    def full_until_released(path: Path, text: str) -> None:
        if reserve.exists():
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, text)

    monkeypatch.setattr(session_mod, "atomic_write_text", full_until_released)
    session.halt("disk full", "disk full: 0.0 MB free")
    assert await session.save()
    assert _on_disk(session)["halted"]["reason"] == "disk full"
    monkeypatch.setattr(session_mod, "atomic_write_text", real)
    session2 = await _session(tmp_path / "other")
    session2.end()
    assert await session2.save()
    assert [p.name for p in session2.directory.iterdir()] == ["session.json"]
