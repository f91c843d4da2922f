"""Notes: one `notes.csv` per session; every note is on disk before it is acknowledged."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from rpi_logger.config import Setting
from rpi_logger.core import protocol
from rpi_logger.io import clock
from rpi_logger.io.csv_writer import CsvStreamWriter
from rpi_logger.modules.base import CommandError, FileRecord, Module, SessionInfo

COLUMNS = (
    "note_index",
    "t_mono_ns",
    "t_wall_unix",
    "wall_iso",
    "trial",
    "elapsed_s",
    "text",
    "modules",
)
MAX_NOTE_CHARS = 10_000


def wall_iso(t_wall_unix: float) -> str:
    """Local time with its UTC offset, to the millisecond (what a researcher reads)."""
    local = time.localtime(t_wall_unix)
    ms = int((t_wall_unix % 1) * 1000)
    offset = time.strftime("%z", local)
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{ms:03d}{offset[:3]}:{offset[3:]}"


class NotesModule(Module):
    commands: ClassVar[dict[str, dict]] = {
        "add_note": {"text": ((str,), True), "modules": ((list,), False)},
        "get_notes": {},
    }
    settings = (
        Setting("flush_interval_s", float, 1.0, "seconds between flushes", min=0.05, max=10),
    )

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.flush_interval_s = 1.0
        self.writer: CsvStreamWriter | None = None
        self.notes: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()  # note_index order equals file order

    async def configure(self, settings: dict[str, Any], simulate: bool) -> dict[str, Any]:
        self.flush_interval_s = settings.get("flush_interval_s", 1.0)
        return {"devices": [{"id": "notes", "simulated": False}]}

    async def start_session(self, session: SessionInfo) -> dict[str, Any]:
        path = session.module_dir / "notes.csv"
        self.writer = CsvStreamWriter(
            path, COLUMNS, flush_interval_s=self.flush_interval_s, overflow="block", name="notes"
        )
        await asyncio.to_thread(self.writer.start)
        self.notes = []
        record = FileRecord("notes", "csv", path)
        return {"files": [record.as_dict(session.directory, self.context.name)]}

    async def end_session(self) -> dict[str, Any]:
        if self.writer is not None:
            await self.writer.aclose()
            self.writer = None
        return {"notes": len(self.notes)}

    async def cmd_add_note(self, text: str, modules: list[str] | None = None) -> dict[str, Any]:
        """Write the note, flush and fsync it (off the loop), then answer."""
        if not text.strip():
            raise CommandError("a note needs some text", protocol.BAD_ARGS)
        if len(text) > MAX_NOTE_CHARS:
            raise CommandError(f"a note is at most {MAX_NOTE_CHARS} characters", protocol.BAD_ARGS)
        if self.writer is None or self.session is None:
            raise CommandError("no session is running: start one to take notes", protocol.BAD_STATE)
        async with self._lock:
            now = clock.now()
            trial = self.trial.trial if self.trial and self.trial.accepts(now.t_mono_ns) else None
            note = {
                "note_index": len(self.notes),
                "t_mono_ns": now.t_mono_ns,
                "t_wall_unix": now.t_wall_unix,
                "wall_iso": wall_iso(now.t_wall_unix),
                "trial": trial,
                "elapsed_s": round((now.t_mono_ns - self.session.start_mono_ns) / 1e9, 6),
                "text": text.strip(),
                "modules": ";".join(modules or []),
            }
            await self.writer.write_row_async(note)
            self.notes.append(note)
        await self.writer.sync()
        return note

    async def cmd_get_notes(self) -> dict[str, Any]:
        return {"notes": list(self.notes)}

    def status(self) -> dict[str, Any]:
        return {"notes": len(self.notes)}
