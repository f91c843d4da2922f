"""What a module is made of: the `Module` base class and the types its hooks use.

A module is a subclass of `Module` that overrides the lifecycle hooks; `ModuleRuntime`
(framework/runtime.py) runs it in its own process. Lifecycle: idle -> session -> recording ->
session -> idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rpi_logger.config import Setting
from rpi_logger.framework import protocol
from rpi_logger.framework.trial import TrialWindow

if TYPE_CHECKING:
    from rpi_logger.framework.runtime import ModuleRuntime


#: Settings every module's config.txt may hold, whatever the module.
COMMON_SETTINGS: tuple[Setting, ...] = (
    Setting("name", str, "", "the name the module is known by"),
    Setting("enabled", bool, True, "start this module with the master"),
    Setting("restart_on_crash", bool, False, "restart the module when it dies (rejoins the trial)"),
    Setting("lsl", bool, False, "also publish the module's streams as Lab Streaming Layer outlets"),
)


def typed_overrides(overrides: dict[str, Any], schema: Sequence[Setting]) -> dict[str, Any]:
    """Setting overrides (from the master, the UI or `--set`) checked and typed like config.txt."""
    by_name = {s.name: s for s in schema}
    typed: dict[str, Any] = {}
    for key, value in overrides.items():
        setting = by_name.get(key)
        if setting is None:
            raise CommandError(
                f"unknown setting {key!r} (known: {', '.join(sorted(by_name))})", protocol.BAD_ARGS
            )
        text = ("true" if value else "false") if isinstance(value, bool) else value
        try:
            typed[key] = setting.parse(None if text is None else str(text))
        except ValueError as exc:
            raise CommandError(
                f"setting {key!r} = {value!r}: expected {exc}", protocol.BAD_ARGS
            ) from None
    return typed


class CommandError(Exception):
    """An expected failure of a command; becomes an error reply, never a traceback."""

    def __init__(self, message: str, code: str = protocol.FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class ModuleContext:
    """What a module process knows about itself at start."""

    name: str
    module_dir: Path
    simulate: bool = False
    supervised: bool = True
    data_dir: Path | None = None


@dataclass(slots=True)
class SessionInfo:
    directory: Path  # the session folder
    module_dir: Path  # <session>/<ModuleName>
    start_mono_ns: int


@dataclass(slots=True)
class FileRecord:
    """One file a module wrote for a trial, as listed in the manifest."""

    device: str
    kind: str  # "video" | "audio" | "csv"
    path: Path
    timing: Path | None = None
    frames: int | None = None
    dropped: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, session_dir: Path, module: str) -> dict[str, Any]:
        def rel(p: Path | None) -> str | None:
            return None if p is None else str(p.relative_to(session_dir))

        return {
            "module": module,
            "device": self.device,
            "kind": self.kind,
            "path": rel(self.path),
            "timing": rel(self.timing),
            "frames": self.frames,
            "dropped": self.dropped,
            **self.extra,
        }


class Module:
    """Base class of a module. Override the hooks; each runs on the module's event loop.

    Hooks must not block: file and device work goes to writer threads or executors.
    """

    #: Module-specific commands: name -> argument schema (see protocol.COMMAND_ARGS).
    #: Each is served by a method `cmd_<name>(**args) -> dict`.
    commands: ClassVar[dict[str, dict]] = {}
    #: The module's own settings (read from its config.txt with COMMON_SETTINGS).
    settings: ClassVar[Sequence[Setting]] = ()

    def __init__(self, context: ModuleContext) -> None:
        self.context = context
        self.runtime: ModuleRuntime | None = None  # set by the runtime before any hook runs
        self.session: SessionInfo | None = None
        self.trial: TrialWindow | None = None

    # -- lifecycle hooks -------------------------------------------------------------------
    async def configure(self, settings: dict[str, Any], simulate: bool) -> dict[str, Any]:
        """Apply settings (already typed); returns e.g. the devices found."""
        return {}

    async def run(self) -> None:
        """Long-running device work (capture loops). Runs from start to shutdown."""
        await asyncio.Event().wait()

    async def start_session(self, session: SessionInfo) -> dict[str, Any]:
        return {}

    async def start_trial(self, window: TrialWindow) -> dict[str, Any]:
        """Open the trial's files; keep samples with `window.accepts(t)`."""
        return {}

    async def stop_trial(self, window: TrialWindow) -> list[FileRecord]:
        """Called once the stop instant has passed (plus a grace period); close files."""
        return []

    async def end_session(self) -> dict[str, Any]:
        return {}

    async def shutdown(self) -> None:
        """Release devices. Called after any running trial and session were ended."""

    def status(self) -> dict[str, Any]:
        """Live figures for status events and heartbeats (fps, drops, devices...)."""
        return {}

    # -- helpers for subclasses -------------------------------------------------------------
    async def emit(self, name: str, data: dict[str, Any]) -> None:
        """Send an event to the master."""
        if self.runtime is not None:
            await self.runtime.send(protocol.event(name, data))

    async def emit_status(self) -> None:
        """Send the module's whole status now (state, loop lag and `status()`): the master
        replaces its copy with each status event, so a partial one would hide the rest."""
        if self.runtime is not None:
            await self.runtime.status_event()

    async def announce_file(self, record: FileRecord) -> None:
        """Tell the master a trial file was opened, so a crash can list it as interrupted."""
        if self.session is not None:
            await self.emit(
                protocol.EV_FILE,
                {
                    "trial": self.trial.trial if self.trial else None,
                    "file": record.as_dict(self.session.directory, self.context.name),
                },
            )
