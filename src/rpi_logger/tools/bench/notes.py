"""The note poster: a note through the HTTP API at a fixed rate, each round trip timed.

A round trip is what a phone's browser (or `rpi-logger note`) waits for: POST /api/v1/notes
sent -> the master asks Notes -> the row is written and fsynced -> the reply read. One
keep-alive connection, on its own thread in the runner's process (never in a measured one).
"""

from __future__ import annotations

import http.client
import json
import threading
import time

__all__ = ["NotePoster", "warm_up"]


def warm_up(url: str, token: str | None = None) -> float:
    """One GET /api/v1/notes before the trial; its time in ms. The first request to a fresh
    server pays a lazy set-up on the master's loop (tens of ms): a start-up cost, kept out of
    the trial and reported on its own."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        t0 = time.perf_counter()
        conn.request("GET", "/api/v1/notes", headers=headers)
        conn.getresponse().read()
        return (time.perf_counter() - t0) * 1e3
    finally:
        conn.close()


class NotePoster:
    """Posts `note k` every `interval_s` to `url` from `start()` until `stop()`."""

    def __init__(self, url: str, interval_s: float, token: str | None = None) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self._host, self._port = host, int(port)
        self._interval = interval_s
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-notes", daemon=True)
        self.round_trips_ms: list[float] = []
        self.failures: list[str] = []

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=35)

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
        due = time.monotonic()
        k = 0
        try:
            while not self._stop.wait(max(0.0, due - time.monotonic())):
                body = json.dumps({"text": f"bench note {k}"})
                t0 = time.perf_counter()
                try:
                    conn.request("POST", "/api/v1/notes", body, self._headers)
                    reply = conn.getresponse()
                    data = reply.read()
                except (OSError, http.client.HTTPException) as exc:
                    self.failures.append(f"note {k}: {exc}")
                    conn.close()
                    conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
                else:
                    if reply.status == 200:
                        self.round_trips_ms.append((time.perf_counter() - t0) * 1e3)
                    else:
                        self.failures.append(f"note {k}: HTTP {reply.status} {data[:200]!r}")
                k += 1
                # A fixed schedule: a slow reply delays the next note, never adds to the rate.
                due = max(due + self._interval, time.monotonic())
        finally:
            conn.close()
