"""Who may talk to the server: loopback is trusted; any other bind needs the token.

* `needs_token(host)`: a bind to a loopback address (127.0.0.0/8, ::1, `localhost`) is reachable
  only from this machine; anything else (0.0.0.0, a LAN address) is reachable from the network.
* The token is made at first start (`secrets.token_urlsafe`), kept in `token` beside the saved
  state with mode 600, and printed at start-up inside a ready-to-open URL.
* A request passes with `Authorization: Bearer <token>`, or the `rpi_logger_token` cookie, or
  once `?token=<token>` (the reply then sets that cookie, HttpOnly and SameSite=Strict, so the
  page's own requests and WebSocket carry it).
* A state-changing request (anything but GET/HEAD/OPTIONS) whose `Origin` is not the server's own
  is refused whatever the bind: a web page elsewhere must not drive the logger through the
  researcher's browser. WebSocket handshakes are checked the same way.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rpi_logger.core.master_config import config_home

COOKIE = "rpi_logger_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Scope = dict[str, Any]


def needs_token(host: str) -> bool:
    """True unless `host` is a loopback address (or `localhost`)."""
    if host.strip().lower() == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return True  # a name that may resolve to anything: treat as reachable


def token_path(state_dir: Path | None = None) -> Path:
    return (state_dir or config_home()) / "token"


def load_or_create_token(path: Path) -> str:
    """The token stored at `path`, made (mode 600, never readable by others) if missing."""
    try:
        token = path.read_text(encoding="ascii").strip()
        if token:
            os.chmod(path, 0o600)
            return token
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return token


def read_token(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _same_origin(origin: str, host_header: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.lower()


class Guard:
    """ASGI middleware enforcing the policy above (a token of None: loopback, no token)."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    def _token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())  # type: ignore[union-attr]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        origin = headers.get("origin")
        method = scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
        if (
            origin is not None
            and method not in SAFE_METHODS
            and not _same_origin(origin, headers.get("host", ""))
        ):
            await self._refuse(
                scope, receive, send, 403, f"cross-origin request refused (Origin {origin})"
            )
            return
        set_cookie = False
        if self.token is not None:
            auth = headers.get("authorization", "")
            bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            cookie = SimpleCookie()
            try:
                cookie.load(headers.get("cookie", ""))
            except Exception:  # a malformed cookie header is the same as none
                cookie = SimpleCookie()
            from_cookie = cookie[COOKIE].value if COOKIE in cookie else None
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            from_query = (query.get("token") or [None])[0]
            if self._token_ok(bearer) or self._token_ok(from_cookie):
                pass
            elif self._token_ok(from_query):
                set_cookie = True
            else:
                await self._refuse(scope, receive, send, 401, "a valid token is required")
                return
        if not set_cookie or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                value = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message["headers"] = [*message.get("headers", []), (b"set-cookie", value.encode())]
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    async def _refuse(
        self, scope: Scope, receive: Any, send: Any, status: int, message: str
    ) -> None:
        if scope["type"] == "websocket":
            await receive()  # the handshake's websocket.connect
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008, "reason": message})
            return
        body = json.dumps({"detail": message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
