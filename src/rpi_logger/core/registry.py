"""The module registry: which modules run, their processes, and the restart policy.

Each enabled module has one `ModuleEntry`. The registry spawns and configures its process, keeps
the set of modules that are alive, marks a module failed when its process dies or refuses a
lifecycle command, and restarts it when its `restart_on_crash` says so (at most MAX_RESTARTS
times). Every change of a module's state and every event a module sends is published on the
event bus; the session side of things (which files a failure interrupts, which trial a restarted
module rejoins) is the master's, reached through the `rejoin` callback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rpi_logger.core.events import EventBus
from rpi_logger.core.manifest import ModuleStatus
from rpi_logger.core.master_config import MasterConfig
from rpi_logger.core.supervisor import ModuleError, ModuleProcess
from rpi_logger.framework import protocol
from rpi_logger.framework.base import COMMON_SETTINGS
from rpi_logger.framework.discovery import ModuleSpec, load_module_config_async

log = logging.getLogger("rpi_logger.master")

MAX_RESTARTS = 5
RESTART_DELAY_S = 0.2
#: How long a trial start waits for modules that are restarting (a new process takes a second
#: or two, more on a busy machine): a trial is better started late than without a module.
RESTART_WAIT_S = 10.0


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

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        """Alive and in good standing: it gets the session's commands."""
        return self.proc is not None and self.proc.alive and self.status == "ok"

    def manifest(self) -> ModuleStatus:
        return ModuleStatus(self.status, self.error, list(self.devices), self.restarts)


def _restart_on_crash(raw: dict[str, str]) -> bool:
    """The module's `restart_on_crash`, read with the same rules the module itself uses; a bad
    value counts as false here (the module refuses to start with a clear message anyway)."""
    setting = next(s for s in COMMON_SETTINGS if s.name == "restart_on_crash")
    try:
        return bool(setting.parse(raw.get("restart_on_crash")))
    except ValueError:
        return False


