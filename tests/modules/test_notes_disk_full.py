"""Notes on a full disk: a note that cannot be saved gets one clear error reply, is not listed as
taken, and the module stays alive (heartbeats on time, so the master never restarts it)."""

from __future__ import annotations

import asyncio
import csv
import time
from pathlib import Path

import pytest
from tests.io.small_fs import fill, free_up, small_tmpfs
from tests.modules.cameras.module_process import assert_healthy, running_module

from rpi_logger.core.supervisor import ModuleError

LONG = "x" * 6000  # more than a page: a write that needs a new block of the full disk


async def test_note_on_a_full_disk_is_refused_in_one_line_and_the_module_lives(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        session = disk / "s"
        async with running_module("Notes", {}) as (proc, beats):
            since = time.monotonic()
            await proc.request("start_session", {"session_dir": str(session)})
            first = await proc.request("add_note", {"text": "before the disk filled"})
            await asyncio.to_thread(fill, disk)
            for attempt in range(3):
                t = time.monotonic()
                with pytest.raises(ModuleError) as info:
                    await proc.request("add_note", {"text": f"{attempt} {LONG}"}, timeout=30)
                assert time.monotonic() - t < 10
                assert str(info.value) == "Notes: disk full: note not saved"
                assert info.value.code == "failed"
            listed = await proc.request("get_notes")
            assert [n["text"] for n in listed["notes"]] == ["before the disk filled"]
            await asyncio.sleep(1.6)  # long enough for the master to call a silent module hung
            # Room again (the researcher deleted something): notes are saved again at once.
            await asyncio.to_thread(free_up, disk)
            again = await proc.request("add_note", {"text": f"space again {LONG}"})
            listed = await proc.request("get_notes")
            assert [n["note_index"] for n in listed["notes"]] == [0, 1]
            # Full again at the end: the session still ends, and says what happened to the file.
            await asyncio.to_thread(fill, disk)
            with pytest.raises(ModuleError, match="disk full: note not saved"):
                await proc.request("add_note", {"text": f"lost {LONG}"}, timeout=30)
            ended = await proc.request("end_session", timeout=30)
            notes_csv = session / "Notes" / "notes.csv"
            assert ended["status"] == "interrupted"
            assert ended["error"] == f"disk full: {notes_csv}"
            [record] = ended["files"]
            assert record["path"] == "Notes/notes.csv" and record["status"] == "interrupted"
            assert_healthy(proc, beats, since)
        assert proc.exit_reason == "exited with status 0"
        with notes_csv.open(newline="") as f:
            rows = list(csv.DictReader(f))
        # Exactly the notes that were acknowledged, whole, numbered without a gap.
        assert [r["text"] for r in rows] == ["before the disk filled", again["text"]]
        assert [r["note_index"] for r in rows] == ["0", "1"] and first["note_index"] == 0
        assert notes_csv.read_text(encoding="utf-8").endswith("\n")
