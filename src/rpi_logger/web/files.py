"""Past sessions on disk: listing, path confinement and streamed zips. Everything here is
blocking file work, called off the loop (asyncio.to_thread, or Starlette's thread pool for the
zip's iterator)."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

MANIFEST = "session.json"
RESERVE = ".session.json.reserve"  # the session's spare room for its manifest: not data
CHUNK = 1 << 20


class NotFound(Exception):
    """Nothing servable at that path (missing, or outside the data folder)."""


def confined(root: Path, *parts: str) -> Path:
    """`root/parts...` resolved, or NotFound when it lies outside `root` (`..`, symlinks,
    absolute parts) or does not exist."""
    base = root.resolve()
    try:
        target = base.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        raise NotFound("/".join(parts)) from None
    if target != base and not target.is_relative_to(base):
        raise NotFound("/".join(parts))
    return target


def session_dirs(root: Path, depth: int = 3) -> Iterator[Path]:
    """Session folders in the data folder and its sub-folders (up to `depth` levels down; a
    session folder's own sub-folders are not searched)."""
    if depth < 0 or not root.is_dir():
        return
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.is_symlink():
            continue
        if (entry / MANIFEST).is_file():
            yield entry
        else:
            yield from session_dirs(entry, depth - 1)


def session_id(root: Path, folder: Path) -> str:
    """The id the API uses: the folder relative to the data folder, `/` as separator."""
    return folder.resolve().relative_to(root.resolve()).as_posix()


def find_session(root: Path, sid: str) -> Path:
    """The session folder with API id `sid`, confined to the data folder."""
    folder = confined(root, *sid.split("/"))
    if not (folder / MANIFEST).is_file():
        raise NotFound(sid)
    return folder


def walk_files(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name != RESERVE and path.is_file() and not path.is_symlink():
                yield path


def summary(root: Path, folder: Path, with_files: bool = False) -> dict[str, Any]:
    """What the sessions tab shows of one session (read from its manifest and its files)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            manifest = {}
    except (OSError, ValueError):
        manifest = {}
    files = [(p, p.stat().st_size) for p in walk_files(folder)]
    clock = manifest.get("clock") if isinstance(manifest.get("clock"), dict) else {}
    trials = manifest.get("trials")
    sid = session_id(root, folder)
    out: dict[str, Any] = {
        "id": sid,
        "folder": folder.name,
        "label": manifest.get("label") if isinstance(manifest.get("label"), str) else None,
        "started": _iso(clock.get("wall_unix")),
        "trials": len(trials) if isinstance(trials, list) else 0,
        "size_bytes": sum(size for _, size in files),
        "simulated": manifest.get("simulated") is True,
        "ended": bool(manifest.get("ended")),
    }
    if with_files:
        out["files"] = [
            {
                "path": (rel := p.relative_to(folder).as_posix()),
                "size_bytes": size,
                "url": f"/api/v1/sessions/{sid}/files/{rel}",
            }
            for p, size in files
        ]
    return out


def _iso(wall_unix: object) -> str | None:
    if not isinstance(wall_unix, int | float) or isinstance(wall_unix, bool):
        return None
    try:
        return datetime.fromtimestamp(wall_unix).astimezone().isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return None


def list_sessions(root: Path) -> list[dict[str, Any]]:
    """Every past session, newest first."""
    rows = [summary(root, f) for f in session_dirs(root)]
    rows.sort(key=lambda r: (r["started"] or "", r["id"]), reverse=True)
    return rows


class _Pipe:
    """A write-only, unseekable file that zipfile writes into; chunks are taken as they come."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.position = 0

    def write(self, data: bytes) -> int:
        self.buffer += data
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def zip_stream(folder: Path) -> Iterator[bytes]:
    """The session folder as a zip, produced chunk by chunk (never whole in memory). Media
    files are compressed already, so entries are stored; zip64 allows files past 4 GB."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED) as zf:  # type: ignore[arg-type]
        for path in walk_files(folder):
            arcname = f"{folder.name}/{path.relative_to(folder).as_posix()}"
            info = zipfile.ZipInfo.from_file(path, arcname)
            with path.open("rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    if len(pipe.buffer) >= CHUNK:
                        yield pipe.take()
            yield pipe.take()
    yield pipe.take()
