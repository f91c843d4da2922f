"""`rpi-logger serve`: the master, its enabled modules, and the web server on one event loop.

uvicorn serves inside the master's own lifetime: `uvicorn.Server.serve()` runs in a task group
opened inside `async with Master(...)`, so the server stops before the master ends the session
and stops its modules. uvicorn's own signal handling is switched off: SIGINT/SIGTERM ask the
server to exit, and the master then shuts down cleanly (a running trial is stopped, the session
ended, every file closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from rpi_logger.core.master import Master, MasterConfig, MasterError
from rpi_logger.web.app import create_app
from rpi_logger.web.live import Live
from rpi_logger.web.security import load_or_create_token, needs_token, token_path

log = logging.getLogger("rpi_logger.web")

#: Read once before serving: a first request pays for imports, the MIME table and the OpenAPI
#: schema (40-90 ms on the master's loop); paid here, before the first participant's note.
WARM_UP_PATHS = ("/api/v1/status", "/", "/openapi.json")


async def warm_up(app: Any, token: str | None) -> None:
    """GET each of `WARM_UP_PATHS` through the ASGI app in-process (no socket, no side effect)."""
    headers = [(b"host", b"127.0.0.1")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    for path in WARM_UP_PATHS:
        async with asyncio.timeout(10):
            status = await _get(app, path, headers)
        if status >= 400:
            log.warning("warm-up: %s answered %s", path, status)


async def _get(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """One GET through an ASGI app; returns the status."""
    done = asyncio.Event()
    requested = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # a streamed response listens for the client leaving
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }
    await app(scope, receive, send)
    return status


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the caller owns shutdown)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@dataclass(slots=True)
class Served:
    master: Master
    url: str
    token: str | None
    server: uvicorn.Server


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


@contextlib.asynccontextmanager
async def serving(
    config: MasterConfig, host: str = "127.0.0.1", port: int = 8080, start_modules: bool = True
) -> AsyncIterator[Served]:
    """The master with its enabled modules and the web server, ready; leaving stops both."""
    state_dir = config.state_path.parent if config.state_path else None
    token = None
    if needs_token(host):
        token = await asyncio.to_thread(load_or_create_token, token_path(state_dir))
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every reply waits ~40 ms (Nagle against the client's delayed ACK).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    port = sock.getsockname()[1]
    async with Master(config) as master:
        # `--set cameras.fps=15` names modules in any case; the master keys them canonically.
        for module in list(config.overrides):
            with contextlib.suppress(MasterError):
                canonical = master.spec(module).name
                if canonical != module:
                    config.overrides.setdefault(canonical, {}).update(config.overrides.pop(module))
        live = Live(master)
        app = create_app(master, live, token)
        await warm_up(app, token)
        uv_config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws_max_size=1 << 20,
            timeout_graceful_shutdown=2,
        )
        server = _Server(uv_config)
        if start_modules:
            # Before the first request: a session started while modules are still starting
            # would leave them out of it (they were not running when it began).
            errors = await master.start_enabled()
            for name, error in errors.items():
                if error:
                    log.error("module %s did not start: %s", name, error)
        async with asyncio.TaskGroup() as tg:
            live_task = tg.create_task(live.run(), name="web-live")
            serve_task = tg.create_task(server.serve(sockets=[sock]), name="web-server")
            try:
                ready = tg.create_task(server.ready.wait())
                await asyncio.wait([ready, serve_task], return_when=asyncio.FIRST_COMPLETED)
                ready.cancel()
                yield Served(master, _url(host, port), token, server)
            finally:
                server.should_exit = True  # serve() returns within ~0.1 s
                live_task.cancel()


async def serve_forever(config: MasterConfig, host: str, port: int) -> int:
    """Run until SIGINT/SIGTERM; prints the URL to open. Returns the exit status."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with serving(config, host, port) as served:
            url = served.url + "/"
            if served.token:
                url += f"?token={served.token}"
            simulated = " (simulated devices)" if config.simulate else ""
            print(f"RPi Logger{simulated} is ready: open {url}", flush=True)
            print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
            await stop.wait()
            print("rpi-logger: stopping (closing any trial and session)", file=sys.stderr)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
