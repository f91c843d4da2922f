"""The live WebSocket: events arrive in order; a client that stops reading holds nobody up."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time

import httpx
import websockets

from rpi_logger.web.server import Served


async def _next(ws: websockets.ClientConnection, kind: str, timeout: float = 10) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            event = json.loads(await ws.recv())
            if event["event"] == kind:
                return event


async def test_hello_status_trial_and_note_events(
    served: Served, client: httpx.AsyncClient
) -> None:
    url = served.url.replace("http", "ws") + "/api/v1/events"
    async with websockets.connect(url) as ws:
        hello = await _next(ws, "hello")
        assert {m["name"] for m in hello["data"]["modules"]} >= {"Ticker", "Notes"}
        status = await _next(ws, "master_status")
        assert "disk_free_mb" in status["data"]
        await client.post("/session/start", json={})
        await client.post("/trial/start", json={})
        trial = await _next(ws, "trial")
        assert trial["data"]["state"] == "recording"
        await client.post("/notes", json={"text": "seen live"})
        note = await _next(ws, "note")
        assert note["data"]["text"] == "seen live"
        await client.post("/trial/stop")
        await client.post("/session/end")


async def test_a_stuck_client_does_not_slow_the_master_or_others(
    served: Served, client: httpx.AsyncClient
) -> None:
    """One client connects and never reads while 30 kB previews pour in; another reads every
    note event, notes stay quick, and the stuck one's queue is dropped, not grown."""
    url = served.url.replace("http", "ws") + "/api/v1/events"
    bus = served.master.events
    blob = base64.b64encode(bytes(30_000)).decode()
    # A raw client: handshake, then it never reads again (small receive window, tiny reader).
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window
    port = int(served.url.rsplit(":", 1)[1])
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    reader, stuck = await asyncio.open_connection(sock=sock, limit=1024)
    key = base64.b64encode(os.urandom(16)).decode()
    stuck.write(
        f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert b"101" in await reader.readline()
    try:
        async with asyncio.timeout(10):
            while not bus.subscriptions:  # noqa: ASYNC110 - the bus has no "subscribed" event
                await asyncio.sleep(0.01)
        stuck_sub = bus.subscriptions[0]
        async with websockets.connect(url, max_size=None) as good:
            await _next(good, "hello")
            good_sub = bus.subscriptions[1]
            await client.post("/session/start", json={})
            latencies = []
            for i in range(40):
                for _ in range(25):  # ~750 kB of previews per note
                    bus.publish(
                        {
                            "event": "preview",
                            "module": "Fake",
                            "data": {"device": "cam", "jpeg_base64": blob},
                        }
                    )
                t0 = time.perf_counter()
                reply = await client.post("/notes", json={"text": f"note {i}"})
                latencies.append(time.perf_counter() - t0)
                assert reply.status_code == 200
                await asyncio.sleep(0.01)
            seen = []
            async with asyncio.timeout(30):
                while len(seen) < 40:
                    event = json.loads(await good.recv())
                    if event["event"] == "note":
                        seen.append(event["data"]["text"])
            assert seen == [f"note {i}" for i in range(40)]
            assert good_sub.dropped == 0
            # The stuck one skipped its oldest events (or was cut off), never holding more than
            # its bound: nothing waited for it.
            assert stuck_sub.dropped > 0
            assert stuck_sub.queued <= stuck_sub.max_items
            # Generous: on a busy 2-core machine a note is still far below a second.
            assert sorted(latencies)[len(latencies) // 2] < 1.0
            await client.post("/session/end")
    finally:
        stuck.close()