class ModuleRegistry:
    """The enabled modules and their processes (see the module docstring).

    `settings_for(name)` gives the settings a module is configured with; `rejoin(entry)` is
    awaited, under `lock`, when a restarted module is up again and must catch up with the
    session; the task group given to `attach` owns every process and restart task.
    """

    def __init__(
        self,
        config: MasterConfig,
        bus: EventBus,
        lock: asyncio.Lock,
        settings_for: Callable[[str], dict[str, Any]],
        rejoin: Callable[[ModuleEntry], Awaitable[None]],
    ) -> None:
        self.entries: dict[str, ModuleEntry] = {}
        self._config = config
        self._bus = bus
        self._lock = lock
        self._settings_for = settings_for
        self._rejoin = rejoin
        self._tg: asyncio.TaskGroup | None = None
        self._restarts: set[asyncio.Task[None]] = set()
        self.closing = False  # no more restarts: the master is shutting down

    def attach(self, tg: asyncio.TaskGroup) -> None:
        """Own processes and restarts in `tg` from now on."""
        self._tg = tg

    def running(self) -> list[ModuleEntry]:
        """The modules alive and in good standing, in start order."""
        return [e for e in self.entries.values() if e.running]

    def manifest(self) -> dict[str, ModuleStatus]:
        return {name: e.manifest() for name, e in self.entries.items()}

    # -- starting and stopping ----------------------------------------------------------------
    async def start(self, spec: ModuleSpec) -> str | None:
        """Start and configure `spec`'s module; returns its error (None when it runs)."""
        raw = await load_module_config_async(spec.path)
        # The restart policy obeys the same overrides the module itself is configured with.
        raw.update(
            {
                k: str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in self._settings_for(spec.name).items()
            }
        )
        entry = self.entries.get(spec.name) or ModuleEntry(spec)
        entry.restart_on_crash = _restart_on_crash(raw)
        self.entries[spec.name] = entry
        error = await self._launch(entry)
        if error is None:
            self._set(entry, "ok")
        return error

    async def _launch(self, entry: ModuleEntry) -> str | None:
        """Spawn the module's process and configure it; returns the error, if any.

        The entry is not marked running here: a restarted module first rejoins the session.
        """
        assert self._tg is not None, "the registry is not attached to a task group"
        cfg = self._config
        proc = ModuleProcess(
            entry.spec,
            simulate=cfg.simulate,
            extra_dirs=cfg.module_dirs,
            on_event=self._on_event,
            on_exit=self._on_exit,
            log_level=cfg.log_level,
            master_configures=True,
        )
        entry.proc = proc
        self._tg.create_task(proc.run(), name=f"module-{entry.name}")
        try:
            await proc.started()
            result = await proc.request(
                "configure",
                {"simulate": cfg.simulate, "settings": self._settings_for(entry.name)},
                timeout=30,
            )
        except (ModuleError, TimeoutError) as exc:
            self._set(entry, "failed", f"failed to start: {exc}")
            log.error("%s", entry.error)
            await proc.stop()
            return entry.error
        entry.devices = result.get("devices", [])
        return None

    async def stop(self, entry: ModuleEntry) -> None:
        """Stop one module's process (quit -> SIGTERM -> SIGKILL); it counts as stopped."""
        if entry.proc is not None:
            await entry.proc.stop()
        if entry.status != "stopped":
            self._set(entry, "stopped")

    async def settle_restarts(self, timeout: float = RESTART_WAIT_S) -> None:
        """Wait, at most `timeout` seconds, for the restarts in progress to rejoin (call it
        without holding the operation lock: a rejoin takes it)."""
        pending = [t for t in self._restarts if not t.done()]
        if not pending:
            return
        names = ", ".join(sorted(t.get_name().removeprefix("restart-") for t in pending))
        log.info("waiting up to %.0f s for %s to restart", timeout, names)
        await asyncio.wait(pending, timeout=timeout)

    async def stop_restarts(self) -> None:
        """No module is restarted from now on; a restart in progress is called off, so nothing
        started late can outlive the master."""
        self.closing = True
        for task in list(self._restarts):
            task.cancel()
        await asyncio.gather(*self._restarts, return_exceptions=True)

    async def stop_all(self) -> None:
        """Stop every module; a failed one keeps its status for the manifest."""
        await self.stop_restarts()
        entries = self.entries.values()
        await asyncio.gather(*(e.proc.stop() for e in entries if e.proc is not None))
        for entry in entries:
            if entry.status == "ok":
                self._set(entry, "stopped")

    def kill_all(self) -> None:
        """Last resort on exit paths that cannot await: SIGKILL every process."""
        for task in self._restarts:
            task.cancel()
        for entry in self.entries.values():
            if entry.proc is not None:
                entry.proc.kill_now()

    # -- commands -----------------------------------------------------------------------------
    async def broadcast(
        self, cmd: str, args: dict[str, Any], timeout: float = 10.0
    ) -> dict[str, dict[str, Any] | None]:
        """Send one lifecycle command to every running module at once; a module that fails it
        is marked failed (it cannot keep the trial in step) and answers None."""
        entries = self.running()

        async def one(entry: ModuleEntry) -> dict[str, Any] | None:
            assert entry.proc is not None
            try:
                return await entry.proc.request(cmd, args, timeout=timeout)
            except ModuleError as exc:
                log.error("%s: %s failed: %s", entry.name, cmd, exc)
                if entry.proc.alive:
                    self.mark_failed(entry, f"{cmd} failed: {exc}")
                return None

        results = await asyncio.gather(*(one(e) for e in entries))
        return {e.name: r for e, r in zip(entries, results, strict=True)}

    # -- failures and restarts ----------------------------------------------------------------
    def mark_failed(self, entry: ModuleEntry, reason: str) -> None:
        if entry.proc is not None and entry.proc.alive:
            entry.proc.kill_now()  # a half-alive module must not keep writing
        log.error("%s: marked failed: %s", entry.name, reason)
        self._set(entry, "failed", reason)

    def _set(self, entry: ModuleEntry, status: str, error: str | None = None) -> None:
        entry.status, entry.error = status, error
        self._bus.publish(
            {"event": "module", "module": entry.name, "data": {"status": status, "error": error}}
        )

    def _on_event(self, proc: ModuleProcess, ev: protocol.Event) -> None:
        entry = self.entries.get(proc.name)
        if entry is None or entry.proc is not proc:
            return  # a process replaced by its restart
        if ev.event in (protocol.EV_STATUS, protocol.EV_HEARTBEAT):
            entry.last_status = ev.data
        elif ev.event == protocol.EV_ERROR:
            log.error("%s: %s", proc.name, ev.data.get("message"))
        self._bus.publish({"event": ev.event, "module": proc.name, "data": ev.data})

    def _on_exit(self, proc: ModuleProcess, reason: str) -> None:
        entry = self.entries.get(proc.name)
        if entry is None or entry.proc is not proc or reason == "stopped":
            return
        was_running = entry.status == "ok"  # a module that never started is not restarted
        self.mark_failed(entry, reason)
        if (
            was_running
            and entry.restart_on_crash
            and entry.restarts < MAX_RESTARTS
            and not self.closing
            and self._tg is not None
        ):
            task = self._tg.create_task(self._restart(entry), name=f"restart-{proc.name}")
            self._restarts.add(task)
            task.add_done_callback(self._restarts.discard)

    async def _restart(self, entry: ModuleEntry) -> None:
        """Start a crashed module again and let it rejoin the session and the running trial.

        The process is started and configured without holding the operation lock (that takes
        a second or two), so trials start and stop on time meanwhile. Rejoining then happens
        under the lock, against the session as it is at that moment, so it never races a
        trial's start or stop.
        """
        await asyncio.sleep(RESTART_DELAY_S)
        entry.restarts += 1
        log.warning("%s: restarting (%d)", entry.name, entry.restarts)
        if await self._launch(entry) is not None:
            return
        async with self._lock:
            try:
                await self._rejoin(entry)
            except ModuleError as exc:
                self.mark_failed(entry, f"restart failed: {exc}")
                return
            self._set(entry, "ok")
