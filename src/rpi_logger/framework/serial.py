"""One serial transport for every serial device (DRT, VOG, GPS): lines in, commands out.

A `SerialSource` is a `ThreadedSource` whose device thread runs its own asyncio loop with
pyserial-asyncio-fast (the maintained successor of pyserial-asyncio, whose last release was
2021; it keeps pyserial's port handling and `list_ports`, which gives the VID:PID discovery,
and reads through the loop's reader callbacks instead of polling). The module's loop never
touches the port.

What it hands the loop:

- `Line`: one received line (terminator stripped) with its host arrival time
  (`time.monotonic_ns()` when the line's last byte was read) and a sequence number.
- `Link`: the port connected or was lost. A lost link says when the last line arrived, so the
  module records the gap from there to the next `Link(connected=True)`.

The port is found by `match_ports` on an injectable `PortLister` (USB VID:PID, or a configured
path for a UART), polled every `reconnect_interval_s` until it appears: hot-plug and
reconnection are the same path. A link is lost when the read fails (a USB unplug, a closed
pty) or when nothing arrives for `silent_timeout_s` (a link that goes silent); a device that is
quiet by nature is asked `probe` after half that time, so silence means a dead link.

Malformed input is counted, logged (rate-limited) and skipped, never fatal: bytes that are not
text (binary noise) and lines longer than `max_line` (a flood without terminators, truncated
to their first bytes). A flood of good lines is dropped in the bounded hand-off and counted.

Commands (`send`) go to the device thread over a bridge and are written in order, at least
`command_gap_s` apart (the wDRT reads a 10 ms chunk as one command).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from rpi_logger.framework.source import Lost, SourceError, ThreadedSource
from rpi_logger.io.bridge import BridgeClosed, BridgeReceiver, BridgeSender, open_bridge
from rpi_logger.io.serial.ports import PortInfo, PortLister, match_ports, system_ports

log = logging.getLogger(__name__)

_STOP_POLL_S = 0.05
_LOG_EVERY_S = 5.0


class SerialError(SourceError):
    """The serial device could not be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Line:
    """One line from the device and its host arrival time."""

    t_mono_ns: int
    text: str
    sequence: int


@dataclass(frozen=True, slots=True)
class Link:
    """The port connected (`connected`) or was lost (`reason`; `last_line_ns` the arrival of the
    last line before, or of the connection when none came)."""

    t_mono_ns: int
    connected: bool
    port: str
    reason: str = ""
    last_line_ns: int | None = None


SerialEvent = Line | Link


@dataclass(slots=True)
class SerialOptions:
    """How to find, read and talk to one serial device."""

    usb_ids: Sequence[tuple[int, int]] = ()
    path: str | None = None
    baudrate: int = 115200
    silent_timeout_s: float = 5.0
    probe: bytes | None = None
    reconnect_interval_s: float = 0.5
    command_gap_s: float = 0.0
    max_line: int = 512
    lister: PortLister = field(default=system_ports)
    #: Bytes sent once on every (re)connection (a device that must be told to talk).
    on_connect: Sequence[bytes] = ()


@dataclass(slots=True)
class SerialStats:
    """Counters of the transport (read from the loop at any time)."""

    lines: int = 0
    malformed: int = 0
    truncated: int = 0
    disconnects: int = 0
    commands: int = 0
    commands_dropped: int = 0


