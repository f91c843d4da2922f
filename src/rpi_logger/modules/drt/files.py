"""One trial's files of one DRT: ``trialNNN_drt.csv`` (a row per stimulus, design.md §5) and
``trialNNN_time_sync.csv`` (the device clock fit, a row each time it is refitted)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rpi_logger.framework.base import FileRecord
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.framework.trial_stream import TrialStream
from rpi_logger.io.clock import mono_to_wall
from rpi_logger.io.clock_map import TIME_SYNC_COLUMNS, OffsetEstimate, time_sync_row
from rpi_logger.io.sinks import CsvSink
from rpi_logger.modules.drt.sdrt import Stimulus

#: design.md §5 plus ``t_arrival_ns``: when the onset's ``stm>1`` line arrived (the unmapped
#: time); ``run``: the device's run in the trial (1, then +1 each time it is restarted after a
#: re-plug: its ``stimulus`` counter restarts at 1, so (run, stimulus) is unique); for the wDRT,
#: ``t_device_ms`` is on its block clock (ms since its block started) and ``device_unix`` its
#: RTC's whole seconds when it sent the stimulus's results.
DRT_COLUMNS = (
    "stimulus",
    "t_mono_ns",
    "t_wall_unix",
    "t_device_ms",
    "rt_ms",
    "result",
    "clicks",
    "device",
    "t_arrival_ns",
    "run",
    "device_unix",
)


def drt_row(s: Stimulus, device: str) -> tuple:
    """The CSV row of a stimulus."""
    return (
        s.stimulus,
        s.t_mono_ns,
        mono_to_wall(s.t_mono_ns),
        s.t_device_ms,
        "" if s.rt_ms is None else s.rt_ms,
        s.result,
        s.clicks,
        device,
        "" if s.arrival_ns is None else s.arrival_ns,
        s.run,
        "" if s.device_unix is None else s.device_unix,
    )


class TrialFiles:
    """The DRT and time-sync files of one trial of one device."""

    def __init__(self, window: TrialWindow, folder: Path, device: str, extra: dict) -> None:
        self.window = window
        self.device = device
        stem = window.stem
        drt_path = folder / f"{stem}_drt.csv"
        sync_path = folder / f"{stem}_time_sync.csv"
        self.drt: TrialStream[tuple] = TrialStream(
            window,
            CsvSink(drt_path, DRT_COLUMNS),
            FileRecord(device, "csv", drt_path, extra={"stream": "drt", **extra}),
            name=f"{device} drt",
            max_items=256,
            time_of=lambda row: row[1],
        )
        self.sync: TrialStream[tuple] = TrialStream(
            window,
            CsvSink(sync_path, TIME_SYNC_COLUMNS),
            FileRecord(device, "csv", sync_path, extra={"stream": "time_sync", **extra}),
            name=f"{device} time_sync",
            max_items=256,
            time_of=lambda row: row[0],
        )
        self.disconnects = 0

    async def open(self, announce: Callable[[FileRecord], Awaitable[None]] | None) -> None:
        """Open both files (announced); raises `SinkError` when one cannot be made."""
        await self.drt.open(announce)
        try:
            await self.sync.open(announce)
        except BaseException:
            await self.drt.close()
            raise

    def stimulus(self, s: Stimulus) -> bool:
        return self.drt.offer(drt_row(s, self.device))

    def time_sync(self, estimate: OffsetEstimate, t_mono_ns: int) -> None:
        self.sync.offer(time_sync_row(estimate, t_mono_ns))

    def gap(self, start_ns: int, end_ns: int, reason: str) -> None:
        for stream in (self.drt, self.sync):
            stream.gap(start_ns, end_ns, None, reason)

    def status(self) -> dict[str, Any]:
        return {"drt": self.drt.status(), "time_sync": self.sync.status()}

    async def close(self) -> list[FileRecord]:
        records = [await self.drt.close(), await self.sync.close()]
        for record in records:
            record.extra["disconnects"] = self.disconnects
        return records
