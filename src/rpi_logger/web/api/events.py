"""The live WebSocket: every master and module event, each client on its own bounded queue.

A client first gets a `hello` with the current status, then events as they come. One that stops
reading only fills its own queue: the bus drops its oldest events and, if it never catches up,
disconnects it (the socket is closed with code 1013, "try again later"); the master and the
other clients never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from rpi_logger.core.events import SubscriberDisconnected

router = APIRouter(tags=["live"])
log = logging.getLogger(__name__)
QUEUE_ITEMS = 200
MAX_LAG_DROPS = 400
_ids = itertools.count(1)


@router.websocket("/events")
async def events(websocket: WebSocket) -> None:
    master = websocket.app.state.master
    live = websocket.app.state.live
    await websocket.accept()
    client = websocket.client
    name = f"ws#{next(_ids)} {client.host if client else '?'}"
    sub = master.events.subscribe(name=name, max_items=QUEUE_ITEMS, max_lag_drops=MAX_LAG_DROPS)
    try:
        async with sub, asyncio.TaskGroup() as tg:
            reader = tg.create_task(_read_until_closed(websocket))
            status = await live.current_status()
            await websocket.send_text(json.dumps({"event": "hello", "data": status}))
            try:
                async for event in sub:
                    await websocket.send_text(json.dumps(event, default=str))
            except SubscriberDisconnected as exc:
                log.info("%s", exc)
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await websocket.close(code=1013, reason="too far behind; reconnect")
            reader.cancel()
    except* (WebSocketDisconnect, OSError):
        pass  # the client went away


async def _read_until_closed(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends; raises WebSocketDisconnect when it leaves."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
