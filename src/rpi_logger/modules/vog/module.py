"""The VOG module: sVOG occlusion goggles in cycle mode, ``trialNNN_vog.csv`` (design.md §5).

Read through the one serial transport, found by USB VID:PID or at a configured port; with
``--simulate`` the simulated sVOG behind a pty (design.md §7). On each connection the open and
closed times are sent (``>set_configMaxOpen|N<<``, ``>set_configMaxClose|N<<``) and read back
(``>get_config|<<``). Each trial starts the goggles' trial at its start (``do_trialStart``) and
stops it at its stop (``do_trialStop``). Rows: each lens change (``stm|1`` open, ``stm|0``
closed) at the host arrival of its line, and the device's trial end (``data|trial,open_ms,
closed_ms``: TSOT, the total shutter open time, and TTT = open + closed, the total task time).
That report comes after the stop: its row is placed at the trial's last instant, its arrival
kept in ``t_arrival_ns``. An unplug is a gap in the file. The wVOG (``device_type = wVOG``)
speaks ``trl>1|0``, ``set>OPN:N``, ``get_cfg>``, ``stm>``, ``dta>`` (`WvogCommands`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from rpi_logger.framework import protocol
from rpi_logger.framework.base import CommandError, FileRecord, ModuleContext
from rpi_logger.framework.serial import Line, Link, SerialOptions, SerialSource
from rpi_logger.framework.serial_module import SerialModule
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.framework.trial_stream import TrialStream
from rpi_logger.io.clock import mono_to_wall
from rpi_logger.io.serial.ports import USB_IDS
from rpi_logger.io.sinks import CsvSink
from rpi_logger.io.sinks.base import SinkError
from rpi_logger.modules.vog.settings import SETTINGS
from rpi_logger.simulation.serial.svog import SimulatedSVOG
from rpi_logger.simulation.serial.wvog import SimulatedWVOG

log = logging.getLogger("rpi_logger.vog")
DATA_WAIT_S = 2.0
_TICK_S = 0.005

VOG_COLUMNS = (
    "device_trial",
    "t_mono_ns",
    "t_wall_unix",
    "event",
    "open_ms",
    "closed_ms",
    "total_ms",
    "device",
    "t_arrival_ns",
)


def command(key: str, value: str | int = "") -> bytes:
    """An sVOG command: ``>KEY|VAL<<``."""
    return f">{key}|{value}<<".encode()


class Commands:
    """What the sVOG is told; `WvogCommands` for the wVOG."""

    trial_start = command("do_trialStart")
    trial_stop = command("do_trialStop")
    get_config = command("get_config")
    gap_s = 0.0

    def settings(self, open_ms: int, closed_ms: int) -> list[bytes]:
        return [command("set_configMaxOpen", open_ms), command("set_configMaxClose", closed_ms)]


class WvogCommands(Commands):
    """The wVOG: newline-ended, ``set>KEY:VAL`` (a colon), 25 ms apart (10 ms chunks)."""

    trial_start = b"trl>1\n"
    trial_stop = b"trl>0\n"
    get_config = b"get_cfg>\n"
    gap_s = 0.025

    def settings(self, open_ms: int, closed_ms: int) -> list[bytes]:
        return [f"set>OPN:{open_ms}\n".encode(), f"set>CLS:{closed_ms}\n".encode()]


def split_line(text: str) -> tuple[str, str, str]:
    """``key|value`` (sVOG) or ``key>value`` (wVOG)."""
    cut = min((i for i in (text.find("|"), text.find(">")) if i >= 0), default=-1)
    if cut < 0:
        return text, "", ""
    return text[:cut], text[cut], text[cut + 1 :]


class VogModule(SerialModule):
    settings = SETTINGS

    def __init__(self, context: ModuleContext) -> None:
        super().__init__(context)
        self.cmds: Commands = Commands()
        self.stream: TrialStream[tuple] | None = None
        self.device_config: dict[str, str] = {}
        self.lens_open: bool | None = None
        self.device_trial = 0
        self.last_totals: dict[str, int] | None = None
        self.malformed = 0
        self._trial_start_at: int | None = None
        self._running = False
        self._data = asyncio.Event()

    @property
    def device_id(self) -> str:
        return self.config.get("device_id") or self.config.get("device_type") or "sVOG"

    async def configure(self, settings: dict[str, Any], simulate: bool) -> dict[str, Any]:
        if self.trial is not None:
            raise CommandError("cannot reconfigure the VOG during a trial", protocol.BAD_STATE)
        await self.release_simulator()
        self.config = settings
        kind = settings.get("device_type", "sVOG")
        self.cmds = WvogCommands() if kind == "wVOG" else Commands()
        options = SerialOptions(
            usb_ids=[USB_IDS[kind]],
            path=settings.get("port") or None,
            silent_timeout_s=settings["silent_timeout_s"],
            probe=self.cmds.get_config,
            command_gap_s=self.cmds.gap_s,
        )
        if simulate:
            self.sim = SimulatedWVOG() if kind == "wVOG" else SimulatedSVOG()
            await self.sim.start()
            options.lister = self.sim.ports
            self.context.simulate = True
        self.use(SerialSource(self.device_id, options))
        return {"devices": [{"id": self.device_id, "simulated": simulate}]}

    # -- device work -----------------------------------------------------------------------------
    async def alongside(self, source: SerialSource) -> None:
        """Start the goggles' trial at the trial's start instant."""
        while True:
            await asyncio.sleep(_TICK_S)
            due = self._trial_start_at
            if due is not None and time.monotonic_ns() >= due and self.connected:
                self._trial_start_at = None
                self._running = source.send(self.cmds.trial_start)
                self.device_trial += 1  # the goggles count their trials from 1 too

    def _row(self, *cells: Any) -> None:
        if self.stream is not None:
            self.stream.offer(cells)

    def on_line(self, line: Line) -> None:
        key, sep, value = split_line(line.text)
        t = line.t_mono_ns
        if key == "stm" and value in ("0", "1"):
            self.lens_open = value == "1"
            event = "open" if self.lens_open else "close"
            self._row(self.device_trial, t, mono_to_wall(t), event, "", "", "", self.device_id, t)
        elif key in ("data", "dta") and sep:  # sVOG: trial,open,closed; wVOG: + total,...
            try:
                trial, open_ms, closed_ms = (int(v) for v in value.split(",")[:3])
            except ValueError:
                self._bad(line.text)
                return
            self.device_trial = trial
            total = open_ms + closed_ms
            self.last_totals = {"open_ms": open_ms, "closed_ms": closed_ms, "total_ms": total}
            window = self.stream.window if self.stream is not None else None
            at = t if window is None or window.stop_ns is None else min(t, window.stop_ns - 1)
            self._row(
                trial, at, mono_to_wall(at), "trial_end", open_ms, closed_ms, total,
                self.device_id, t,
            )  # fmt: skip
            self._data.set()
        elif key in ("config", "cfg") and sep:
            pairs = (item.partition(":") for item in value.split(","))
            self.device_config = {k.strip(): v.strip() for k, s, v in pairs if s}
        else:
            self._bad(line.text)

    def _bad(self, text: str) -> None:
        self.malformed += 1
        log.warning("sVOG: malformed line %r (%d so far)", text[:80], self.malformed)

    def on_connected(self, link: Link, down: Link | None) -> None:
        source = self.source
        if source is not None:
            for cmd in self.cmds.settings(self.config["open_ms"], self.config["closed_ms"]):
                source.send(cmd)
            source.send(self.cmds.get_config)
        if down is not None and self.stream is not None:
            start, end, reason = self.gap_of(down, link)
            self.stream.gap(start, end, None, reason)
        if self._running:  # re-plugged goggles start idle: the trial goes on
            self._trial_start_at = link.t_mono_ns

    # -- trials ----------------------------------------------------------------------------------
    async def start_trial(self, window: TrialWindow) -> dict[str, Any]:
        assert self.session is not None
        await self.require_connected()
        path = self.session.module_dir / self.device_id / f"{window.stem}_vog.csv"
        stream: TrialStream[tuple] = TrialStream(
            window,
            CsvSink(path, VOG_COLUMNS),
            FileRecord(
                self.device_id, "csv", path, extra={"stream": "vog", "simulated": bool(self.sim)}
            ),
            name=f"{self.device_id} vog",
            max_items=256,
            time_of=lambda row: row[1],
        )
        try:
            await stream.open(self.announce_file)
        except (SinkError, OSError) as exc:
            raise CommandError(f"VOG: {exc}") from None
        self.stream = stream
        self._trial_start_at = window.start_ns
        return {"device": self.device_id}

    async def stop_trial(self, window: TrialWindow) -> list[FileRecord]:
        stream = self.stream
        if stream is None:
            return []
        self._trial_start_at = None
        if self._running and self.source is not None:
            self._data.clear()
            self.source.send(self.cmds.trial_stop)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DATA_WAIT_S):
                    await self._data.wait()  # the device's totals of the trial
        self._running = False
        self.stream = None
        record = await stream.close()
        if self.last_totals is not None:
            record.extra["totals"] = dict(self.last_totals)
        return [record]

    def status(self) -> dict[str, Any]:
        source = self.source
        if source is None:
            return {"devices": []}
        device = {
            "id": self.device_id,
            "port": source.port.device if source.port else None,
            "simulated": self.sim is not None,
            "connected": self.connected,
            "error": self.error,
            "config": dict(self.device_config),
            "lens_open": self.lens_open,
            "last_trial_totals": self.last_totals,
            "malformed": source.serial_stats.malformed + self.malformed,
            "disconnects": source.serial_stats.disconnects,
            "recording": self.stream is not None,
        }
        return {"devices": [device], "connected": self.connected}