class SerialSource(ThreadedSource[SerialEvent, PortInfo | None]):
    """A serial device's lines and link changes; see the module docstring."""

    backend = "serial"
    error_class = SerialError

    def __init__(self, name: str, options: SerialOptions, queue_size: int = 256) -> None:
        super().__init__(name, None, queue_size=queue_size)
        self.options = options
        self.serial_stats = SerialStats()
        self.port: PortInfo | None = None
        self.connected = False
        self._cmd_tx: BridgeSender[bytes] | None = None
        self._cmd_rx: BridgeReceiver[bytes] | None = None
        self._sequence = 0
        self._last_log = 0.0

    def _lost_of(self, sample: SerialEvent) -> Lost:
        return Lost(sample.t_mono_ns, getattr(sample, "sequence", None), 1)

    # -- loop side ---------------------------------------------------------------------------
    def send(self, command: bytes) -> bool:
        """Queue a command for the device (any thread, never waits). False when the device is
        not connected or the queue is full (counted)."""
        tx = self._cmd_tx
        if tx is None or not self.connected:
            self.serial_stats.commands_dropped += 1
            return False
        try:
            sent = tx.send_nowait(command)
        except BridgeClosed:
            sent = False
        if not sent:
            self.serial_stats.commands_dropped += 1
        return sent

    # -- device side -------------------------------------------------------------------------
    def _device_open(self) -> PortInfo | None:
        self._cmd_tx, self._cmd_rx = open_bridge(64, overflow="drop", name=f"{self.name} cmds")
        return None  # the port may come later (hot-plug): delivering starts at once

    def _device_close(self) -> None:
        if self._cmd_tx is not None:
            self._cmd_tx.close()

    def _device_loop(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        async with asyncio.TaskGroup() as tg:
            work = tg.create_task(self._connect_forever())
            # `_stop` is a thread event (set by `close()` on the module's loop): polled.
            while not self._stop.is_set() and not work.done():  # noqa: ASYNC110
                await asyncio.sleep(_STOP_POLL_S)
            work.cancel()

    async def _connect_forever(self) -> None:
        opts = self.options
        waiting_logged = False
        while True:
            ports = match_ports(
                await asyncio.to_thread(opts.lister), usb_ids=opts.usb_ids, path=opts.path
            )
            for port in ports:
                try:
                    await self._session(port)
                    waiting_logged = False
                except OSError as exc:  # not there (yet), busy, no permission: try again
                    if not waiting_logged:
                        log.warning("%s: cannot open %s: %s", self.name, port.device, exc)
                        waiting_logged = True
                break
            await asyncio.sleep(opts.reconnect_interval_s)

    async def _session(self, port: PortInfo) -> None:
        """Read one connection until it is lost; emit its `Link` changes."""
        import serial_asyncio_fast

        opts = self.options
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=port.device, baudrate=opts.baudrate
        )
        now = time.monotonic_ns()
        self.port, self.connected = port, True
        self._emit(Link(now, True, port.device))
        log.info("%s: connected on %s", self.name, port.device)
        last = now
        reason = "closed"
        try:
            for data in opts.on_connect:
                writer.write(data)
            async with asyncio.TaskGroup() as tg:
                sender = tg.create_task(self._write_commands(writer))
                try:
                    last = await self._read_lines(reader, writer, now)
                except _LinkLost as lost:
                    reason, last = lost.reason, lost.last_ns
                finally:
                    sender.cancel()
        finally:
            self.connected = False
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
        if not self._stop.is_set():
            self.serial_stats.disconnects += 1
            log.warning("%s: link lost on %s: %s", self.name, port.device, reason)
            self._emit(Link(time.monotonic_ns(), False, port.device, reason, last))

    async def _read_lines(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, last: int
    ) -> int:
        opts = self.options
        silent = opts.silent_timeout_s
        wait = silent / 2 if opts.probe else silent
        probed = False
        buf = bytearray()
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), wait)
            except TimeoutError:
                if opts.probe and not probed:
                    writer.write(opts.probe)
                    probed = True
                    continue
                raise _LinkLost(f"silent for {silent:g} s", last) from None
            except OSError as exc:
                raise _LinkLost(_lost_reason(exc), last) from None
            if not chunk:
                raise _LinkLost("end of stream", last)
            probed = False
            now = time.monotonic_ns()
            last = now
            buf += chunk
            while True:
                end = buf.find(b"\n")
                if end < 0:
                    break
                raw = bytes(buf[:end])
                del buf[: end + 1]
                self._line(raw, now)
            if len(buf) > opts.max_line:  # a flood without terminators: keep its start
                self.serial_stats.truncated += 1
                self._malformed(f"line longer than {opts.max_line} bytes, truncated")
                self._line(bytes(buf[: opts.max_line]), now, check=False)
                buf.clear()

    def _line(self, raw: bytes, t_mono_ns: int, check: bool = True) -> None:
        raw = raw.strip(b"\r\n\x00 ")
        if not raw:
            return
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            self._malformed("binary noise")
            return
        if not text.isprintable():
            self._malformed("control characters")
            return
        if check and len(raw) > self.options.max_line:
            self.serial_stats.truncated += 1
            self._malformed(f"line longer than {self.options.max_line} bytes, truncated")
            text = text[: self.options.max_line]
        self._sequence += 1
        self.serial_stats.lines += 1
        self._emit(Line(t_mono_ns, text, self._sequence))

    def _malformed(self, what: str) -> None:
        self.serial_stats.malformed += 1
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_S:  # a noisy line must not flood the log
            self._last_log = now
            log.warning(
                "%s: malformed input (%s); %d so far", self.name, what, self.serial_stats.malformed
            )

    async def _write_commands(self, writer: asyncio.StreamWriter) -> None:
        rx = self._cmd_rx
        assert rx is not None
        gap = self.options.command_gap_s
        async for command in rx:
            writer.write(command)
            self.serial_stats.commands += 1
            if gap:
                await asyncio.sleep(gap)


def _lost_reason(exc: OSError) -> str:
    """A short reason for a failed read, for the log, the status and the gap in the manifest
    (pyserial says a vanished device "reports readiness to read but returned no data ...")."""
    text = str(exc)
    if "returned no data" in text:
        return "unplugged (the port returned no data)"
    return text or type(exc).__name__


class _LinkLost(Exception):
    def __init__(self, reason: str, last_ns: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.last_ns = last_ns
