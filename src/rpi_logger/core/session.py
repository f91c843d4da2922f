"""The session controller: one session folder and its typed manifest, saved atomically.

Every edit of the manifest goes through a method here; saves are coalesced (`save_soon`) and
written off the loop. A long session must not make saves slower: a finished trial never changes,
so it is serialized once (on the writer thread) and its text is spliced into every later save.
The loop only snapshots what can still change (the running trial, module states, health), so
its share of a save does not grow with the number of trials. A reserve file in the session folder
keeps the manifest saveable after the writers filled the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import platform
import re
import socket
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

from rpi_logger import __version__
from rpi_logger.core.manifest import (
    COMPLETE,
    INTERRUPTED,
    MANIFEST,
    RECORDING,
    Health,
    ModuleStatus,
    SessionManifest,
    Trial,
    upsert_file,
)
from rpi_logger.io.atomic import atomic_write_text
from rpi_logger.io.clock import Stamp, now

log = logging.getLogger("rpi_logger.session")

_LABEL_MAX = 60
#: Least time between two coalesced saves.
SAVE_INTERVAL_S = 0.05
#: Space set aside in the session folder so the manifest can still be saved on a full disk
#: (the writers took the rest): released at the first ENOSPC, removed once the session ends.
RESERVE = ".session.json.reserve"
RESERVE_BYTES = 1 << 20


def sanitize_label(label: str | None) -> str | None:
    """A label safe as part of a folder name: letters, digits, `-` and `_` only, no traversal.

    Returns None when nothing usable is left.
    """
    if label is None:
        return None
    text = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_-.")
    return text[:_LABEL_MAX] or None


def session_dir_name(started: Stamp, label: str | None = None) -> str:
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(started.t_wall_unix))
    clean = sanitize_label(label)
    return f"session_{stamp}_{clean}" if clean else f"session_{stamp}"


def _software() -> dict[str, str]:
    versions = {
        "rpi_logger": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for mod in ("av", "numpy", "cv2"):
        module = sys.modules.get(mod)
        if module is not None:
            versions[mod] = getattr(module, "__version__", "?")
    return versions


def _make_dir(data_dir: Path, base: str) -> Path:
    """A fresh session folder (a suffix keeps two sessions of one second apart). Blocking."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = data_dir / (base if n == 1 else f"{base}_{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        with contextlib.suppress(OSError):  # no room for a reserve: saves just go without one
            (candidate / RESERVE).write_bytes(bytes(RESERVE_BYTES))
        return candidate.resolve()
    raise FileExistsError(f"cannot create a session folder under {data_dir}")


class SessionController:
    """One running session: its folder, its manifest, and the only code that edits or saves it."""

    def __init__(self, directory: Path, manifest: SessionManifest) -> None:
        self.directory = directory
        self.manifest = manifest
        self.save_error: str | None = None  # why the last save failed (None: it succeeded)
        self._save_lock = asyncio.Lock()
        self._wanted = asyncio.Event()
        self._texts: list[str] = []  # finished trials, serialized, by position
        self._pending: dict[int, dict[str, Any]] = {}  # finished trials still to serialize

    @classmethod
    async def create(
        cls,
        data_dir: Path,
        started: Stamp,
        label: str | None,
        modules: dict[str, ModuleStatus],
        simulated: bool,
    ) -> SessionController:
        """Make the session folder and write its first manifest; OSError when either fails."""
        directory, host, software = await asyncio.to_thread(
            lambda: (
                _make_dir(data_dir, session_dir_name(started, label)),
                socket.gethostname(),
                _software(),
            )
        )
        manifest = SessionManifest(
            directory.name, label, simulated, host, software, started, modules
        )
        session = cls(directory, manifest)
        if not await session.save():
            raise OSError(f"cannot write {directory / MANIFEST}: {session.save_error}")
        return session

    # -- reading ----------------------------------------------------------------------------
    @property
    def started(self) -> Stamp:
        return self.manifest.clock

    @property
    def trials(self) -> list[Trial]:
        return self.manifest.trials

    @property
    def current(self) -> Trial | None:
        """The trial recording now, if any."""
        trials = self.manifest.trials
        return trials[-1] if trials and trials[-1].recording else None

    def trial(self, number: int) -> Trial:
        """Trial `number` (from 1); KeyError when there is none."""
        if not 1 <= number <= len(self.trials):
            raise KeyError(number)
        return self.trials[number - 1]

    # -- edits ------------------------------------------------------------------------------
    def add_trial(self, label: str | None, start: Stamp) -> Trial:
        """The next trial, recording from `start`."""
        if self.current is not None:
            raise RuntimeError("a trial is already recording")
        trial = Trial(len(self.trials) + 1, label, start)
        self.trials.append(trial)
        self.save_soon()
        return trial

    def upsert_file(self, data: dict[str, Any], trial: int | None = None) -> None:
        """Add or update a file record of trial `trial` (None: a session-wide file)."""
        if trial is None:
            upsert_file(self.manifest.files, data)
        else:
            target = self.trial(trial)
            upsert_file(target.files, data)
            if not target.recording:  # a late record of a finished trial: serialize it anew
                self._pending[trial - 1] = target.to_json()
        self.save_soon()

    def mark_interrupted(self, module: str) -> None:
        """The running trial's open files of `module` end here (the module failed)."""
        current = self.current
        if current is None:
            return
        for f in current.files:
            if f.module == module and f.status == RECORDING:
                f.status = INTERRUPTED
        self.save_soon()

    def finish_trial(
        self, stop: Stamp, *, cut_short: bool, reason: str | None, health: dict[str, Health]
    ) -> Trial:
        """End the running trial at `stop`: interrupted when `cut_short` or any file is not
        complete. From here on the trial never changes (but for a late file record)."""
        trial = self.current
        if trial is None:
            raise RuntimeError("no trial is recording")
        trial.stop = stop
        incomplete = any(f.status != COMPLETE for f in trial.files)
        trial.status = INTERRUPTED if cut_short or incomplete else COMPLETE
        trial.reason = reason
        trial.health = health
        self._pending[trial.number - 1] = trial.to_json()
        self.save_soon()
        return trial

    def set_modules(self, modules: dict[str, ModuleStatus]) -> None:
        self.manifest.modules = modules
        self.save_soon()

    def set_health(self, health: dict[str, Health]) -> None:
        """Session-wide health figures, per process (merged into those already there)."""
        self.manifest.health.update(health)
        self.save_soon()

    def halt(self, reason: str, detail: str) -> None:
        """Recording had to stop for good (`reason`, e.g. "disk full")."""
        self.manifest.halted = {"reason": reason, "detail": detail}
        self.save_soon()

    def end(self) -> None:
        self.manifest.ended = now()
        self.save_soon()

    # -- saving -----------------------------------------------------------------------------
    def save_soon(self) -> None:
        """Ask `autosave` for a save; many requests in a row make one save."""
        self._wanted.set()

    async def autosave(self) -> None:
        """Save whenever asked (at most every SAVE_INTERVAL_S). Runs as an owned task until
        cancelled; a final `save()` comes first, so cancelling loses nothing."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self.save()
            await asyncio.sleep(SAVE_INTERVAL_S)

    async def save(self) -> bool:
        """Write the manifest atomically now. Saves are serialized; the latest state wins.

        A failed write (disk full, card pulled) leaves the previous manifest whole; it is
        logged once per distinct error and reported as False, never raised: the recording goes
        on and the next save tries again.
        """
        async with self._save_lock:
            # On the loop: a snapshot of what can still change, small whatever the session's
            # length. Everything else, serialization included, happens on the thread.
            head = self.manifest.to_json(trials=False)
            current = self.current
            tail = current.to_json() if current is not None else None
            pending = dict(self._pending)
            texts, error = await asyncio.to_thread(
                _write, self.directory / MANIFEST, head, self._texts, pending, tail
            )
            self._texts = texts
            for index, data in pending.items():
                if self._pending.get(index) is data:  # not changed again meanwhile
                    del self._pending[index]
        if error is not None:
            if error != self.save_error:
                log.error("manifest %s not saved: %s", self.directory / MANIFEST, error)
            self.save_error = error
            return False
        if self.save_error is not None:
            log.info("manifest saved again")
            self.save_error = None
        return True


def _trial_text(trial: dict[str, Any]) -> str:
    """A trial as it stands inside the manifest's `trials` list (indent 2, nested twice)."""
    return json.dumps(trial, indent=2, ensure_ascii=False).replace("\n", "\n    ")


def render(head: dict[str, Any], trials: list[str]) -> str:
    """The manifest text: `head` with the serialized `trials` spliced in; the same text as
    `json.dumps(manifest, indent=2, ensure_ascii=False)` of the whole."""
    fields = []
    for key, value in head.items():
        if key == "trials":
            text = "[\n    " + ",\n    ".join(trials) + "\n  ]" if trials else "[]"
        else:
            text = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        fields.append(f"  {json.dumps(key, ensure_ascii=False)}: {text}")
    return "{\n" + ",\n".join(fields) + "\n}"


def _write(
    path: Path,
    head: dict[str, Any],
    texts: list[str],
    pending: dict[int, dict[str, Any]],
    current: dict[str, Any] | None,
) -> tuple[list[str], str | None]:
    """Thread: serialize the trials that finished since the last save, splice, write.

    Returns the finished trials' texts (for the next save) and the write error, if any.
    """
    texts = list(texts)
    for index in sorted(pending):
        text = _trial_text(pending[index])
        if index < len(texts):
            texts[index] = text
        else:  # trials finish in order: the next one
            texts.append(text)
    trials = texts if current is None else [*texts, _trial_text(current)]
    text = render(head, trials)
    reserve = path.parent / RESERVE
    try:
        try:
            atomic_write_text(path, text)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not reserve.exists():
                raise
            reserve.unlink()  # the disk is full: the reserve makes room for the manifest
            atomic_write_text(path, text)
    except OSError as exc:
        return texts, f"{exc.strerror or exc}"
    if head["ended"] is not None:
        with contextlib.suppress(OSError):
            reserve.unlink(missing_ok=True)
    return texts, None
