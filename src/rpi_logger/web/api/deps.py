"""What every route needs: the master and the live state, and the error replies."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request, WebSocket

from rpi_logger.core.master import DiskFullError, Master, MasterError
from rpi_logger.web.live import Live

#: Replies every state-changing route may give besides its own (for the OpenAPI document).
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such module or session"},
    409: {"description": "not possible now (no session, a trial running, disk full...)"},
}


def master(request: Request) -> Master:
    return request.app.state.master


def live(request: Request) -> Live:
    return request.app.state.live


def ws_master(websocket: WebSocket) -> Master:
    return websocket.app.state.master


def conflict(exc: MasterError) -> HTTPException:
    """A master refusal as a reply: unknown names are 404, the rest 409 (not now)."""
    text = str(exc)
    if text.startswith("unknown module") and not isinstance(exc, DiskFullError):
        return HTTPException(404, text)
    return HTTPException(409, text)


def module_name(m: Master, name: str) -> str:
    """The module's canonical name, or a 404 saying which exist."""
    try:
        return m.spec(name).name
    except MasterError as exc:
        raise conflict(exc) from None
