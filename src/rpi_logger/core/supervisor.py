"""Process supervision: one OS process per module, driven over protocol v1.

`ModuleProcess` spawns a module with `asyncio.create_subprocess_exec`, reads its stdout (replies
and events) and stderr (logs) in owned tasks, matches replies to commands with timeouts, and
watches heartbeats. A module that exits, or sends no heartbeat for `HEARTBEAT_TIMEOUT_S`, is
reported through `on_exit` well within two seconds. `stop()` escalates quit -> SIGTERM -> SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from rpi_logger.framework import protocol
from rpi_logger.framework.discovery import ModuleSpec
from rpi_logger.io.process import escalation, stop_process

log = logging.getLogger("rpi_logger.supervisor")

HEARTBEAT_TIMEOUT_S = 1.5
# Until a module's first message, importing its libraries may take a while (numpy, PyAV).
STARTUP_TIMEOUT_S = 20.0
WATCHDOG_PERIOD_S = 0.1
DEFAULT_REPLY_TIMEOUT_S = 10.0


class ModuleError(Exception):
    """A command failed: an error reply, a timeout, or the module is gone."""

    def __init__(self, module: str, message: str, code: str = protocol.FAILED) -> None:
        super().__init__(f"{module}: {message}")
        self.module = module
        self.code = code


@dataclass(slots=True)
class ProcessHealth:
    last_heartbeat: float = 0.0  # time.monotonic() of the last heartbeat (or spawn)
    alive_seen: bool = False  # any message received yet
    heartbeat: dict[str, Any] = field(default_factory=dict)


class ModuleProcess:
    """One running module process and its protocol channel."""

    def __init__(
        self,
        spec: ModuleSpec,
        *,
        simulate: bool = False,
        extra_dirs: list[Path] | None = None,
        on_event: Callable[[ModuleProcess, protocol.Event], None] | None = None,
        on_exit: Callable[[ModuleProcess, str], None] | None = None,
        log_level: str = "INFO",
        master_configures: bool = False,
    ) -> None:
        self.spec = spec
        #: The caller sends `configure` right after the start: the module waits for it.
        self.master_configures = master_configures
        self.name = spec.name
        self.simulate = simulate
        self.extra_dirs = extra_dirs or []
        self.on_event = on_event
        self.on_exit = on_exit
        self.log_level = log_level
        self.proc: asyncio.subprocess.Process | None = None
        self.health = ProcessHealth()
        self.exit_reason: str | None = None
        self.stopping = False
        #: It answered `quit`: it is exiting and owes no more heartbeats (see _watchdog).
        self.quit_answered = False
        self._pending: dict[int, asyncio.Future[protocol.Reply]] = {}
        self._next_id = 1
        self._exited = asyncio.Event()
        self._spawn_done = asyncio.Event()
        self._write_lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and not self._exited.is_set()

    def command_line(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "rpi_logger",
            "--log-level",
            self.log_level,
            "module",
            str(self.spec.path),
            "--supervised",
        ]
        if self.simulate:
            cmd.append("--simulate")
        if self.master_configures:
            cmd.append("--master-configures")
        return cmd

    async def run(self) -> None:
        """Start the process and serve it until it exits. Owned by the master's TaskGroup.

        Never raises (but for cancellation): whatever happens to one module is reported through
        `on_exit`, so it can never take the master's TaskGroup, and the other modules, down.
        """
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command_line(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                limit=protocol.MAX_LINE_BYTES + 2,
                start_new_session=True,  # a Ctrl-C for the master is not also a SIGINT for modules
            )
        except OSError as exc:
            self._spawn_done.set()
            self.exit_reason = f"could not start: {exc}"
            log.error("%s: %s", self.name, self.exit_reason)
            self._exited.set()
            if self.on_exit is not None:
                self.on_exit(self, self.exit_reason)
            return
        self._spawn_done.set()
        if self.stopping:  # stop() came while it was being spawned: it must not live on
            self.kill_now()
        self.health.last_heartbeat = time.monotonic()
        log.info("%s: started (pid %d)", self.name, self.proc.pid)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read_stdout())
                tg.create_task(self._read_stderr())
                watchdog = tg.create_task(self._watchdog())
                await self.proc.wait()
                watchdog.cancel()
        except* Exception as group:
            # A bug on our side of the channel: the module cannot be driven any more.
            for exc in group.exceptions:
                log.error("%s: supervision failed: %r", self.name, exc, exc_info=exc)
            self.exit_reason = self.exit_reason or "supervision failed"
            self.kill_now()
            await self.proc.wait()
        finally:
            self._exited.set()
            if self.exit_reason is None:
                self.exit_reason = f"exited with status {self.proc.returncode}"
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ModuleError(self.name, f"module gone ({self.exit_reason})"))
            self._pending.clear()
        log.log(
            logging.INFO if self.stopping else logging.ERROR,
            "%s: process ended: %s",
            self.name,
            self.exit_reason,
        )
        if self.on_exit is not None:
            self.on_exit(self, "stopped" if self.stopping else self.exit_reason)

    async def started(self, timeout: float = 10.0) -> None:
        """Wait until run() has spawned the process (or failed to)."""
        async with asyncio.timeout(timeout):
            await self._spawn_done.wait()
        if self.proc is None:
            raise ModuleError(self.name, self.exit_reason or "failed to start")

    async def _lines(self, stream: asyncio.StreamReader, what: str) -> AsyncIterator[bytes]:
        """Lines until EOF; a line over the limit is skipped with a warning, never fatal."""
        while True:
            line = await protocol.read_line(stream)
            if line is protocol.TOO_LONG:
                log.warning(
                    "%s: skipped a %s line longer than %d bytes",
                    self.name,
                    what,
                    protocol.MAX_LINE_BYTES,
                )
                continue
            if not line:
                return
            yield line

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self._lines(self.proc.stdout, "protocol"):
            try:
                msg = protocol.parse_incoming(line)
            except protocol.ProtocolError as exc:
                log.warning("%s: unreadable line from module (%s): %.200r", self.name, exc, line)
                continue
            if isinstance(msg, protocol.Reply):
                fut = self._pending.pop(msg.id, None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                continue
            self.health.alive_seen = True
            if msg.event in (protocol.EV_HEARTBEAT, protocol.EV_STATUS):
                self.health.last_heartbeat = time.monotonic()
            if msg.event == protocol.EV_HEARTBEAT:
                self.health.heartbeat = msg.data
            if self.on_event is not None:
                try:
                    self.on_event(self, msg)
                except Exception:  # a listener's bug must not cut the module's channel
                    log.exception("%s: handling event %s failed", self.name, msg.event)

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        fallback = logging.getLogger(f"rpi_logger.module.{self.name}")
        extra = {"process_name": self.name, "process_pid": self.proc.pid}
        async for line in self._lines(self.proc.stderr, "log"):
            # Lines look like "LEVEL logger.name: message" (logging_setup.RELAY_FORMAT); anything
            # else (a crash's traceback, a library printing) is kept verbatim at WARNING.
            text = line.decode(errors="replace").rstrip()
            level_name, _, rest = text.partition(" ")
            level = logging.getLevelName(level_name)
            name, sep, message = rest.partition(": ")
            if isinstance(level, int) and sep and " " not in name:
                logging.getLogger(name).log(level, "%s", message, extra=extra)
            else:
                fallback.warning("%s", text, extra=extra)

    async def _watchdog(self) -> None:
        tick = time.monotonic()
        while True:
            await asyncio.sleep(WATCHDOG_PERIOD_S)
            now = time.monotonic()
            if now - tick > HEARTBEAT_TIMEOUT_S / 2:
                # This process was frozen (SIGSTOP, a suspended laptop, a stalled loop): the
                # module's heartbeats may be waiting unread in the pipe. Not its fault, so
                # it gets a fresh window instead of being killed on our own delay.
                log.warning(
                    "%s: watchdog ran %.1f s late; heartbeat window restarted",
                    self.name,
                    now - tick,
                )
                self.health.last_heartbeat = now
            tick = now
            silent = now - self.health.last_heartbeat
            limit = HEARTBEAT_TIMEOUT_S if self.health.alive_seen else STARTUP_TIMEOUT_S
            hung = silent > limit and self.proc is not None and self.proc.returncode is None
            if hung and self.quit_answered and self.proc is not None:
                # A module that answered `quit` stops heartbeating as it exits (its threads
                # finish their last flushes): only a frozen one (SIGSTOP) is hung then; the stop
                # escalation sees to the rest.
                hung = await asyncio.to_thread(_frozen, self.proc.pid)
            if hung and self.proc:
                self.exit_reason = f"hung: no heartbeat for {silent:.1f} s"
                log.error("%s: %s; killing it", self.name, self.exit_reason)
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                return

    async def request(
        self, cmd: str, args: dict[str, Any] | None = None, timeout: float = DEFAULT_REPLY_TIMEOUT_S
    ) -> dict[str, Any]:
        """Send a command and wait for its reply; raises ModuleError on error or timeout."""
        if not self.alive or self.proc is None or self.proc.stdin is None:
            raise ModuleError(self.name, "module is not running")
        msg_id = self._next_id
        self._next_id += 1
        fut: asyncio.Future[protocol.Reply] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        try:
            async with self._write_lock:
                self.proc.stdin.write(protocol.encode(protocol.command(msg_id, cmd, args)))
                await self.proc.stdin.drain()
            async with asyncio.timeout(timeout):
                reply = await fut
        except (ConnectionError, BrokenPipeError):
            raise ModuleError(self.name, "module is not running") from None
        except TimeoutError:
            raise ModuleError(
                self.name, f"no reply to {cmd!r} within {timeout} s", "timeout"
            ) from None
        finally:
            self._pending.pop(msg_id, None)
        if not reply.ok:
            assert reply.error is not None
            raise ModuleError(self.name, reply.error["message"], reply.error["code"])
        return reply.result or {}

    async def stop(
        self, quit_timeout: float = 3.0, term_timeout: float = 2.0, kill_timeout: float = 2.0
    ) -> None:
        """Escalate quit -> SIGTERM -> SIGKILL, each with its timeout; returns when it is gone."""
        self.stopping = True
        if not self.alive or self.proc is None:
            return
        with contextlib.suppress(ModuleError):
            await self.request("quit", timeout=quit_timeout)
            self.quit_answered = True
        await stop_process(
            self.proc,
            escalation(quit_timeout, term_timeout, kill_timeout),
            name=self.name,
            exited=self._exited.wait,  # run() owns the process's wait
        )

    def kill_now(self) -> None:
        """Last resort on master exit paths that cannot await (SIGKILL, no waiting)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


def _frozen(pid: int) -> bool:
    """Whether process `pid` is stopped (SIGSTOP, a debugger); blocking (reads /proc)."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    except psutil.Error:
        return False
