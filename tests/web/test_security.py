"""Loopback is trusted; any other bind needs the token; cross-origin changes are refused."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import httpx
import pytest
import websockets
from tests.web.conftest import web_config

from rpi_logger.web.security import COOKIE, load_or_create_token, needs_token
from rpi_logger.web.server import Served, serving


@pytest.mark.parametrize(
    ("host", "needed"),
    [
        ("127.0.0.1", False),
        ("127.0.0.2", False),
        ("localhost", False),
        ("::1", False),
        ("0.0.0.0", True),
        ("::", True),
        ("192.168.1.20", True),
        ("pi.local", True),
    ],
)
def test_which_binds_need_a_token(host: str, needed: bool) -> None:
    assert needs_token(host) is needed


def test_token_file_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "token"
    token = load_or_create_token(path)
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(path) == token  # the same at the next start
    path.chmod(0o644)
    load_or_create_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_cross_origin_changes_refused_even_on_loopback(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as c:
        reply = await c.post(
            "/api/v1/session/start", json={}, headers={"Origin": "http://evil.example"}
        )
        assert reply.status_code == 403 and "cross-origin" in reply.json()["detail"]
        assert served.master.session is None
        same = served.url.removeprefix("http://")
        reply = await c.post("/api/v1/session/start", json={}, headers={"Origin": f"http://{same}"})
        assert reply.status_code == 200
        # Reading is allowed from anywhere that can reach the server (loopback here).
        reply = await c.get("/api/v1/status", headers={"Origin": "http://evil.example"})
        assert reply.status_code == 200
        await c.post("/api/v1/session/end")


async def test_non_loopback_bind_requires_the_token(tmp_path: Path, module_dir: Path) -> None:
    """A real bind to 0.0.0.0: without the token nothing passes (page, API, WebSocket); with it
    as Bearer or once as ?token= (which sets an HttpOnly cookie) it does."""
    config = web_config(tmp_path, module_dir)
    async with serving(config, "0.0.0.0", 0, False) as s:
        await s.master.start_modules(["Notes"])
        token = s.token
        assert token is not None
        token_file = config.state_path.parent / "token"  # type: ignore[union-attr]
        assert token_file.read_text().strip() == token
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        port = s.url.rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as c:
            for path in ("/", "/api/v1/status", "/openapi.json"):
                assert (await c.get(path)).status_code == 401, path
            assert (await c.post("/api/v1/session/start", json={})).status_code == 401
            assert s.master.session is None
            wrong = {"Authorization": "Bearer nope"}
            assert (await c.get("/api/v1/status", headers=wrong)).status_code == 401
            assert (await c.get("/api/v1/status?token=nope")).status_code == 401

            auth = {"Authorization": f"Bearer {token}"}
            assert (await c.get("/api/v1/status", headers=auth)).status_code == 200
            reply = await c.post("/api/v1/session/start", json={}, headers=auth)
            assert reply.status_code == 200
            reply = await c.post(
                "/api/v1/notes",
                json={"text": "x"},
                headers={**auth, "Origin": "http://evil.example"},
            )
            assert reply.status_code == 403

        async with httpx.AsyncClient(base_url=base) as browser:
            first = await browser.get(f"/?token={token}")
            assert first.status_code == 200
            cookie = first.headers["set-cookie"]
            assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
            # The cookie now carries the token: the page's own requests pass without it.
            assert (await browser.get("/api/v1/status")).status_code == 200
            assert (await browser.post("/api/v1/notes", json={"text": "ok"})).status_code == 200

        ws_url = f"ws://127.0.0.1:{port}/api/v1/events"
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(ws_url):
                pass
        async with websockets.connect(
            ws_url, additional_headers={"Authorization": f"Bearer {token}"}
        ) as ws:
            hello = await asyncio.wait_for(ws.recv(), 10)
            assert '"hello"' in hello
        await s.master.end_session()
