"""Notes: one `notes.csv` per session; every note is on disk before it is acknowledged.

A note that cannot be saved (a full disk, an I/O error) gets an error reply in one line ("disk
full: note not saved") and is not listed by `get_notes`; the module keeps running (the next note
tries again, appending to the same file, so notes are saved again once there is room), and
`end_session` reports a failed file instead of raising.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, ClassVar

from rpi_logger.config import Setting
from rpi_logger.framework import protocol
from rpi_logger.framework.base import CommandError, FileRecord, Module, SessionInfo
from rpi_logger.framework.lsl_outlets import Outlets
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.io import clock
from rpi_logger.io.csv_writer import CsvStreamWriter
from rpi_logger.io.sinks import SinkError, WriterClosedError, describe_write_error, is_disk_full
from rpi_logger.modules.notes.lsl_streams import SPECS as LSL_SPECS

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
SAVE_TIMEOUT_S = 20.0  # a note not on disk by then is reported as not saved


def _not_saved(exc: BaseException) -> CommandError:
    """The one-line error reply for a note the writer could not save."""
    if is_disk_full(exc):
        return CommandError("disk full: note not saved")
    return CommandError(f"note not saved: {exc}")


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
        self._next_index = 0
        self.lsl = Outlets(context.name, False)  # LSL marker streams (lsl = true)

    async def configure(self, settings: dict[str, Any], simulate: bool) -> dict[str, Any]:
        self.flush_interval_s = settings.get("flush_interval_s", 1.0)
        await self.lsl.aclose()
        self.lsl = Outlets(self.context.name, settings.get("lsl", False))
        await self.lsl.open(LSL_SPECS)
        return {"devices": [{"id": "notes", "simulated": False}]}

    def _new_writer(self, path: Path) -> CsvStreamWriter:
        return CsvStreamWriter(
            path, COLUMNS, flush_interval_s=self.flush_interval_s, overflow="block", name="notes"
        )

    async def start_session(self, session: SessionInfo) -> dict[str, Any]:
        path = session.module_dir / "notes.csv"
        writer = self._new_writer(path)
        try:
            await writer.astart()
        except OSError as exc:
            raise CommandError(describe_write_error(path, exc)) from None
        self.writer = writer
        self.notes = []
        self._next_index = 0
        record = FileRecord("notes", "csv", path)
        return {"files": [record.as_dict(session.directory, self.context.name)]}

    async def end_session(self) -> dict[str, Any]:
        """Close notes.csv. A failed file is reported in the result (`status` "interrupted",
        `error`, and the file's record under `files`), never raised."""
        result: dict[str, Any] = {"notes": len(self.notes)}
        writer, self.writer = self.writer, None
        if writer is None:
            return result
        error: str | None = None
        try:
            async with asyncio.timeout(SAVE_TIMEOUT_S):
                await writer.aclose()
        except SinkError as exc:
            error = str(exc)
        except TimeoutError:
            error = f"{writer.path} not closed after {SAVE_TIMEOUT_S:g} s"
        if error is not None:
            result.update(status="interrupted", error=error)
            if self.session is not None:
                record = FileRecord(
                    "notes", "csv", writer.path, extra={"status": "interrupted", "error": error}
                )
                result["files"] = [record.as_dict(self.session.directory, self.context.name)]
        return result

    async def _usable_writer(self, writer: CsvStreamWriter) -> CsvStreamWriter:
        """`writer`, or after it failed (a full disk) a fresh one appending to the same file, so
        notes are saved again as soon as there is room. Raises the reply for a note not saved."""
        if writer.error is None:
            return writer
        fresh = self._new_writer(writer.path)
        try:
            await fresh.astart()
        except (OSError, ValueError) as exc:
            raise _not_saved(exc) from None
        try:
            await writer.aclose()
        except SinkError:
            pass  # already answered to the note that met it
        self.writer = fresh
        return fresh

    async def cmd_add_note(self, text: str, modules: list[str] | None = None) -> dict[str, Any]:
        """Write the note, flush and fsync it (off the loop), then answer."""
        if not text.strip():
            raise CommandError("a note needs some text", protocol.BAD_ARGS)
        if len(text) > MAX_NOTE_CHARS:
            raise CommandError(f"a note is at most {MAX_NOTE_CHARS} characters", protocol.BAD_ARGS)
        if self.writer is None or self.session is None:
            raise CommandError("no session is running: start one to take notes", protocol.BAD_STATE)
        async with self._lock:
            if self.writer is None or self.session is None:  # ended while this note waited
                raise CommandError(
                    "no session is running: start one to take notes", protocol.BAD_STATE
                )
            writer = await self._usable_writer(self.writer)
            now = clock.now()
            trial = self.trial.trial if self.trial and self.trial.accepts(now.t_mono_ns) else None
            note = {
                "note_index": self._next_index,
                "t_mono_ns": now.t_mono_ns,
                "t_wall_unix": now.t_wall_unix,
                "wall_iso": wall_iso(now.t_wall_unix),
                "trial": trial,
                "elapsed_s": round((now.t_mono_ns - self.session.start_mono_ns) / 1e9, 6),
                "text": text.strip(),
                "modules": ";".join(modules or []),
            }
            position = writer.stats().accepted + 1  # this note's row number in the writer
            try:
                async with asyncio.timeout(SAVE_TIMEOUT_S):
                    await writer.write_row_async(note)  # False only once failed: sync() raises
                    await writer.sync()
            except (SinkError, WriterClosedError) as exc:
                # A failed writer cuts its file back to its last good flush; a row that was on
                # the OS by then stays in the file, and its index is never given to another note.
                if writer.stats().written >= position:
                    self._next_index += 1
                raise _not_saved(exc) from None
            except TimeoutError:
                self._next_index += 1  # it may still reach the file
                raise CommandError(
                    f"note not saved: not on disk after {SAVE_TIMEOUT_S:g} s"
                ) from None
            self._next_index += 1
            self.notes.append(note)
        self.lsl.push("notes", note["t_mono_ns"], [note["text"], str(trial or ""), note["modules"]])
        return note

    def _trial_marker(self, event: str, t_mono_ns: int | None, window: TrialWindow) -> None:
        if t_mono_ns is not None:
            self.lsl.push("trials", t_mono_ns, [event, str(window.trial), window.label or ""])

    async def start_trial(self, window: TrialWindow) -> dict[str, Any]:
        if window.part == 1:  # a restarted module rejoins a trial that started already
            self._trial_marker("start", window.start_ns, window)
        return {}

    async def stop_trial(self, window: TrialWindow) -> list[FileRecord]:
        self._trial_marker("stop", window.stop_ns, window)
        return []

    async def shutdown(self) -> None:
        await self.lsl.aclose()

    async def cmd_get_notes(self) -> dict[str, Any]:
        return {"notes": list(self.notes)}

    def status(self) -> dict[str, Any]:
        return {"notes": len(self.notes)}
