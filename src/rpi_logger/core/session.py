"""Sessions and their manifest (`session.json`, SPEC §4), rewritten atomically on every change."""

from __future__ import annotations

import asyncio
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
from rpi_logger.io.atomic import atomic_write_text
from rpi_logger.io.clock import Stamp

log = logging.getLogger("rpi_logger.session")

SCHEMA = "rpi-logger/session/1"
MANIFEST = "session.json"
_LABEL_MAX = 60


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


class Session:
    """One session folder and its manifest. All mutation goes through methods that save."""

    def __init__(
        self,
        directory: Path,
        started: Stamp,
        label: str | None,
        modules: dict[str, dict[str, Any]],
        simulated: bool,
    ) -> None:
        self.directory = directory
        self.started = started
        self.manifest: dict[str, Any] = {
            "schema": SCHEMA,
            "session_id": directory.name,
            "label": label,
            "simulated": simulated,
            "host": socket.gethostname(),
            "software": _software(),
            "clock": {
                "mono_ns": started.t_mono_ns,
                "wall_unix": started.t_wall_unix,
                "source": "CLOCK_MONOTONIC",
            },
            "modules": modules,
            "trials": [],
            "files": [],
            "health": {},
            "ended": None,
        }
        self._save_lock = asyncio.Lock()
        self.save_error: str | None = None  # why the last save failed (None: it succeeded)

    @classmethod
    async def create(
        cls,
        data_dir: Path,
        started: Stamp,
        label: str | None,
        modules: dict[str, dict[str, Any]],
        simulated: bool,
    ) -> Session:
        """Make a fresh session folder (a suffix keeps two sessions of one second apart)."""
        base = session_dir_name(started, label)

        def make() -> Path:
            data_dir.mkdir(parents=True, exist_ok=True)
            for n in range(1, 1000):
                candidate = data_dir / (base if n == 1 else f"{base}_{n}")
                try:
                    candidate.mkdir()
                except FileExistsError:
                    continue
                return candidate.resolve()
            raise FileExistsError(f"cannot create a session folder under {data_dir}")

        directory = await asyncio.to_thread(make)
        session = cls(directory, started, label, modules, simulated)
        if not await session.save():
            raise OSError(f"cannot write {directory / MANIFEST}: {session.save_error}")
        return session

    @property
    def trials(self) -> list[dict[str, Any]]:
        return self.manifest["trials"]

    @property
    def current_trial(self) -> dict[str, Any] | None:
        if self.trials and self.trials[-1]["status"] == "recording":
            return self.trials[-1]
        return None

    def add_trial(self, number: int, label: str | None, start: Stamp) -> dict[str, Any]:
        trial = {
            "number": number,
            "label": label,
            "status": "recording",
            "start": start.as_dict(),
            "stop": None,
            "files": [],
        }
        self.trials.append(trial)
        return trial

    def trial(self, number: int) -> dict[str, Any]:
        for trial in self.trials:
            if trial["number"] == number:
                return trial
        raise KeyError(number)

    @staticmethod
    def upsert_file(trial: dict[str, Any], entry: dict[str, Any]) -> None:
        """Add a file entry, or update the one with the same path."""
        for existing in trial["files"]:
            if existing["path"] == entry["path"]:
                existing.update(entry)
                return
        trial["files"].append(entry)

    async def save(self) -> bool:
        """Write the manifest atomically. Saves are serialized; the latest state always wins.

        A failed write (disk full, card pulled) leaves the previous manifest whole; it is
        logged once per distinct error and reported as False, never raised: the recording goes
        on and the next save tries again.
        """
        async with self._save_lock:
            # Serialize on the loop (a snapshot: the dict keeps changing while the thread
            # writes), then write, fsync and rename on a thread.
            text = json.dumps(self.manifest, indent=2, ensure_ascii=False)
            try:
                await asyncio.to_thread(atomic_write_text, self.directory / MANIFEST, text)
            except OSError as exc:
                error = f"{exc.strerror or exc}"
                if error != self.save_error:
                    log.error("manifest %s not saved: %s", self.directory / MANIFEST, error)
                self.save_error = error
                return False
            if self.save_error is not None:
                log.info("manifest saved again")
                self.save_error = None
            return True
