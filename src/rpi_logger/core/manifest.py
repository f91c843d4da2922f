"""The session manifest (`session.json`, design.md §4) as types: what the master edits and writes.

The field names are the contract other tools read (`rpi-logger verify`, analysis scripts): each
class's `to_json()` emits exactly them, in their documented order, and `from_json()` reads them
back. Extra fields a module adds to a file record (`dropped_by_cause`, `error`, ...) ride along
unchanged in `FileEntry.extra`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rpi_logger.io.clock import Stamp

SCHEMA = "rpi-logger/session/1"
MANIFEST = "session.json"

#: Top-level fields every manifest has.
REQUIRED_FIELDS = (
    "schema",
    "session_id",
    "simulated",
    "host",
    "software",
    "clock",
    "modules",
    "trials",
    "health",
)
KINDS = ("video", "audio", "csv")
RECORDING, COMPLETE, INTERRUPTED = "recording", "complete", "interrupted"
TRIAL_STATUSES = (COMPLETE, INTERRUPTED, RECORDING)
FILE_STATUSES = TRIAL_STATUSES
MODULE_STATUSES = ("ok", "failed", "stopped")


def _stamp(data: dict[str, Any]) -> Stamp:
    return Stamp(data["mono_ns"], data["wall_unix"])


def _stamp_or_none(data: dict[str, Any] | None) -> Stamp | None:
    return None if data is None else _stamp(data)


def _stamp_json(stamp: Stamp | None) -> dict[str, Any] | None:
    return None if stamp is None else stamp.as_dict()


@dataclass(slots=True)
class FileEntry:
    """One file of a trial (or of the whole session, like `notes.csv`)."""

    module: str
    device: str
    kind: str
    path: str  # relative to the session folder; the entry's identity
    timing: str | None = None
    frames: int | None = None
    dropped: int | None = None
    status: str | None = None  # None: not stated (a session-wide file before the session ends)
    extra: dict[str, Any] = field(default_factory=dict)

    _FIELDS = ("module", "device", "kind", "path", "timing", "frames", "dropped", "status")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileEntry:
        extra = {k: v for k, v in data.items() if k not in cls._FIELDS}
        return cls(**{k: data.get(k) for k in cls._FIELDS}, extra=extra)

    def update(self, data: dict[str, Any]) -> None:
        """Take every field `data` states (a later record of the same file)."""
        for key, value in data.items():
            if key in self._FIELDS:
                setattr(self, key, value)
            else:
                self.extra[key] = value

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self._FIELDS}
        if self.status is None:
            del out["status"]
        out.update(self.extra)
        return out


@dataclass(slots=True)
class Health:
    """A process's loop lag (`{"p50", "p99", "max", "samples"}` in ms), CPU and memory."""

    loop_lag_ms: dict[str, Any] | None = None
    cpu_percent: float | None = None
    rss_mb: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Health:
        return cls(data.get("loop_lag_ms"), data.get("cpu_percent"), data.get("rss_mb"))

    def to_json(self) -> dict[str, Any]:
        out = {"loop_lag_ms": self.loop_lag_ms}
        if self.cpu_percent is not None:
            out["cpu_percent"] = self.cpu_percent
        if self.rss_mb is not None:
            out["rss_mb"] = self.rss_mb
        return out


def _health_json(health: dict[str, Health]) -> dict[str, Any]:
    return {name: h.to_json() for name, h in health.items()}


def _health(data: dict[str, Any]) -> dict[str, Health]:
    return {name: Health.from_json(h) for name, h in data.items()}


@dataclass(slots=True)
class ModuleStatus:
    """A module's entry in the manifest: how it fared, and its devices."""

    status: str = "stopped"  # ok | failed | stopped
    error: str | None = None
    devices: list[Any] = field(default_factory=list)
    restarts: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModuleStatus:
        return cls(
            data["status"], data.get("error"), data.get("devices", []), data.get("restarts", 0)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error": self.error,
            "devices": list(self.devices),
            "restarts": self.restarts,
        }


@dataclass(slots=True)
class Trial:
    """One trial: its instants on the host clock, its files, and how it ended."""

    number: int
    label: str | None
    start: Stamp
    status: str = RECORDING
    stop: Stamp | None = None
    files: list[FileEntry] = field(default_factory=list)
    reason: str | None = None  # why it stopped early ("disk full", "SIGINT")
    health: dict[str, Health] | None = None  # per process, this trial alone

    @property
    def recording(self) -> bool:
        return self.status == RECORDING

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trial:
        return cls(
            data["number"],
            data.get("label"),
            _stamp(data["start"]),
            data["status"],
            _stamp_or_none(data.get("stop")),
            [FileEntry.from_json(f) for f in data.get("files", [])],
            data.get("reason"),
            _health(data["health"]) if "health" in data else None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "number": self.number,
            "label": self.label,
            "status": self.status,
            "start": self.start.as_dict(),
            "stop": _stamp_json(self.stop),
            "files": [f.to_json() for f in self.files],
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.health is not None:
            out["health"] = _health_json(self.health)
        return out


def upsert_file(files: list[FileEntry], data: dict[str, Any]) -> FileEntry:
    """Add a file record to `files`, or update the one with the same path."""
    for existing in files:
        if existing.path == data.get("path"):
            existing.update(data)
            return existing
    entry = FileEntry.from_json(data)
    files.append(entry)
    return entry


@dataclass(slots=True)
class SessionManifest:
    """The whole of `session.json`."""

    session_id: str
    label: str | None
    simulated: bool
    host: str
    software: dict[str, str]
    clock: Stamp  # the monotonic/wall pair at session start
    modules: dict[str, ModuleStatus] = field(default_factory=dict)
    trials: list[Trial] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)  # session-wide files (notes.csv)
    health: dict[str, Health] = field(default_factory=dict)
    ended: Stamp | None = None
    halted: dict[str, str] | None = None  # {"reason", "detail"} once recording had to stop
    schema: str = SCHEMA

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionManifest:
        return cls(
            data["session_id"],
            data.get("label"),
            data["simulated"],
            data["host"],
            data["software"],
            _stamp(data["clock"]),
            {n: ModuleStatus.from_json(m) for n, m in data["modules"].items()},
            [Trial.from_json(t) for t in data["trials"]],
            [FileEntry.from_json(f) for f in data.get("files", [])],
            _health(data["health"]),
            _stamp_or_none(data.get("ended")),
            data.get("halted"),
            data["schema"],
        )

    def to_json(self, *, trials: bool = True) -> dict[str, Any]:
        """The manifest as JSON data; with `trials=False` the `trials` value is left None (the
        session controller splices in text it serialized before)."""
        out: dict[str, Any] = {
            "schema": self.schema,
            "session_id": self.session_id,
            "label": self.label,
            "simulated": self.simulated,
            "host": self.host,
            "software": dict(self.software),
            "clock": {**self.clock.as_dict(), "source": "CLOCK_MONOTONIC"},
            "modules": {name: m.to_json() for name, m in self.modules.items()},
            "trials": [t.to_json() for t in self.trials] if trials else None,
            "files": [f.to_json() for f in self.files],
            "health": _health_json(self.health),
            "ended": _stamp_json(self.ended),
        }
        if self.halted is not None:
            out["halted"] = dict(self.halted)
        return out
