"""The module runtime: runs one `Module` in this process, speaking protocol v1.

`ModuleRuntime` reads protocol commands from stdin (JSON lines, see docs/protocol.md), answers
each with exactly one reply on stdout, sends heartbeats with the loop-lag figures, and owns every
task in one TaskGroup.

Shutdown is graceful on `quit`, SIGTERM, SIGINT and stdin EOF (the master died): a running
trial is stopped now, files are closed, the process exits. Shutdown always wins: a `stop_trial`
waiting for its stop instant ends at once (the trial stops at the shutdown instant).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

import psutil

from rpi_logger.framework import protocol
from rpi_logger.framework.base import (
    COMMON_SETTINGS,
    CommandError,
    Module,
    SessionInfo,
    typed_overrides,
)
from rpi_logger.framework.trial import (
    MAX_AHEAD_NS,
    START_TOLERANCE_NS,
    TrialWindow,
    check_stop,
    sleep_until,
    start_window,
)
from rpi_logger.io.bridge import (
    BridgeClosed,
    BridgeReceiver,
    BridgeSender,
    EndOfStream,
    Worker,
    open_bridge,
)
from rpi_logger.io.loop_monitor import LoopLagMonitor

log = logging.getLogger("rpi_logger.module")

HEARTBEAT_INTERVAL_S = 0.5
# How long past the stop instant a module waits for late samples before closing its files.
STOP_GRACE_S = 0.3
# Standalone shorthand is typed by a person: longer lines are taken as protocol JSON (a
# pure-Python tokenizer on a megabyte line would hold the loop for seconds).
SHORTHAND_MAX_BYTES = 4096


class ModuleRuntime:
    """Runs one `Module` in this process, speaking protocol v1 on stdin/stdout."""

    #: Bounds on trial instants (see trial.start_window / check_stop); a subclass may change them.
    max_ahead_ns: int = MAX_AHEAD_NS
    start_tolerance_ns: int = START_TOLERANCE_NS

    def __init__(
        self,
        module: Module,
        settings_loader: Callable[[], Awaitable[dict]] | None = None,
        *,
        configure_at_start: bool = True,
    ):
        self.module = module
        # Under the master, its configure (with its overrides) comes first: configuring from
        # config.txt as well would open every device twice (a Neon's discovery, twice).
        self._configure_at_start = configure_at_start
        # The device work starts once configured: under the master, when its configure came.
        self._configured = asyncio.Event()
        module.runtime = self
        self.context = module.context
        self.state = "idle"
        self.monitor = LoopLagMonitor()
        self._settings_loader = settings_loader
        self._shutdown = asyncio.Event()
        self._shutdown_reason = ""
        self._lifecycle = asyncio.Lock()
        self._out_lock = asyncio.Lock()
        self._writer: asyncio.StreamWriter | None = None
        self._proto_fd: int | None = None
        self._auto_id = 1_000_000  # ids for interactive shorthand commands
        self._failed = False
        self._handlers: set[asyncio.Task[None]] = set()
        self._stdin_reader: asyncio.StreamReader | None = None
        # stdin as a regular file: a reader thread hands lines over through a bridge.
        self._stdin_lines: BridgeReceiver[bytes] | None = None
        self._stdin_worker: Worker[None] | None = None

    # -- output ----------------------------------------------------------------------------
    async def send(self, message: dict[str, Any]) -> None:
        """Write one protocol line; waits (without blocking the loop) if the master is slow."""
        data = protocol.encode(message)
        async with self._out_lock:
            if self._writer is not None:
                if self._writer.is_closing():
                    return
                self._writer.write(data)
                with contextlib.suppress(ConnectionError):
                    await self._writer.drain()
            elif self._proto_fd is not None:
                await asyncio.to_thread(os.write, self._proto_fd, data)

    # -- main ----------------------------------------------------------------------------
    async def run(self) -> int:
        """Serve until quit / SIGTERM / stdin EOF. Returns the process exit status."""
        loop = asyncio.get_running_loop()
        await self._open_stdio(loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_shutdown, sig.name)
        try:
            if self._settings_loader is not None and self._configure_at_start:
                try:
                    await self._configure({}, self.context.simulate)
                except CommandError as exc:
                    log.error("%s: %s", self.context.name, exc)  # an expected failure: no traceback
                    return 2
            if self._configure_at_start or self._settings_loader is None:
                self._configured.set()
            async with asyncio.TaskGroup() as tg:
                background = [
                    tg.create_task(self.monitor.run(), name="loop-monitor"),
                    tg.create_task(self._run_device(), name="device"),
                    tg.create_task(self._heartbeat(), name="heartbeat"),
                    tg.create_task(self._command_loop(tg), name="commands"),
                ]
                await self.status_event()
                await self._shutdown.wait()
                log.info("%s: shutting down (%s)", self.context.name, self._shutdown_reason)
                background[3].cancel()  # no new commands
                await self._wind_down()
                await self._stop_stdin_thread()
                for task in [*background, *self._handlers]:
                    task.cancel()
        except* Exception as group:
            self._failed = True
            for exc in group.exceptions:
                log.error("%s: fatal error: %r", self.context.name, exc, exc_info=exc)
        finally:
            if self._stdin_lines is not None:
                # Releases the reader thread if it waits for room; it then ends by itself.
                self._stdin_lines.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if self._writer is not None:
                self._writer.close()
        return 1 if self._failed else 0

    async def _stop_stdin_thread(self) -> None:
        """Close the stdin bridge and wait for its reader thread (a file read ends quickly)."""
        if self._stdin_lines is None or self._stdin_worker is None:
            return
        self._stdin_lines.close()
        if self._stdin_worker.alive or self._stdin_worker.done:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._stdin_worker.join()

    def request_shutdown(self, reason: str = "quit") -> None:
        if not self._shutdown.is_set():
            self._shutdown_reason = reason
            self._shutdown.set()

    async def _wind_down(self) -> None:
        """Stop a running trial now, end the session, release devices: files end up closed."""
        async with self._lifecycle:
            try:
                if self.state == "recording" and self.module.trial is not None:
                    window = self.module.trial
                    window.stop_ns = max(time.monotonic_ns(), window.start_ns)
                    await self._finish_trial()
                if self.state == "session":
                    await self._end_session()
            finally:
                await self.module.shutdown()

    async def _run_device(self) -> None:
        await self._configured.wait()
        try:
            await self.module.run()
        except Exception as exc:
            # A device failure is fatal for this module: close what is open, report it and exit
            # non-zero so the master marks the module failed (and restarts it if configured).
            log.exception("%s: device loop failed", self.context.name)
            self._failed = True
            await self.send(protocol.event(protocol.EV_ERROR, {"message": f"device failed: {exc}"}))
            self.request_shutdown("device failed")

    async def _heartbeat(self) -> None:
        proc = psutil.Process()
        proc.cpu_percent(None)  # prime: the first call always returns 0.0
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
            cpu, rss = await asyncio.to_thread(
                lambda: (proc.cpu_percent(None), proc.memory_info().rss)
            )
            data = {
                "state": self.state,
                "loop_lag_ms": self.monitor.snapshot(),
                "cpu_percent": cpu,
                "rss_mb": round(rss / 1e6, 1),
                **self.module.status(),
            }
            await self.send(protocol.event(protocol.EV_HEARTBEAT, data))

    # -- input -----------------------------------------------------------------------------
    async def _open_stdio(self, loop: asyncio.AbstractEventLoop) -> None:
        """Protocol stdout gets a private fd; fd 1 then points at stderr so stray prints (ours,
        a library's, a child process's) can never corrupt the protocol stream."""
        sys.stdout.flush()
        self._proto_fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        with contextlib.suppress(ValueError, OSError):
            transport, proto = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin,
                os.fdopen(self._proto_fd, "wb", buffering=0, closefd=False),
            )
            self._writer = asyncio.StreamWriter(transport, proto, None, loop)

        reader = asyncio.StreamReader(limit=protocol.MAX_LINE_BYTES + 2)
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            self._stdin_reader = reader
        except (ValueError, OSError):
            # stdin is a regular file (no pipe to watch): it is read on a thread.
            self._stdin_reader = None
            sender, self._stdin_lines = open_bridge(1000, overflow="block", name="stdin")
            self._stdin_worker = Worker(_read_lines, sys.stdin.buffer, sender, name="stdin")

    async def _next_line(self) -> bytes | None:
        """The next input line (`protocol.TOO_LONG` for one over the limit); None at the end."""
        if self._stdin_lines is not None:
            try:
                return await self._stdin_lines.areceive()
            except (EndOfStream, BridgeClosed):
                return None
        assert self._stdin_reader is not None
        return await protocol.read_line(self._stdin_reader)

    async def _command_loop(self, tg: asyncio.TaskGroup) -> None:
        if self._stdin_worker is not None:
            self._stdin_worker.start()
        while True:
            line = await self._next_line()
            if line is None:
                self.request_shutdown("stdin closed")
                return
            if line.strip():
                # Each command is served in its own task so a slow one (stop_trial waits for its
                # stop instant) never holds up `status` or `add_note`.
                self._track(tg.create_task(self._serve_line(line), name="command"))

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    def _shorthand(self, line: bytes) -> bytes:
        """Interactive use: `start_trial label=x` becomes a JSON command with defaults filled.

        JSON lines and lines too long to be typed pass unchanged (the parser answers them)."""
        text = line.strip()
        if len(text) > SHORTHAND_MAX_BYTES or text.startswith(b"{"):
            return line
        try:
            words = shlex.split(text.decode())
        except ValueError:
            return line
        if not words:
            return line
        cmd, rest = words[0], words[1:]
        args: dict[str, Any] = {}
        free_text = _free_text_argument(self.module.commands.get(cmd))
        if free_text is not None and rest and not any("=" in w for w in rest):
            # `add_note the driver looks tired`: a command taking one text argument gets the rest.
            args[free_text] = " ".join(rest)
            rest = []
        for word in rest:
            key, _, value = word.partition("=")
            try:
                args[key] = json.loads(value)
            except (ValueError, RecursionError):  # not JSON, too deep, too many digits
                args[key] = value
        if cmd in ("start_trial", "stop_trial"):
            args.setdefault("at_mono_ns", time.monotonic_ns() + 200_000_000)
        if cmd == "start_trial":
            args.setdefault("trial", (self.module.trial.trial + 1) if self.module.trial else 1)
        if cmd == "start_session" and "session_dir" not in args:
            base = self.context.data_dir or Path.cwd()
            args["session_dir"] = str(base / time.strftime("session_%Y%m%d_%H%M%S"))
        try:
            encoded = protocol.encode(protocol.command(self._auto_id + 1, cmd, args))
        except (ValueError, RecursionError):
            return line
        self._auto_id += 1
        return encoded

    async def _serve_line(self, line: bytes) -> None:
        if not self.context.supervised and line is not protocol.TOO_LONG:
            line = self._shorthand(line)
        try:
            if line is protocol.TOO_LONG:
                raise protocol.ProtocolError(
                    protocol.BAD_MESSAGE, f"line longer than {protocol.MAX_LINE_BYTES} bytes"
                )
            cmd = protocol.parse_command(line, self.module.commands)
        except protocol.ProtocolError as exc:
            log.warning("%s: rejected line (%s): %.200r", self.context.name, exc.message, line)
            await self.send(protocol.reply_error(exc.msg_id, exc.code, exc.message))
            return
        except Exception as exc:  # a parser bug must cost one line, never the module
            log.exception("%s: unreadable line: %.200r", self.context.name, line)
            await self.send(
                protocol.reply_error(None, protocol.BAD_MESSAGE, f"unreadable line: {exc!r:.200}")
            )
            return
        try:
            result = await self._dispatch(cmd)
        except CommandError as exc:
            await self.send(protocol.reply_error(cmd.id, exc.code, str(exc)))
        except asyncio.CancelledError:
            await self.send(protocol.reply_error(cmd.id, protocol.FAILED, "module shutting down"))
            raise
        except Exception as exc:
            log.exception("%s: command %s failed", self.context.name, cmd.cmd)
            await self.send(
                protocol.reply_error(cmd.id, protocol.FAILED, f"{type(exc).__name__}: {exc}")
            )
        else:
            await self.send(protocol.reply_ok(cmd.id, result))

    # -- commands --------------------------------------------------------------------------
    async def _dispatch(self, cmd: protocol.Command) -> dict[str, Any]:
        a = cmd.args
        match cmd.cmd:
            case "status":
                return self._status()
            case "quit":
                self.request_shutdown("quit command")
                return {}
            case "configure":
                async with self._lifecycle:
                    result = await self._configure(
                        a.get("settings", {}), a.get("simulate", self.context.simulate)
                    )
                    # Before the reply: the master knows the devices (simulated or not) by then.
                    await self.status_event()
                    return result
            case "start_session":
                async with self._lifecycle:
                    self._require("idle", cmd.cmd)
                    return await self._start_session(
                        Path(a["session_dir"]), a.get("session_start_mono_ns")
                    )
            case "start_trial":
                async with self._lifecycle:
                    self._require("session", cmd.cmd)
                    try:
                        window = start_window(
                            a["trial"],
                            a["at_mono_ns"],
                            a.get("label"),
                            a.get("part", 1),
                            a.get("trial_start_mono_ns"),
                            now_ns=time.monotonic_ns(),
                            max_ahead_ns=self.max_ahead_ns,
                            tolerance_ns=self.start_tolerance_ns,
                        )
                    except ValueError as exc:
                        raise CommandError(f"start_trial: {exc}", protocol.BAD_ARGS) from None
                    self.module.trial = window
                    result = await self.module.start_trial(window)
                    self.monitor.begin_trial()
                    self.state = "recording"
                    log.info(
                        "%s: trial %d (part %d) starts at %d (trial origin %d)",
                        self.context.name,
                        window.trial,
                        window.part,
                        window.start_ns,
                        window.origin_ns,
                    )
                    await self.status_event()
                    return result
            case "stop_trial":
                async with self._lifecycle:
                    self._require("recording", cmd.cmd)
                    window = self.module.trial
                    assert window is not None
                    try:
                        check_stop(
                            window,
                            a["at_mono_ns"],
                            now_ns=time.monotonic_ns(),
                            max_ahead_ns=self.max_ahead_ns,
                        )
                    except ValueError as exc:
                        raise CommandError(f"stop_trial: {exc}", protocol.BAD_ARGS) from None
                    window.stop_ns = a["at_mono_ns"]
                    files = await self._finish_trial()
                    return {
                        "files": files,
                        "stop_mono_ns": window.stop_ns,
                        "loop_lag_ms": self.monitor.end_trial(),
                    }
            case "end_session":
                async with self._lifecycle:
                    if self.state == "recording":
                        raise CommandError(
                            "stop the trial before ending the session", protocol.BAD_STATE
                        )
                    self._require("session", cmd.cmd)
                    return await self._end_session()
            case _:
                handler = getattr(self.module, f"cmd_{cmd.cmd}", None)
                if handler is None:
                    raise CommandError(f"unknown command {cmd.cmd!r}", protocol.UNKNOWN_COMMAND)
                return await handler(**a)

    def _require(self, state: str, cmd: str) -> None:
        if self.state != state:
            raise CommandError(
                f"{cmd} needs state {state!r}, module is {self.state!r}", protocol.BAD_STATE
            )

    async def _configure(self, overrides: dict[str, Any], simulate: bool) -> dict[str, Any]:
        try:
            settings = await self._settings_loader() if self._settings_loader else {}
        except ValueError as exc:  # ConfigError names file, line, key and what was expected
            raise CommandError(str(exc), protocol.BAD_ARGS) from None
        settings.update(typed_overrides(overrides, [*COMMON_SETTINGS, *self.module.settings]))
        self.context.simulate = bool(simulate)
        result = await self.module.configure(settings, self.context.simulate)
        self._configured.set()
        return result

    async def _start_session(self, directory: Path, start_mono_ns: int | None) -> dict[str, Any]:
        module_dir = directory / self.context.name
        await asyncio.to_thread(module_dir.mkdir, parents=True, exist_ok=True)
        self.module.session = SessionInfo(
            directory, module_dir, start_mono_ns or time.monotonic_ns()
        )
        result = await self.module.start_session(self.module.session)
        self.state = "session"
        await self.status_event()
        return result

    async def _finish_trial(self) -> list[dict[str, Any]]:
        window = self.module.trial
        assert window is not None and window.stop_ns is not None and self.module.session is not None
        await self._wait_for_stop(window)
        records = await self.module.stop_trial(window)
        log.info(
            "%s: trial %d stopped at %d: %d files",
            self.context.name,
            window.trial,
            window.stop_ns,
            len(records),
        )
        self.state = "session"
        self.module.trial = None
        await self.status_event()
        return [r.as_dict(self.module.session.directory, self.context.name) for r in records]

    async def _wait_for_stop(self, window: TrialWindow) -> None:
        """Wait until the stop instant has passed, plus STOP_GRACE_S for late samples.

        Shutdown wins: once it is requested (before or during the wait) the trial stops at the
        shutdown instant, or keeps its stop instant if that came first, and only the grace
        period is waited for.
        """
        assert window.stop_ns is not None
        grace_ns = int(STOP_GRACE_S * 1e9)
        if not self._shutdown.is_set():
            delay = (window.stop_ns + grace_ns - time.monotonic_ns()) / 1e9
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0.0)):
                    await self._shutdown.wait()
            if not self._shutdown.is_set():
                return
        now = time.monotonic_ns()
        stop = min(window.stop_ns, max(now, window.start_ns))
        if stop != window.stop_ns:
            log.info(
                "%s: shutting down: trial %d stops now, not at %d",
                self.context.name,
                window.trial,
                window.stop_ns,
            )
            window.stop_ns = stop
        await sleep_until(min(stop, now) + grace_ns)

    async def _end_session(self) -> dict[str, Any]:
        result = await self.module.end_session()
        self.module.session = None
        self.state = "idle"
        await self.status_event()
        return result

    def _status(self) -> dict[str, Any]:
        return {
            "name": self.context.name,
            "state": self.state,
            "simulated": self.context.simulate,
            "trial": self.module.trial.trial if self.module.trial else None,
            "loop_lag_ms": self.monitor.snapshot(),
            **self.module.status(),
        }

    async def status_event(self) -> None:
        """Send the whole status (the master replaces its copy with each one)."""
        await self.send(protocol.event(protocol.EV_STATUS, self._status()))


def _free_text_argument(schema: dict[str, Any] | None) -> str | None:
    """The name of a command's only required argument when it takes text, else None."""
    required = [name for name, (types, needed) in (schema or {}).items() if needed]
    if len(required) == 1 and schema is not None and str in schema[required[0]][0]:
        return required[0]
    return None


def _read_lines(stream: BinaryIO, lines: BridgeSender[bytes]) -> None:
    """Thread: hand a file's lines to the loop; a line over the limit is dropped here, in
    bounded pieces, and handed over as `protocol.TOO_LONG`. Ends at the end of the file (which
    ends the receiver's iteration) or when the runtime closes the bridge."""
    limit = protocol.MAX_LINE_BYTES + 2  # as the pipe reader's limit
    with lines:
        while raw := stream.readline(limit):
            if len(raw) == limit and not raw.endswith(b"\n"):
                while (rest := stream.readline(1 << 16)) and not rest.endswith(b"\n"):
                    pass
                raw = protocol.TOO_LONG
            try:
                lines.send(raw)
            except BridgeClosed:
                return


def run_module(
    module: Module,
    settings_loader: Callable[[], Awaitable[dict]] | None = None,
    debug: bool = False,
    configure_at_start: bool = True,
) -> int:
    """Process entry: run the module's runtime on a fresh event loop."""
    runtime = ModuleRuntime(module, settings_loader, configure_at_start=configure_at_start)
    return asyncio.run(runtime.run(), debug=debug)
