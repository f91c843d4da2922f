"""The master: composes the parts that record a session, entered as one async context.

* `ModuleRegistry` (registry.py): module processes, the set alive, restarts.
* `SessionController` (session.py): the session folder and its typed manifest.
* `EventBus` (events.py): every module and master event, for the UI and in-process listeners.

What is left here orders them: one operation lock around session and trial changes, the same
`at_mono_ns` a lead time ahead for every module (so a trial is one interval on the host clock),
a restarted module's rejoining, the disk watch, the saved state, and the headless verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import psutil

from rpi_logger.core.events import Event, EventBus
from rpi_logger.core.manifest import Health
from rpi_logger.core.master_config import MasterConfig
from rpi_logger.core.module_settings import ModuleSettings, SettingsError
from rpi_logger.core.registry import ModuleEntry, ModuleRegistry
from rpi_logger.core.session import SessionController
from rpi_logger.core.state import (
    MasterState,
    StateError,
    default_state_path,
    load_state_async,
    save_state_async,
)
from rpi_logger.core.supervisor import ModuleError
from rpi_logger.framework import protocol
from rpi_logger.framework.base import COMMON_SETTINGS
from rpi_logger.framework.discovery import (
    ModuleSpec,
    discover_modules_async,
    load_module_config_async,
    lookup,
)
from rpi_logger.io import clock
from rpi_logger.io.loop_monitor import LoopLagMonitor
from rpi_logger.logging_setup import add_log_file, remove_log_file

__all__ = ["DISK_FULL", "DiskFullError", "Master", "MasterConfig", "MasterError", "free_mb"]

log = logging.getLogger("rpi_logger.master")

DISK_CHECK_PERIOD_S = 1.0
DISK_FULL = "disk full"
NOTES = "Notes"
#: Commands only the master sends (they keep the modules in step); `request` refuses them.
_LIFECYCLE = frozenset(protocol.COMMAND_ARGS) - {"status"}


class MasterError(Exception):
    """An expected failure of a master operation (bad state, unknown module...)."""


class DiskFullError(MasterError):
    """The data folder is below the free-space threshold: nothing more can be recorded."""


def free_mb(path: Path) -> float:
    """Free space, in MB, of the file system holding `path` (or its nearest existing parent).

    Blocking (a statvfs): call it off the loop.
    """
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free / 1e6


class Master:
    """Use as `async with Master(config) as master:`; leaving the block stops every module."""

    def __init__(self, config: MasterConfig) -> None:
        self.config = config
        self.events = EventBus(name="master events")
        self.monitor = LoopLagMonitor()
        self.state = MasterState()
        self.specs: list[ModuleSpec] = []
        self.session: SessionController | None = None
        #: Why recording had to stop for good (e.g. "disk full"); None while all is well.
        self.halt_reason: str | None = None
        self.halted = asyncio.Event()
        self._lock = asyncio.Lock()  # one session or trial change at a time
        self.registry = ModuleRegistry(
            config, self.events, self._lock, self._settings_for, self._rejoin
        )
        self.events.add_listener(self._on_event)
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._autosave: asyncio.Task[None] | None = None
        self._log_handle: Any = None
        self._process = psutil.Process()
        self.module_settings = ModuleSettings()

    @property
    def modules(self) -> dict[str, ModuleEntry]:
        """Every module started in this run, by name."""
        return self.registry.entries

    def alive(self) -> list[ModuleEntry]:
        """The modules running and in good standing."""
        return self.registry.running()

    # -- lifetime -------------------------------------------------------------------------
    async def __aenter__(self) -> Master:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self.registry.attach(self._tg)
        self._tasks = [
            self._tg.create_task(self.monitor.run(), name="master-loop-monitor"),
            self._tg.create_task(self._watch_disk(), name="disk-watch"),
        ]
        self.specs = await discover_modules_async(self.config.module_dirs)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await asyncio.shield(self.shutdown())
        except BaseException:
            self.registry.kill_all()  # whatever went wrong, no module may outlive the master
            raise
        finally:
            for task in [*self._tasks, self._autosave]:
                if task is not None:
                    task.cancel()
            self.events.close()
            assert self._tg is not None
            # The group is closed as if the body ended normally: the body's own exception (if
            # any) then propagates as itself, not wrapped in an ExceptionGroup.
            await self._tg.__aexit__(None, None, None)

    async def shutdown(self) -> None:
        """Stop any trial, end the session, stop every module (quit -> SIGTERM -> SIGKILL).

        Restarts are called off first, so nothing started late can outlive the master.
        """
        await self.registry.stop_restarts()
        with contextlib.suppress(MasterError):
            if self.session is not None and self.session.current is not None:
                await self.stop_trial()
        with contextlib.suppress(MasterError):
            if self.session is not None:
                await self.end_session()
        await self.registry.stop_all()

    # -- modules --------------------------------------------------------------------------
    def spec(self, name: str) -> ModuleSpec:
        """The valid module called `name` (any case); MasterError says why there is none."""
        spec = lookup(self.specs, name)
        if spec is None:
            known = ", ".join(s.name for s in self.specs if s.valid)
            raise MasterError(f"unknown module {name!r} (available: {known})")
        if not spec.valid:
            raise MasterError(f"module {spec.name!r} is rejected: {spec.reason}")
        return spec

    async def start_modules(self, names: list[str]) -> dict[str, str | None]:
        """Start and configure the named modules (each once, whatever the case or repeats);
        returns name -> error (None when ok)."""
        specs = list({s.name: s for s in (self.spec(n) for n in names)}.values())
        results = await asyncio.gather(*(self.registry.start(s) for s in specs))
        return {s.name: err for s, err in zip(specs, results, strict=True)}

    async def request(
        self, module: str, command: str, args: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Send one module a command of its own (`add_note`, `get_notes`, ...) and return its
        reply. MasterError carries the module's own message, or says it is not running."""
        if command in _LIFECYCLE:
            raise MasterError(f"{command!r} is the master's to send (start/stop a trial instead)")
        name = self.spec(module).name
        entry = self.modules.get(name)
        if entry is None or entry.proc is None or not entry.running:
            raise MasterError(f"the {name} module is not running")
        try:
            return await entry.proc.request(command, args or {}, timeout=timeout)
        except ModuleError as exc:
            raise MasterError(str(exc).split(": ", 1)[-1]) from None

    def recording(self) -> list[str]:
        """The modules recording the running trial (none between trials)."""
        if self.session is None or self.session.current is None:
            return []
        return [e.name for e in self.alive()]

    async def add_note(self, text: str) -> dict[str, Any]:
        """Add a note (on disk before this returns). Its `modules` column names the modules
        recording the trial at that moment, not the Notes module that takes the note."""
        modules = [name for name in self.recording() if name != NOTES]
        note = await self.request(NOTES, "add_note", {"text": text, "modules": modules})
        self.events.publish({"event": "note", "module": NOTES, "data": note})
        return note

    # -- persistent state -------------------------------------------------------------------
    def _settings_for(self, name: str) -> dict[str, Any]:
        """Saved settings overlaid with this run's overrides (`--set`, the UI)."""
        return {**self.state.settings.get(name, {}), **self.config.overrides.get(name, {})}

    async def _save_state(self) -> None:
        try:
            await save_state_async(self.state, self.config.state_path)
        except StateError as exc:  # logged by the state module; the change applies all the same
            raise MasterError(f"the change applies now but was not saved: {exc}") from None

    async def restore(self) -> dict[str, str | None]:
        """Load the saved state and start the modules it says are enabled."""
        self.state = await load_state_async(self.config.state_path)
        known = [n for n in self.state.enabled if any(s.valid and s.name == n for s in self.specs)]
        for name in set(self.state.enabled) - set(known):
            log.warning("saved state enables %s, which is not installed; skipped", name)
        return await self.start_modules(known)

    async def start_enabled(self) -> dict[str, str | None]:
        """Start the modules to run: those the saved state enables, or on a first start (no
        state saved yet) every valid module whose config.txt says `enabled = true`."""
        path = self.config.state_path
        if path is None:
            path = default_state_path()
        if await asyncio.to_thread(path.exists):
            return await self.restore()
        setting = next(s for s in COMMON_SETTINGS if s.name == "enabled")
        names = []
        for spec in self.specs:
            if not spec.valid:
                continue
            raw = await load_module_config_async(spec.path)
            with contextlib.suppress(ValueError):
                if setting.parse(raw.get("enabled")):
                    names.append(spec.name)
        self.state.enabled = list(names)
        return await self.start_modules(names)

    async def read_module_settings(self, name: str) -> tuple[list[Any], dict[str, Any]]:
        """A module's settings schema and the values its config.txt holds (typed)."""
        spec = self.spec(name)
        try:
            schema = await self.module_settings.schema(spec.path)
            return schema, await self.module_settings.read(spec.path)
        except SettingsError as exc:
            raise MasterError(str(exc)) from None

    async def write_module_settings(self, name: str, values: dict[str, Any]) -> dict[str, Any]:
        """Validate settings, write them to the module's config.txt (comments kept) and apply
        them to the running module. Refused during a trial (a module reconfigured mid-trial
        would change its files' format). Returns the values as written, typed."""
        spec = self.spec(name)
        if self.session is not None and self.session.current is not None:
            raise MasterError("settings cannot change while a trial records; stop it first")
        try:
            typed = await self.module_settings.write(spec.path, values)
        except SettingsError as exc:
            raise MasterError(str(exc)) from None
        # A saved override of the same key would hide the new value: config.txt is the truth.
        saved = self.state.settings.get(spec.name, {})
        if any(k in saved for k in typed):
            self.state.settings[spec.name] = {k: v for k, v in saved.items() if k not in typed}
            await self._save_state()
        entry = self.modules.get(spec.name)
        if entry is not None and entry.running and entry.proc is not None:
            try:
                result = await entry.proc.request(
                    "configure",
                    {"simulate": self.config.simulate, "settings": self._settings_for(spec.name)},
                    timeout=30,
                )
            except ModuleError as exc:
                raise MasterError(f"saved, but the running module refused them: {exc}") from None
            entry.devices = result.get("devices", entry.devices)
        return typed

    async def enable_module(self, name: str) -> str | None:
        """Start a module and remember it as enabled; returns its start error, if any."""
        spec = self.spec(name)
        entry = self.modules.get(spec.name)
        error = None
        if entry is None or entry.proc is None or not entry.proc.alive:
            error = await self.registry.start(spec)
        if spec.name not in self.state.enabled:
            self.state.enabled.append(spec.name)
        await self._save_state()
        return error

    async def disable_module(self, name: str) -> None:
        """Stop a module and remember it as disabled."""
        spec = self.spec(name)
        entry = self.modules.get(spec.name)
        if entry is not None:
            await self.registry.stop(entry)
        self.state.enabled = [n for n in self.state.enabled if n != spec.name]
        await self._save_state()

    async def set_module_settings(self, name: str, settings: dict[str, Any]) -> dict[str, Any]:
        """Change a module's settings (applied now if it runs) and remember them."""
        spec = self.spec(name)
        merged = {**self.state.settings.get(spec.name, {}), **settings}
        entry = self.modules.get(spec.name)
        result: dict[str, Any] = {}
        if entry is not None and entry.proc is not None and entry.proc.alive:
            try:
                result = await entry.proc.request(
                    "configure", {"simulate": self.config.simulate, "settings": merged}
                )
            except ModuleError as exc:
                raise MasterError(str(exc)) from None
        self.state.settings[spec.name] = merged
        await self._save_state()
        return result

    # -- disk space ----------------------------------------------------------------------
    async def check_disk(self) -> None:
        """Raise DiskFullError("disk full: ...") when the data folder is below the free-space
        threshold (a trial started there would soon lose data)."""
        where = self.session.directory if self.session else self.config.data_dir
        free = await asyncio.to_thread(free_mb, where)
        if free < self.config.min_free_mb:
            raise DiskFullError(
                f"{DISK_FULL}: {free:.1f} MB free in {where} "
                f"(at least {self.config.min_free_mb:g} MB needed to record)"
            )

    async def _watch_disk(self) -> None:
        """While a trial records, stop it cleanly once free space falls below the threshold."""
        while True:
            await asyncio.sleep(DISK_CHECK_PERIOD_S)
            if self.session is None or self.session.current is None or self.registry.closing:
                continue
            try:
                await self.check_disk()
            except DiskFullError as exc:
                await self.halt(DISK_FULL, str(exc))
            except OSError as exc:  # the folder vanished (unmounted card...): nothing to save to
                await self.halt("storage lost", f"cannot check free space: {exc}")

    async def halt(self, reason: str, detail: str) -> None:
        """Stop recording for good: the running trial stops a lead time from now, with
        `reason` in the manifest; no further trial starts. `detail` is the log line."""
        if self.halt_reason is None:
            self.halt_reason = reason
            log.error("%s; stopping the recording", detail)
            self.halted.set()
            if self.session is not None:
                self.session.halt(reason, detail)
        with contextlib.suppress(MasterError):
            if self.session is not None and self.session.current is not None:
                await self.stop_trial(reason=reason, cut_short=True)

    # -- sessions and trials --------------------------------------------------------------
    async def start_session(
        self, label: str | None = None, data_dir: Path | None = None
    ) -> SessionController:
        """Start a session in `data_dir` (default: the configured data folder)."""
        data_dir = data_dir or self.config.data_dir
        async with self._lock:
            if self.session is not None:
                raise MasterError("a session is already running")
            assert self._tg is not None
            await self.check_disk()
            simulated = self.config.simulate or any(
                e.last_status.get("simulated") for e in self.modules.values()
            )
            try:
                session = await SessionController.create(
                    data_dir, clock.now(), label, self.registry.manifest(), simulated
                )
            except OSError as exc:
                raise MasterError(
                    f"cannot create a session folder in {data_dir}: {exc.strerror or exc}"
                ) from None
            self.session = session
            self._autosave = self._tg.create_task(session.autosave(), name="manifest-saver")
            try:
                self._log_handle = await asyncio.to_thread(
                    add_log_file, session.directory / "master.log"
                )
            except OSError as exc:
                log.error("no master.log in the session: %s", exc)
            # The master's CPU figure in the manifest is its average over the session.
            await asyncio.to_thread(self._process.cpu_percent, None)
            log.info("session %s started", session.directory)
            replies = await self.registry.broadcast("start_session", self._session_args())
            for result in replies.values():
                for entry in (result or {}).get("files", []):
                    session.upsert_file(entry)
            await session.save()
            self.events.publish(
                {"event": "session", "data": {"id": session.directory.name, "state": "started"}}
            )
            return session

    def _session_args(self) -> dict[str, Any]:
        assert self.session is not None
        return {
            "session_dir": str(self.session.directory),
            "session_start_mono_ns": self.session.started.t_mono_ns,
        }

    async def start_trial(self, label: str | None = None) -> dict[str, Any]:
        """Start the next trial at one instant, a lead time from now, for every module.

        Returns the trial as the manifest has it. A module that is restarting is waited for
        (`RESTART_WAIT_S`), so the trial does not start without it."""
        await self.registry.settle_restarts()
        async with self._lock:
            session = self._need_session()
            if session.current is not None:
                raise MasterError("a trial is already recording")
            if self.halt_reason is not None:
                raise MasterError(f"recording stopped: {self.halt_reason}")
            await self.check_disk()
            at = time.monotonic_ns() + self.config.lead_ns
            trial = session.add_trial(label, clock.stamp(at))
            for entry in self.modules.values():
                entry.part = 1
                if entry.status == "failed":
                    # A module that is down when the trial starts is missing from it.
                    entry.failed_trials.add(trial.number)
            self.monitor.begin_trial()
            await self.registry.broadcast(
                "start_trial", {"at_mono_ns": at, "trial": trial.number, "label": label, "part": 1}
            )
            self.events.publish(
                {
                    "event": "trial",
                    "data": {"number": trial.number, "state": "recording", "start_mono_ns": at},
                }
            )
            return trial.to_json()

    async def stop_trial(
        self, at_mono_ns: int | None = None, reason: str | None = None, cut_short: bool = False
    ) -> dict[str, Any]:
        """Stop the running trial at one instant for every module; collects their files and
        returns the trial as the manifest has it.

        The instant defaults to a lead time from now; a caller that planned it (a timed trial)
        passes it, at least a lead time ahead. `reason` (e.g. "disk full", "SIGINT") is kept in
        the manifest; `cut_short` marks the trial interrupted although its files closed
        properly (a halt: the recording could not go on). Once begun, a stop runs to its end
        even if the caller is cancelled, so no module is left recording.
        """
        async with self._lock:
            session = self._need_session()
            trial = session.current
            if trial is None:
                raise MasterError("no trial is recording")
            if at_mono_ns is None:
                at_mono_ns = time.monotonic_ns() + self.config.lead_ns
            at = max(at_mono_ns, trial.start.t_mono_ns)
            await asyncio.shield(self._stop_trial(session, at, reason, cut_short))
            return trial.to_json()

    async def _stop_trial(
        self, session: SessionController, at: int, reason: str | None, cut_short: bool
    ) -> None:
        replies = await self.registry.broadcast("stop_trial", {"at_mono_ns": at}, timeout=30)
        trial = session.current
        assert trial is not None
        health: dict[str, Health] = {}
        for name, result in replies.items():
            for entry in (result or {}).get("files", []):
                session.upsert_file({"status": "complete", **entry}, trial.number)
            if result and "loop_lag_ms" in result:
                health[name] = Health(result["loop_lag_ms"])
        health["master"] = Health(self.monitor.end_trial())
        failed = any(trial.number in e.failed_trials for e in self.modules.values())
        session.finish_trial(
            clock.stamp(at), cut_short=cut_short or failed, reason=reason, health=health
        )
        await session.save()
        log.info("trial %d %s", trial.number, trial.status)
        self.events.publish(
            {"event": "trial", "data": {"number": trial.number, "state": trial.status}}
        )

    async def end_session(self) -> SessionController:
        async with self._lock:
            session = self._need_session()
            if session.current is not None:
                raise MasterError("stop the trial before ending the session")
            replies = await self.registry.broadcast("end_session", {})
            for result in replies.values():
                # Session-wide files (notes.csv) come back with their final status.
                for entry in (result or {}).get("files", []):
                    session.upsert_file(entry)
            session.set_health(await self._final_health())
            session.set_modules(self.registry.manifest())
            session.end()
            await session.save()
            if self._autosave is not None:  # after the final save: nothing is left to save
                self._autosave.cancel()
                await asyncio.wait([self._autosave])
                self._autosave = None
            log.info("session %s ended", session.directory)
            if self._log_handle is not None:
                await asyncio.to_thread(remove_log_file, self._log_handle)
                self._log_handle = None
            self.session = None
            self.events.publish(
                {"event": "session", "data": {"id": session.directory.name, "state": "ended"}}
            )
            return session

    async def _final_health(self) -> dict[str, Health]:
        """Each process's figures as the session ends: loop lag from a fresh `status` reply
        (the last heartbeat's when there is none), CPU and memory from its last heartbeat."""

        async def final(entry: ModuleEntry) -> Health | None:
            beat = entry.proc.health.heartbeat if entry.proc else {}
            lag = beat.get("loop_lag_ms")
            if entry.running and entry.proc is not None:
                with contextlib.suppress(ModuleError):
                    reply = await entry.proc.request("status", timeout=2.0)
                    lag = reply.get("loop_lag_ms", lag)
            return Health(lag, beat.get("cpu_percent"), beat.get("rss_mb")) if lag else None

        entries = list(self.modules.values())
        figures = await asyncio.gather(*(final(e) for e in entries))
        health = {e.name: h for e, h in zip(entries, figures, strict=True) if h is not None}
        cpu, rss = await asyncio.to_thread(
            lambda: (self._process.cpu_percent(None), self._process.memory_info().rss)
        )
        health["master"] = Health(self.monitor.snapshot(), cpu, round(rss / 1e6, 1))
        return health

    def _need_session(self) -> SessionController:
        if self.session is None:
            raise MasterError("no session is running")
        return self.session

    async def _rejoin(self, entry: ModuleEntry) -> None:
        """A restarted module joins the session and the running trial as they are now (the
        registry calls this under the operation lock, so it never races a start or stop).

        A joined trial is timed from its own start (`trial_start_mono_ns`), so part-2 files
        line up with part 1 and with the other modules.
        """
        session = self.session
        if session is None:
            return
        assert entry.proc is not None
        await entry.proc.request("start_session", self._session_args())
        trial = session.current
        if trial is not None:
            entry.part += 1
            await entry.proc.request(
                "start_trial",
                {
                    "at_mono_ns": time.monotonic_ns() + self.config.lead_ns,
                    "trial_start_mono_ns": trial.start.t_mono_ns,
                    "trial": trial.number,
                    "label": trial.label,
                    "part": entry.part,
                },
            )

    def _on_event(self, event: Event) -> None:
        """The manifest's share of the events: module states and files opened mid-trial."""
        session = self.session
        if session is None:
            return
        if event["event"] == "module":
            current = session.current
            if event["data"]["status"] == "failed" and current is not None:
                self.modules[event["module"]].failed_trials.add(current.number)
                session.mark_interrupted(event["module"])
            session.set_modules(self.registry.manifest())
        elif event["event"] == protocol.EV_FILE:
            data = event["data"]
            with contextlib.suppress(KeyError, TypeError, ValueError):
                session.upsert_file({**data["file"], "status": "recording"}, data["trial"])

    # -- headless verdict ------------------------------------------------------------------
    def recorded_everything(self, session: SessionController, names: list[str]) -> list[str]:
        """Problems that make a headless recording unsuccessful (empty list: all good)."""
        problems = []
        if self.halt_reason is not None:
            problems.append(f"recording stopped: {self.halt_reason}")
        for name in names:
            entry = self.modules.get(name)
            if entry is None:
                problems.append(f"{name}: not started")
                continue
            for t in sorted(entry.failed_trials):
                problems.append(f"{name}: failed during trial {t} ({entry.error})")
            if entry.status == "failed" and not entry.failed_trials:
                problems.append(f"{name}: {entry.error}")
        for trial in session.trials:
            if trial.status != "complete":
                why = f" ({trial.reason})" if trial.reason else ""
                problems.append(f"trial {trial.number}: {trial.status}{why}")
        return problems
