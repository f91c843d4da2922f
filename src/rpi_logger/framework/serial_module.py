"""A module of one serial device (DRT, VOG, GPS): what each would otherwise copy.

`SerialModule` reads its `SerialSource` from start to shutdown (a new one after every
`configure`, through `use`), reopens the port after a failure, keeps `connected` and `error` for
the status, and turns link events into two hooks: `on_disconnected(link)` and
`on_connected(link, down)`, where `down` is the link event of the disconnection it ends (None
for a first connection) and `gap_of(down, link)` gives the stretch the device did not deliver,
for `TrialStream.gap`; `open_gap` gives a disconnection still going on (a trial that stops
while the device is away). A module implements `on_line`, may run its own live work beside the
reader (`alongside`), and calls `require_connected` when a trial starts.

Every serial module also answers `sim_unplug {"seconds": S}`: its simulated device pulls its
cable for S seconds (an error reply for a real device). Through `Master.request` a test or a
demonstration unplugs a device of a running master, at a trial's edges if it likes. A
subclass's own `commands` are merged with it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from typing import Any, ClassVar

from rpi_logger.framework import protocol
from rpi_logger.framework.base import CommandError, FileRecord, Module, ModuleContext
from rpi_logger.framework.restarting import Work, run_restarting
from rpi_logger.framework.serial import Line, Link, SerialError, SerialSource
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.framework.trial_stream import TrialStream
from rpi_logger.io.sinks import CsvSink
from rpi_logger.io.sinks.base import SinkError

log = logging.getLogger(__name__)


class SerialModule(Module):
    """One serial device; see the module docstring."""

    #: Seconds between attempts to open a port that failed.
    retry_open_s: ClassVar[float] = 2.0
    #: How long a trial start waits for a port that is still opening.
    connect_wait_s: ClassVar[float] = 5.0
    #: The longest unplug `sim_unplug` agrees to.
    max_unplug_s: ClassVar[float] = 600.0
    commands: ClassVar[dict[str, dict]] = {"sim_unplug": {"seconds": ((int, float), True)}}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.commands = {**SerialModule.commands, **cls.commands}

    def __init__(self, context: ModuleContext) -> None:
        super().__init__(context)
        self.config: dict[str, Any] = {}
        self.source: SerialSource | None = None
        self.sim: Any = None  # the simulated device behind a pty, when simulated
        self.connected = False
        self.error: str | None = None
        self._down: Link | None = None
        #: The last disconnection that ended (`gap_of` it): a trial that opens its file only
        #: once the device is back (`require_connected` waited) still records it.
        self.last_gap: tuple[int, int, str] | None = None
        self._changed = asyncio.Event()
        self._up = asyncio.Event()

    @property
    def device_id(self) -> str:
        return str(self.config.get("device_id") or "device")

    # -- configuration -----------------------------------------------------------------------
    def use(self, source: SerialSource) -> None:
        """Read `source` from now on (`run` restarts the reader with it)."""
        self.source = source
        self._changed.set()

    async def release_simulator(self) -> None:
        """Stop the simulated device, if there is one."""
        sim, self.sim = self.sim, None
        if sim is not None:
            await sim.stop()

    async def shutdown(self) -> None:
        await self.release_simulator()

    async def cmd_sim_unplug(self, seconds: float) -> dict[str, Any]:
        """Unplug the simulated device for `seconds` (it comes back on a new pty)."""
        if self.sim is None:
            raise CommandError(f"{self.device_id} is not simulated: unplug it by hand")
        if isinstance(seconds, bool) or not 0 < seconds <= self.max_unplug_s:
            raise CommandError(
                f"sim_unplug: seconds must be in (0, {self.max_unplug_s:g}], got {seconds!r}",
                protocol.BAD_ARGS,
            )
        self.sim.unplug(seconds)
        log.info("%s: simulated device unplugged for %g s", self.device_id, seconds)
        return {"device": self.device_id, "seconds": seconds}

    # -- device work -------------------------------------------------------------------------
    async def run(self) -> None:
        """Read the current device; restart whenever configure() replaces it."""
        await run_restarting(self._changed, self._work)

    def _work(self) -> Work:
        source = self.source
        if source is None:
            return []
        return [
            (f"{self.device_id}-read", self._read(source)),
            (f"{self.device_id}-live", self.alongside(source)),
        ]

    async def alongside(self, source: SerialSource) -> None:
        """The module's own live work beside the reader (start an experiment on time...)."""
        await asyncio.Event().wait()

    async def _read(self, source: SerialSource) -> None:
        while True:
            try:
                async with source:
                    self.error = None
                    async for event in source:
                        if isinstance(event, Line):
                            self.on_line(event)
                        else:
                            self._on_link(event)
            except SerialError as exc:
                self.error = str(exc)
                log.error("%s", exc)
            finally:
                self.connected = False
                self._up.clear()
            await asyncio.sleep(self.retry_open_s)

    def _on_link(self, link: Link) -> None:
        self.connected = link.connected
        if not link.connected:
            self._up.clear()
            self._down = link
            self.on_disconnected(link)
            return
        self._up.set()
        down, self._down = self._down, None
        if down is not None:
            self.last_gap = self.gap_of(down, link)
        self.on_connected(link, down)

    @abc.abstractmethod
    def on_line(self, line: Line) -> None:
        """One line from the device, with its host arrival time (loop thread)."""

    def on_disconnected(self, link: Link) -> None:
        """The device went away (unplugged, or silent for too long)."""

    def on_connected(self, link: Link, down: Link | None) -> None:
        """The device is (back) on line; `down` ends a disconnection (None: first connect)."""

    @staticmethod
    def gap_of(down: Link, link: Link) -> tuple[int, int, str]:
        """The stretch a disconnection cost: from the last line before it to the reconnection,
        and why (for `TrialStream.gap`)."""
        start = down.last_line_ns if down.last_line_ns is not None else down.t_mono_ns
        return start, link.t_mono_ns, f"disconnected: {down.reason}"

    def open_gap(self, now_ns: int) -> tuple[int, int, str] | None:
        """The disconnection still going on, as a gap up to `now_ns` (a trial that stops while
        the device is away); None while connected."""
        down = self._down
        if down is None or self.connected:
            return None
        start, _, reason = self.gap_of(down, Link(now_ns, True, down.port))
        return start, now_ns, reason

    def gap_at_start(self, *streams: TrialStream[Any]) -> None:
        """Give a trial's `streams` the last disconnection: one that ended while the trial's
        start waited for the device (older ones fall outside the trial and are clipped away)."""
        if self.last_gap is not None:
            start, end, reason = self.last_gap
            for stream in streams:
                stream.gap(start, end, None, reason)

    def gap_at_stop(self, stop_ns: int, *streams: TrialStream[Any]) -> bool:
        """Give a trial's `streams` the disconnection still going on at its stop, ended there;
        False when the device is connected."""
        still = self.open_gap(stop_ns)
        if still is None:
            return False
        start, end, reason = still
        for stream in streams:
            stream.gap(start, end, None, reason)
        return True

    async def open_trial_csv(
        self,
        window: TrialWindow,
        kind: str,
        columns: tuple[str, ...],
        time_index: int,
        **extra: Any,
    ) -> TrialStream[tuple]:
        """The trial's one CSV of this device, ``<device>/trialNNN_<kind>.csv``, opened and
        announced, with a disconnection that ended while the start waited (`gap_at_start`);
        a `CommandError` in one line when it cannot be made. Rows carry their time at
        `time_index`."""
        assert self.session is not None
        path = self.session.module_dir / self.device_id / f"{window.stem}_{kind}.csv"
        extra = {"stream": kind, "simulated": self.sim is not None, **extra}
        stream: TrialStream[tuple] = TrialStream(
            window,
            CsvSink(path, columns),
            FileRecord(self.device_id, "csv", path, extra=extra),
            name=f"{self.device_id} {kind}",
            max_items=256,
            time_of=lambda row: row[time_index],
        )
        try:
            await stream.open(self.announce_file)
        except (SinkError, OSError) as exc:
            raise CommandError(f"{self.context.name}: {exc}") from None
        self.gap_at_start(stream)
        return stream

    def link_status(self, source: SerialSource) -> dict[str, Any]:
        """What every serial device's status says: id, port, simulated, connected, error."""
        return {
            "id": self.device_id,
            "port": source.port.device if source.port else None,
            "simulated": self.sim is not None,
            "connected": self.connected,
            "error": self.error,
        }

    async def require_connected(self) -> SerialSource:
        """The source, once the device is connected (a port just configured may still be
        opening); a `CommandError` saying why when it is not."""
        if self.source is None:
            raise CommandError(f"{self.device_id} is not configured", protocol.BAD_STATE)
        if not self.connected:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.connect_wait_s):
                    await self._up.wait()
        if not self.connected:
            raise CommandError(f"no {self.device_id} connected: {self.error or 'not found'}")
        return self.source
