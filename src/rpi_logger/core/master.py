"""The master: runs module processes, drives sessions and synchronized trials, keeps the manifest.

Every module gets the same `at_mono_ns` for a trial's start and stop, a lead time ahead, so a
trial is one interval on the host clock for all of them. A module that dies is marked failed, its
open files are listed as interrupted, and the others keep recording; with `restart_on_crash` it
is started again and rejoins the running trial.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from rpi_logger.core.session import Session
from rpi_logger.core.state import MasterState, StateError, load_state_async, save_state_async
from rpi_logger.core.supervisor import ModuleError, ModuleProcess
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

log = logging.getLogger("rpi_logger.master")

NOTES = "Notes"
MAX_RESTARTS = 5
RESTART_DELAY_S = 0.2
DISK_CHECK_PERIOD_S = 1.0
DISK_FULL = "disk full"


class MasterError(Exception):
    """An expected failure of a master operation (bad state, unknown module...)."""


@dataclass(slots=True)
class MasterConfig:
    data_dir: Path
    module_dirs: list[Path] = field(default_factory=list)
    lead_time_ms: int = 200
    simulate: bool = False
    log_level: str = "INFO"
    state_path: Path | None = None  # None: the user's config folder
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # module -> settings
    # Below this much free space in the data folder a trial stops cleanly ("disk full"), with
    # room left for the manifest and the files' last flushes.
    min_free_mb: float = 100.0


@dataclass(slots=True)
class ModuleEntry:
    """What the master knows of one enabled module."""

    spec: ModuleSpec
    restart_on_crash: bool = False
    proc: ModuleProcess | None = None
    status: str = "stopped"  # ok | failed | stopped
    error: str | None = None
    devices: list[Any] = field(default_factory=list)
    restarts: int = 0
    part: int = 1  # file part within the current trial (grows with each restart)
    failed_trials: set[int] = field(default_factory=set)
    last_status: dict[str, Any] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error": self.error,
            "devices": self.devices,
            "restarts": self.restarts,
        }


def _restart_on_crash(raw: dict[str, str]) -> bool:
    """The module's `restart_on_crash`, read with the same rules the module itself uses; a bad
    value counts as false here (the module refuses to start with a clear message anyway)."""
    setting = next(s for s in COMMON_SETTINGS if s.name == "restart_on_crash")
    try:
        return bool(setting.parse(raw.get("restart_on_crash")))
    except ValueError:
        return False


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
        self.modules: dict[str, ModuleEntry] = {}
        self.session: Session | None = None
        self.monitor = LoopLagMonitor()
        self.specs: list[ModuleSpec] = []
        self._tg: asyncio.TaskGroup | None = None
        self._save_wanted = asyncio.Event()
        self._background: list[asyncio.Task[Any]] = []
        self._restarts: set[asyncio.Task[None]] = set()
        self._closing = False
        self._log_handle: Any = None
        self._op_lock = asyncio.Lock()
        self.listeners: list[Any] = []  # callables(event: dict) for the UI / API
        self.state = MasterState()
        self._own_usage: dict[str, float] = {}
        #: Why recording had to stop for good (e.g. "disk full"); None while all is well.
        self.halt_reason: str | None = None
        self.halted = asyncio.Event()

    # -- lifetime -------------------------------------------------------------------------
    async def __aenter__(self) -> Master:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._background = [
            self._tg.create_task(self.monitor.run(), name="master-loop-monitor"),
            self._tg.create_task(self._saver(), name="manifest-saver"),
            self._tg.create_task(self._sample_own_usage(), name="master-usage"),
            self._tg.create_task(self._watch_disk(), name="disk-watch"),
        ]
        self.specs = await discover_modules_async(self.config.module_dirs)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await asyncio.shield(self.shutdown())
        except BaseException:
            # Whatever went wrong, no module may outlive the master.
            for entry in self.modules.values():
                if entry.proc is not None:
                    entry.proc.kill_now()
            raise
        finally:
            for task in [*self._background, *self._restarts]:
                task.cancel()
            assert self._tg is not None
            # The group is closed as if the body ended normally: the body's own exception (if
            # any) then propagates as itself, not wrapped in an ExceptionGroup.
            await self._tg.__aexit__(None, None, None)

    async def shutdown(self) -> None:
        """Stop any trial, end the session, stop every module (quit -> SIGTERM -> SIGKILL).

        From here on no module is restarted: a restart in progress is called off, so nothing
        started late can outlive the master.
        """
        self._closing = True
        for task in list(self._restarts):
            task.cancel()
        if self._restarts:
            await asyncio.gather(*self._restarts, return_exceptions=True)
        with contextlib.suppress(MasterError):
            if self.session is not None and self.session.current_trial is not None:
                await self.stop_trial()
        with contextlib.suppress(MasterError):
            if self.session is not None:
                await self.end_session()
        await self.stop_modules()

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
        results = await asyncio.gather(*(self._start_module(s) for s in specs))
        return {s.name: err for s, err in zip(specs, results, strict=True)}

    def _settings_for(self, name: str) -> dict[str, Any]:
        """Saved settings overlaid with this run's overrides (`--set`, the UI)."""
        return {**self.state.settings.get(name, {}), **self.config.overrides.get(name, {})}

    async def _start_module(self, spec: ModuleSpec) -> str | None:
        raw = await load_module_config_async(spec.path)
        # The restart policy obeys the same overrides the module itself is configured with.
        raw.update(
            {
                k: str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in self._settings_for(spec.name).items()
            }
        )
        entry = self.modules.get(spec.name) or ModuleEntry(spec)
        entry.restart_on_crash = _restart_on_crash(raw)
        self.modules[spec.name] = entry
        error = await self._launch(entry)
        if error is None:
            self._set_ok(entry)
        return error

    async def _launch(self, entry: ModuleEntry) -> str | None:
        """Spawn the module's process and configure it; returns the error, if any.

        The entry is not marked running here: a restarted module first rejoins the session.
        """
        assert self._tg is not None
        proc = ModuleProcess(
            entry.spec,
            simulate=self.config.simulate,
            extra_dirs=self.config.module_dirs,
            on_event=self._on_event,
            on_exit=self._on_exit,
            log_level=self.config.log_level,
        )
        entry.proc = proc
        self._tg.create_task(proc.run(), name=f"module-{entry.spec.name}")
        try:
            await proc.started()
            result = await proc.request(
                "configure",
                {"simulate": self.config.simulate, "settings": self._settings_for(entry.spec.name)},
                timeout=30,
            )
        except (ModuleError, TimeoutError) as exc:
            entry.status, entry.error = "failed", f"failed to start: {exc}"
            log.error("%s", entry.error)
            await proc.stop()
            return entry.error
        entry.devices = result.get("devices", [])
        return None

    def _set_ok(self, entry: ModuleEntry) -> None:
        entry.status, entry.error = "ok", None
        self._manifest_modules()
        self._save_soon()

    # -- persistent state -------------------------------------------------------------------
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

    async def enable_module(self, name: str) -> str | None:
        """Start a module and remember it as enabled; returns its start error, if any."""
        spec = self.spec(name)
        entry = self.modules.get(spec.name)
        error = None
        if entry is None or entry.proc is None or not entry.proc.alive:
            error = await self._start_module(spec)
        if spec.name not in self.state.enabled:
            self.state.enabled.append(spec.name)
        await self._save_state()
        return error

    async def disable_module(self, name: str) -> None:
        """Stop a module and remember it as disabled."""
        spec = self.spec(name)
        entry = self.modules.get(spec.name)
        if entry is not None and entry.proc is not None:
            await entry.proc.stop()
            entry.status = "stopped"
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

    async def stop_modules(self) -> None:
        procs = [e.proc for e in self.modules.values() if e.proc is not None]
        await asyncio.gather(*(p.stop() for p in procs))
        for entry in self.modules.values():
            if entry.status == "ok":
                entry.status = "stopped"
        self._manifest_modules()
        self._save_soon()

    def alive(self) -> list[ModuleEntry]:
        return [
            e
            for e in self.modules.values()
            if e.proc is not None and e.proc.alive and e.status == "ok"
        ]

    # -- disk space ----------------------------------------------------------------------
    async def check_disk(self) -> None:
        """Raise MasterError("disk full: ...") when the data folder is below the free-space
        threshold (a trial started there would soon lose data)."""
        where = self.session.directory if self.session else self.config.data_dir
        free = await asyncio.to_thread(free_mb, where)
        if free < self.config.min_free_mb:
            raise MasterError(
                f"{DISK_FULL}: {free:.1f} MB free in {where} "
                f"(at least {self.config.min_free_mb:g} MB needed to record)"
            )

    async def _watch_disk(self) -> None:
        """While a trial records, stop it cleanly once free space falls below the threshold."""
        while True:
            await asyncio.sleep(DISK_CHECK_PERIOD_S)
            if self.session is None or self.session.current_trial is None or self._closing:
                continue
            try:
                await self.check_disk()
            except MasterError as exc:
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
                self.session.manifest["halted"] = {"reason": reason, "detail": detail}
        with contextlib.suppress(MasterError):
            if self.session is not None and self.session.current_trial is not None:
                await self.stop_trial(reason=reason, cut_short=True)

    # -- sessions and trials --------------------------------------------------------------
    async def start_session(self, label: str | None = None) -> Session:
        async with self._op_lock:
            if self.session is not None:
                raise MasterError("a session is already running")
            await self.check_disk()
            simulated = self.config.simulate or any(
                e.last_status.get("simulated") for e in self.modules.values()
            )
            try:
                self.session = await Session.create(
                    self.config.data_dir, clock.now(), label, self._module_manifest(), simulated
                )
            except OSError as exc:
                raise MasterError(
                    f"cannot create a session folder in {self.config.data_dir}: "
                    f"{exc.strerror or exc}"
                ) from None
            try:
                self._log_handle = await asyncio.to_thread(
                    add_log_file, self.session.directory / "master.log"
                )
            except OSError as exc:
                log.error("no master.log in the session: %s", exc)
            log.info("session %s started", self.session.directory)
            replies = await self._broadcast("start_session", self._session_args())
            for result in replies.values():
                self.session.manifest["files"].extend((result or {}).get("files", []))
            await self.session.save()
            self._notify(
                {
                    "event": "session",
                    "data": {"id": self.session.directory.name, "state": "started"},
                }
            )
            return self.session

    def _session_args(self) -> dict[str, Any]:
        assert self.session is not None
        return {
            "session_dir": str(self.session.directory),
            "session_start_mono_ns": self.session.started.t_mono_ns,
        }

    async def start_trial(self, label: str | None = None) -> dict[str, Any]:
        """Start the next trial at one instant, a lead time from now, for every module."""
        async with self._op_lock:
            session = self._need_session()
            if session.current_trial is not None:
                raise MasterError("a trial is already recording")
            if self.halt_reason is not None:
                raise MasterError(f"recording stopped: {self.halt_reason}")
            await self.check_disk()
            number = len(session.trials) + 1
            at = time.monotonic_ns() + self.config.lead_time_ms * 1_000_000
            trial = session.add_trial(number, label, clock.stamp(at))
            for entry in self.modules.values():
                entry.part = 1
                if entry.status == "failed":
                    # A module that is down when the trial starts is missing from it.
                    entry.failed_trials.add(number)
            self.monitor.begin_trial()
            await self._broadcast(
                "start_trial", {"at_mono_ns": at, "trial": number, "label": label, "part": 1}
            )
            self._save_soon()
            self._notify(
                {
                    "event": "trial",
                    "data": {"number": number, "state": "recording", "start_mono_ns": at},
                }
            )
            return trial

    async def stop_trial(
        self, at_mono_ns: int | None = None, reason: str | None = None, cut_short: bool = False
    ) -> dict[str, Any]:
        """Stop the running trial at one instant for every module; collects their files.

        The instant defaults to a lead time from now; a caller that planned it (a timed trial)
        passes it, at least a lead time ahead. `reason` (e.g. "disk full", "SIGINT") is kept in
        the manifest; `cut_short` marks the trial interrupted although its files closed
        properly (a halt: the recording could not go on). Once begun, a
        stop runs to its end even if the caller is cancelled, so no module is left recording.
        """
        async with self._op_lock:
            session = self._need_session()
            trial = session.current_trial
            if trial is None:
                raise MasterError("no trial is recording")
            if at_mono_ns is None:
                at_mono_ns = time.monotonic_ns() + self.config.lead_time_ms * 1_000_000
            at = max(at_mono_ns, trial["start"]["mono_ns"])
            await asyncio.shield(self._stop_trial(session, trial, at, reason, cut_short))
            return trial

    async def _stop_trial(
        self,
        session: Session,
        trial: dict[str, Any],
        at: int,
        reason: str | None,
        cut_short: bool,
    ) -> None:
        replies = await self._broadcast("stop_trial", {"at_mono_ns": at}, timeout=30)
        trial_health: dict[str, Any] = {}
        for name, result in replies.items():
            for entry in (result or {}).get("files", []):
                entry.setdefault("status", "complete")
                Session.upsert_file(trial, entry)
            if result and "loop_lag_ms" in result:
                trial_health[name] = {"loop_lag_ms": result["loop_lag_ms"]}
        trial["stop"] = clock.stamp(at).as_dict()
        failed = [n for n, e in self.modules.items() if trial["number"] in e.failed_trials]
        interrupted = (
            cut_short or failed or any(f.get("status") != "complete" for f in trial["files"])
        )
        trial["status"] = "interrupted" if interrupted else "complete"
        if reason is not None:
            trial["reason"] = reason
        trial_health["master"] = {"loop_lag_ms": self.monitor.end_trial()}
        trial["health"] = trial_health
        self._update_health()
        await session.save()
        log.info("trial %d %s", trial["number"], trial["status"])
        self._notify(
            {"event": "trial", "data": {"number": trial["number"], "state": trial["status"]}}
        )

    async def end_session(self) -> Session:
        async with self._op_lock:
            session = self._need_session()
            if session.current_trial is not None:
                raise MasterError("stop the trial before ending the session")
            replies = await self._broadcast("end_session", {})
            for result in replies.values():
                # Session-wide files (notes.csv) come back with their final status.
                for entry in (result or {}).get("files", []):
                    Session.upsert_file(session.manifest, entry)
            session.manifest["ended"] = clock.now().as_dict()
            self._update_health()
            session.manifest["modules"] = self._module_manifest()
            await session.save()
            log.info("session %s ended", session.directory)
            if self._log_handle is not None:
                await asyncio.to_thread(remove_log_file, self._log_handle)
                self._log_handle = None
            self.session = None
            self._notify(
                {"event": "session", "data": {"id": session.directory.name, "state": "ended"}}
            )
            return session

    def _need_session(self) -> Session:
        if self.session is None:
            raise MasterError("no session is running")
        return self.session

    async def _broadcast(
        self, cmd: str, args: dict[str, Any], timeout: float = 10.0
    ) -> dict[str, dict[str, Any] | None]:
        """Send one command to every running module at once; a failure fails that module only."""
        entries = self.alive()

        async def one(entry: ModuleEntry) -> dict[str, Any] | None:
            assert entry.proc is not None
            try:
                return await entry.proc.request(cmd, args, timeout=timeout)
            except ModuleError as exc:
                log.error("%s: %s failed: %s", entry.spec.name, cmd, exc)
                if entry.proc.alive:
                    # A module that refuses a lifecycle command cannot keep the trial in step.
                    self._mark_failed(entry, f"{cmd} failed: {exc}")
                return None

        results = await asyncio.gather(*(one(e) for e in entries))
        return {e.spec.name: r for e, r in zip(entries, results, strict=True)}

    # -- notes ----------------------------------------------------------------------------
    async def add_note(self, text: str) -> dict[str, Any]:
        """Add a note; returns once the Notes module has it on disk."""
        entry = self.modules.get(NOTES)
        if entry is None or entry.proc is None or not entry.proc.alive:
            raise MasterError("the Notes module is not running")
        recording = [
            e.spec.name
            for e in self.alive()
            if e.spec.name != NOTES and self.session and self.session.current_trial
        ]
        try:
            return await entry.proc.request("add_note", {"text": text, "modules": recording})
        except ModuleError as exc:
            raise MasterError(str(exc).split(": ", 1)[-1]) from None

    async def get_notes(self) -> list[dict[str, Any]]:
        entry = self.modules.get(NOTES)
        if entry is None or entry.proc is None or not entry.proc.alive:
            raise MasterError("the Notes module is not running")
        return (await entry.proc.request("get_notes", {}))["notes"]

    # -- events and failures ---------------------------------------------------------------
    def _on_event(self, proc: ModuleProcess, ev: protocol.Event) -> None:
        entry = self.modules.get(proc.name)
        if entry is None or entry.proc is not proc:
            return
        if ev.event in (protocol.EV_STATUS, protocol.EV_HEARTBEAT):
            entry.last_status = ev.data
        elif ev.event == protocol.EV_FILE and self.session is not None:
            number = ev.data.get("trial")
            file_entry = dict(ev.data.get("file", {}), status="recording")
            with contextlib.suppress(KeyError, TypeError):
                Session.upsert_file(self.session.trial(number), file_entry)
                self._save_soon()
        elif ev.event == protocol.EV_ERROR:
            log.error("%s: %s", proc.name, ev.data.get("message"))
        self._notify({"event": ev.event, "module": proc.name, "data": ev.data})

    def _on_exit(self, proc: ModuleProcess, reason: str) -> None:
        entry = self.modules.get(proc.name)
        if entry is None or entry.proc is not proc or reason == "stopped":
            return
        was_running = entry.status == "ok"  # a module that never started is not restarted
        self._mark_failed(entry, reason)
        if (
            was_running
            and entry.restart_on_crash
            and entry.restarts < MAX_RESTARTS
            and not self._closing
            and self._tg is not None
        ):
            task = self._tg.create_task(self._restart(entry), name=f"restart-{proc.name}")
            self._restarts.add(task)
            task.add_done_callback(self._restarts.discard)

    def _mark_failed(self, entry: ModuleEntry, reason: str) -> None:
        entry.status, entry.error = "failed", reason
        log.error("%s: marked failed: %s", entry.spec.name, reason)
        trial = self.session.current_trial if self.session else None
        if trial is not None:
            entry.failed_trials.add(trial["number"])
            for f in trial["files"]:
                if f.get("module") == entry.spec.name and f.get("status") == "recording":
                    f["status"] = "interrupted"
        if entry.proc is not None and entry.proc.alive:
            entry.proc.kill_now()  # a half-alive module must not keep writing
        self._manifest_modules()
        self._save_soon()
        self._notify(
            {
                "event": "module",
                "module": entry.spec.name,
                "data": {"status": "failed", "error": reason},
            }
        )

    async def _restart(self, entry: ModuleEntry) -> None:
        """Start a crashed module again and let it rejoin the session and the running trial.

        The process is started and configured without holding the operation lock (that takes
        a second or two), so trials start and stop on time meanwhile. Joining then happens under
        the lock, against the session as it is at that moment: a trial that stopped meanwhile
        is not joined, and a joined trial is timed from its own start (`trial_start_mono_ns`),
        so part-2 files line up with part 1 and with the other modules.
        """
        await asyncio.sleep(RESTART_DELAY_S)
        entry.restarts += 1
        log.warning("%s: restarting (%d)", entry.spec.name, entry.restarts)
        if await self._launch(entry) is not None:
            return
        assert entry.proc is not None
        async with self._op_lock:
            try:
                if self.session is not None:
                    await entry.proc.request("start_session", self._session_args())
                    trial = self.session.current_trial
                    if trial is not None:
                        entry.part += 1
                        at = time.monotonic_ns() + self.config.lead_time_ms * 1_000_000
                        await entry.proc.request(
                            "start_trial",
                            {
                                "at_mono_ns": at,
                                "trial_start_mono_ns": trial["start"]["mono_ns"],
                                "trial": trial["number"],
                                "label": trial["label"],
                                "part": entry.part,
                            },
                        )
            except ModuleError as exc:
                self._mark_failed(entry, f"restart failed: {exc}")
                return
            self._set_ok(entry)

    # -- manifest -------------------------------------------------------------------------
    def _module_manifest(self) -> dict[str, dict[str, Any]]:
        return {name: e.manifest() for name, e in self.modules.items()}

    def _manifest_modules(self) -> None:
        if self.session is not None:
            self.session.manifest["modules"] = self._module_manifest()

    def _update_health(self) -> None:
        if self.session is None:
            return
        health = self.session.manifest["health"]
        health["master"] = {"loop_lag_ms": self.monitor.snapshot(), **self._own_usage}
        for name, entry in self.modules.items():
            hb = entry.proc.health.heartbeat if entry.proc else {}
            if hb:
                health[name] = {k: hb.get(k) for k in ("loop_lag_ms", "cpu_percent", "rss_mb")}

    async def _sample_own_usage(self) -> None:
        """The master's own CPU and memory, read from /proc on a worker thread once a second."""
        proc = psutil.Process()
        await asyncio.to_thread(proc.cpu_percent, None)  # the first reading is always 0
        while True:
            await asyncio.sleep(1.0)
            cpu, rss = await asyncio.to_thread(
                lambda: (proc.cpu_percent(None), proc.memory_info().rss)
            )
            self._own_usage = {"cpu_percent": cpu, "rss_mb": round(rss / 1e6, 1)}

    def _save_soon(self) -> None:
        self._save_wanted.set()

    async def _saver(self) -> None:
        """Coalesces manifest saves requested from callbacks; one owned task, never lost."""
        while True:
            await self._save_wanted.wait()
            self._save_wanted.clear()
            if self.session is not None:
                self._update_health()
                await self.session.save()
            await asyncio.sleep(0.05)

    def _notify(self, event: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a UI's bug must not break a recording
                log.exception("event listener failed on %s", event.get("event"))

    # -- headless verdict ------------------------------------------------------------------
    def recorded_everything(self, session: Session, names: list[str]) -> list[str]:
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
            if trial["status"] != "complete":
                why = f" ({trial['reason']})" if trial.get("reason") else ""
                problems.append(f"trial {trial['number']}: {trial['status']}{why}")
        return problems
