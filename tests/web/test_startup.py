"""`serve` takes no request before its modules run: a session started by the first request
includes every enabled module (it once began while they were still starting, and left them
out of it: idle through a 'recording' trial, then marked failed at its stop)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path
from unittest import mock

import httpx
import pytest
from tests.web.conftest import web_config

from rpi_logger.web import server
from rpi_logger.web.server import serving


async def test_the_first_request_finds_every_enabled_module_running(
    tmp_path: Path, module_dir: Path
) -> None:
    config = web_config(tmp_path, module_dir)
    assert config.state_path is not None
    config.state_path.parent.mkdir(parents=True)
    config.state_path.write_text(json.dumps({"enabled": ["Ticker", "Notes"]}))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served_ready = asyncio.Event()
    leave = asyncio.Event()

    async def serve() -> None:
        async with serving(config, "127.0.0.1", port):
            served_ready.set()
            await leave.wait()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(serve())
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1") as client:
            # Ask as early as a client possibly can: from before the server listens.
            async with asyncio.timeout(60):
                while True:
                    try:
                        reply = await client.post("/session/start", json={"label": "early"})
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.01)
            assert reply.status_code == 200, reply.text
            status = (await client.get("/status")).json()
            states = {m["name"]: (m["status"], m["state"]) for m in status["modules"]}
            assert states == {"Ticker": ("ok", "session"), "Notes": ("ok", "session")}, states
            note = await client.post("/notes", json={"text": "first"})
            assert note.status_code == 200, note.text
            await client.post("/session/end")
        await served_ready.wait()
        leave.set()


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
async def test_pages_are_read_once_before_serving(
    tmp_path: Path, module_dir: Path, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The first request's one-time costs (imports, the MIME table, the OpenAPI schema: 40-90 ms
    on the master's loop) are paid before serving, by GETs that all succeed, token or not."""
    paths: list[str] = []
    real_get = server._get

    async def get(app: object, path: str, headers: list[tuple[bytes, bytes]]) -> int:
        status = await real_get(app, path, headers)
        paths.append(f"{path} {status}")
        return status

    config = web_config(tmp_path, module_dir)
    with caplog.at_level(logging.WARNING, logger="rpi_logger.web"):
        with mock.patch.object(server, "_get", get):
            async with serving(config, host, 0, start_modules=False):
                pass
    assert paths == [f"{p} 200" for p in server.WARM_UP_PATHS]
    assert "warm-up" not in caplog.text
