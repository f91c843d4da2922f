"""A serial device simulated behind a pseudo-terminal, on its own thread (design.md §7).

The simulator holds the pty's master end; the transport opens the slave's path like any
serial port, so the real transport and parsers run. The device has its own clock (an offset
from the host and `ppm` fast) and every line reaches the host 0.5-3 ms late (pseudo-random,
seeded). `unplug(seconds)` closes the pty (the reader sees the link fail) and opens a new one
after `seconds` (a new path, as a re-enumerated USB device gets). `ports()` is the injectable
port list: the current pty with the device's USB ids, empty while unplugged.
"""

from __future__ import annotations

import heapq
import os
import random
import select
import threading
import time
import tty

from rpi_logger.io.bridge import Worker
from rpi_logger.io.serial.ports import PortInfo

_TICK_S = 0.002


class PtyDevice:
    """Base of the simulators: the pty, the clock, timed lines, commands. Subclasses implement
    `on_command` and may override `tick` (called about every 2 ms with the host time)."""

    usb_ids: tuple[int, int] | None = None
    name = "device"
    #: What ends a command (sDRT: newline; sVOG: ``<<``).
    command_end = b"\n"
    #: The wireless firmware reads commands in 10 ms chunks: one within this long of the one
    #: before is lost (counted in `merged`). 0: every command is read.
    chunk_ns = 0

    def __init__(
        self,
        *,
        offset_ns: int = 7_345_678_912,
        ppm: float = 100.0,
        latency_ms: tuple[float, float] = (0.5, 3.0),
        seed: int = 1,
    ) -> None:
        self.offset_ns = offset_ns
        self.ppm = ppm
        self.latency_ms = latency_ms
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._queue: list[tuple[int, int, bytes]] = []  # (due host ns, order, line)
        self._order = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._path: str | None = None
        self._replug_at: int | None = None
        self._stop = threading.Event()
        self._worker: Worker[None] | None = None
        self.commands: list[str] = []
        self.merged = 0
        self._last_command_ns: int | None = None
        self._epoch_ns = time.monotonic_ns()

    # -- clock -------------------------------------------------------------------------------
    def device_ns(self, t_host_ns: int) -> int:
        """The device clock at a host time: offset, running `ppm` fast."""
        return round((t_host_ns + self.offset_ns) * (1 + self.ppm * 1e-6))

    def device_ms(self, t_host_ns: int) -> int:
        """The device's millisecond counter at a host time (truncated, as firmware counts)."""
        return self.device_ns(t_host_ns) // 1_000_000

    # -- port --------------------------------------------------------------------------------
    @property
    def path(self) -> str | None:
        """The pty the device is on now (None while unplugged)."""
        return self._path

    def ports(self) -> list[PortInfo]:
        """The injectable port list: this device, while plugged in."""
        path = self._path
        if path is None:
            return []
        vid, pid = self.usb_ids or (None, None)
        return [PortInfo(path, vid, pid, description=f"simulated {self.name}")]

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        self._master, self._slave = master, slave
        self._path = os.ttyname(slave)

    def _unplug_now(self) -> None:
        self._path = None
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def unplug(self, seconds: float) -> None:
        """Pull the cable for `seconds` (any thread); lines due meanwhile are lost."""
        with self._lock:
            self._replug_at = time.monotonic_ns() + int(seconds * 1e9)

    # -- lines -------------------------------------------------------------------------------
    def send_at(self, t_host_ns: int, line: str, latency: bool = True) -> None:
        """Send `line` (CRLF added) so it reaches the host at `t_host_ns` plus the latency."""
        lo, hi = self.latency_ms
        due = t_host_ns + (int(self._rng.uniform(lo, hi) * 1e6) if latency else 0)
        with self._lock:
            self._order += 1
            heapq.heappush(self._queue, (due, self._order, line.encode() + b"\r\n"))

    def send_raw(self, data: bytes) -> None:
        """Write bytes now (malformed input for tests)."""
        if self._master is not None:
            os.write(self._master, data)

    def on_command(self, command: str, t_host_ns: int) -> None:
        """One command from the host."""

    def tick(self, now_ns: int) -> None:
        """Called about every 2 ms: schedule periodic lines."""

    # -- thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        self._plug()
        assert self._worker is not None
        self._worker.set_ready(self._path)
        pending = b""
        try:
            while not self._stop.is_set():
                now = time.monotonic_ns()
                with self._lock:
                    replug = self._replug_at
                if replug is not None:
                    if self._master is not None:
                        self._unplug_now()
                    if now >= replug:
                        with self._lock:
                            self._replug_at = None
                        self._plug()
                self.tick(now)
                self._write_due(now)
                master = self._master
                if master is None:
                    time.sleep(_TICK_S)
                    continue
                # Wake for the next due line, not a tick later: latency is what it says.
                with self._lock:
                    due = self._queue[0][0] if self._queue else now + int(_TICK_S * 1e9)
                wait = min(_TICK_S, max(0, due - time.monotonic_ns()) / 1e9)
                readable, _, _ = select.select([master], [], [], wait)
                if readable:
                    try:
                        pending += os.read(master, 4096)
                    except OSError:  # the host closed its end: wait for it to reopen
                        time.sleep(_TICK_S)
                        continue
                    pending = self._commands(pending, time.monotonic_ns())
        finally:
            self._unplug_now()

    def _commands(self, pending: bytes, now: int) -> bytes:
        end = self.command_end
        while end in pending:
            raw, pending = pending.split(end, 1)
            text = raw.strip(b"\r\n ").decode("ascii", "replace")
            if not text:
                continue
            last = self._last_command_ns
            if self.chunk_ns and last is not None and now - last < self.chunk_ns:
                self.merged += 1  # read in the same chunk as the one before: lost
                continue
            self._last_command_ns = now
            self.commands.append(text)
            self.on_command(text, now)
        return pending

    def _write_due(self, now: int) -> None:
        while True:
            with self._lock:
                if not self._queue or self._queue[0][0] > now:
                    return
                _, _, data = heapq.heappop(self._queue)
            if self._master is not None:  # unplugged: the line is lost, as on a real cable
                try:
                    os.write(self._master, data)
                except OSError:
                    pass

    async def start(self) -> str:
        """Start the device thread; returns the pty's path."""
        self._worker = Worker(self._run, name=f"sim-{self.name}")
        self._worker.start()
        return await self._worker.ready()

    async def stop(self) -> None:
        """Stop the device thread and close the pty."""
        self._stop.set()
        if self._worker is not None:
            await self._worker.join()

    async def __aenter__(self) -> PtyDevice:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
