"""What the web side keeps live: the latest preview per device, recent warnings, and the
status published on the event bus about twice a second.

Previews arrive as module events (`preview`, JPEG already encoded by the module, base64 in
JSON); the master keeps only the newest per device and never decodes or re-encodes them. Log
records of WARNING and above, from any thread, go into a bounded deque (thread-safe appends);
the status task publishes them on the loop as `log` events, so no thread ever publishes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import TYPE_CHECKING, Any

from rpi_logger.core.events import Event
from rpi_logger.core.status import StatusProbe
from rpi_logger.framework import protocol

if TYPE_CHECKING:
    from rpi_logger.core.master import Master

STATUS_PERIOD_S = 0.5
RECENT_LOGS = 50


def preview_device(data: dict[str, Any]) -> str:
    """The device a preview event is of (cameras say `camera`; others `device` or `id`)."""
    for key in ("camera", "device", "id", "stream"):
        if isinstance(data.get(key), str) and data[key]:
            return data[key]
    return "preview"


class LogTap(logging.Handler):
    """Keeps WARNING+ records in a bounded deque for the UI's recent warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.pending: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_LOGS)
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_LOGS)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        self.pending.append(
            {
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": message.splitlines()[0][:500] if message else "",
                "time": record.created,
            }
        )

    def drain(self) -> list[dict[str, Any]]:
        out = []
        while self.pending:
            item = self.pending.popleft()
            self.recent.append(item)
            out.append(item)
        return out


class Live:
    """Previews, warnings and status for the API and the WebSocket."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self.previews: dict[tuple[str, str], dict[str, Any]] = {}
        self.tap = LogTap()
        self.probe = StatusProbe()
        self.status: dict[str, Any] | None = None
        master.events.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.get("event") == protocol.EV_PREVIEW and isinstance(event.get("data"), dict):
            data = event["data"]
            key = (str(event.get("module")), preview_device(data))
            self.previews[key] = {**data, "received": time.time()}

    async def current_status(self) -> dict[str, Any]:
        """A fresh status (each call reads the machine's figures once)."""
        self.status = await self.master_status()
        return self.status

    async def master_status(self) -> dict[str, Any]:
        status = await self.probe.snapshot(self.master)
        status["warnings"] = list(self.tap.recent)[-10:]
        return status

    async def run(self) -> None:
        """Publish status and new warnings until cancelled (owned by the server's group)."""
        root = logging.getLogger()
        root.addHandler(self.tap)
        try:
            while True:
                for item in self.tap.drain():
                    self.master.events.publish({"event": "log", "data": item})
                try:
                    status = await self.current_status()
                except OSError as exc:  # the data folder vanished: say so, keep serving
                    logging.getLogger(__name__).debug("status skipped: %s", exc)
                else:
                    self.master.events.publish({"event": "master_status", "data": status})
                await asyncio.sleep(STATUS_PERIOD_S)
        finally:
            root.removeHandler(self.tap)
