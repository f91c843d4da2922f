"""The LSL module: streams of other programs and machines recorded like any other device.

Every stream the predicate matches (settings: name, type, source id, host) is read by the
`InletSource` device thread and, during a trial, written to its own files:

```
LSL/<stream>/trialNNN_<stream>.csv      t_mono_ns, t_wall_unix, t_remote, <channel labels...>
LSL/<stream>/trialNNN_time_sync.csv     every clock offset measurement of the stream
```

``t_mono_ns`` is the sample's remote time mapped onto the host clock with the stream's clock
offset in force (`time_correction()`, re-measured every ``clock_interval_s``); ``t_remote`` is
the publisher's own time stamp, kept so any other mapping can be made afterwards. The trial
window applies as everywhere: a row belongs to the trial its ``t_mono_ns`` falls in.

A stream that goes away (its publisher exits, the network drops) is a gap in its file, from its
last sample to its first one once it is resolved again (or to the trial's stop), listed by
`verify`; a stream first seen during a trial gets its files then.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpi_logger.framework import protocol
from rpi_logger.framework.base import (
    CommandError,
    FileRecord,
    Module,
    ModuleContext,
    SessionInfo,
)
from rpi_logger.framework.restarting import Work, run_restarting
from rpi_logger.framework.source import Lost
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.framework.trial_stream import TrialStream
from rpi_logger.io.clock import mono_to_wall
from rpi_logger.io.sinks import CsvSink
from rpi_logger.io.sinks.base import Sink, SinkError, SinkProxy
from rpi_logger.modules.lsl.inlets import (
    InletSource,
    LslError,
    Offset,
    Samples,
    StreamDown,
    StreamMeta,
    StreamUp,
    predicate,
)
from rpi_logger.modules.lsl.settings import SETTINGS

log = logging.getLogger("rpi_logger.lsl")
RETRY_S = 2.0
#: How long a session's start waits for the first look for streams.
SETTLE_TIMEOUT_S = 10.0
OFFSET_COLUMNS = (
    "t_mono_ns",
    "t_wall_unix",
    "offset_ns",
    "std_ns",
    "roundtrip_ns",
    "accepted",
    "correction_s",
    "t_remote",
    "uncertainty_ns",
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class InletRow:
    """One sample of a stream: its row is made on the writer thread."""

    __slots__ = ("t_mono_ns", "t_remote", "values")

    def __init__(self, t_mono_ns: int, t_remote: float, values: Sequence[Any]) -> None:
        self.t_mono_ns = t_mono_ns
        self.t_remote = t_remote
        self.values = values

    def row(self) -> tuple[Any, ...]:
        return (self.t_mono_ns, mono_to_wall(self.t_mono_ns), self.t_remote, *self.values)


class OffsetRow:
    """One clock offset measurement, placed at `t_mono_ns` in its file."""

    __slots__ = ("offset", "t_mono_ns")

    def __init__(self, offset: Offset, t_mono_ns: int) -> None:
        self.offset = offset
        self.t_mono_ns = t_mono_ns

    def row(self) -> tuple[Any, ...]:
        o = self.offset
        return (
            self.t_mono_ns,
            mono_to_wall(self.t_mono_ns),
            round(-o.correction_s * 1e9),  # remote minus host
            None,
            None,
            1,
            o.correction_s,
            o.t_remote,
            round(o.uncertainty_s * 1e9),
        )


class RowSink(SinkProxy[Any]):
    """A CSV sink fed samples: each becomes its row on the writer thread."""

    def write(self, batch: Sequence[Any]) -> None:
        self.inner.write([s.row() for s in batch])


def columns_of(meta: StreamMeta) -> tuple[str, ...]:
    """The stream's CSV columns: ours, then its channel labels (made unique)."""
    cols = ["t_mono_ns", "t_wall_unix", "t_remote"]
    for label in meta.labels:
        name, n = label or "ch", 2
        candidate = name
        while candidate in cols:
            candidate, n = f"{name}_{n}", n + 1
        cols.append(candidate)
    return tuple(cols)


@dataclass(slots=True)
class StreamState:
    """What the module knows about one stream during the session."""

    meta: StreamMeta
    folder: str
    up: bool = True
    last_t: int | None = None
    samples: int = 0
    offset: Offset | None = None
    files: TrialStreamPair | None = None
    gap_from: int | None = None  # set while down: where its gap starts
    arrivals: list[int] = field(default_factory=list)


@dataclass(slots=True)
class TrialStreamPair:
    data: TrialStream[Any]
    offsets: TrialStream[Any]
    offset_last: int | None = None

    def offer_offset(self, offset: Offset, at: int) -> None:
        t = max(at, self.data.window.start_ns)
        if self.offset_last is not None:
            t = max(t, self.offset_last + 1)
        if self.offsets.offer(OffsetRow(offset, t)):
            self.offset_last = t


class LslModule(Module):
    settings = SETTINGS

    def __init__(self, context: ModuleContext) -> None:
        super().__init__(context)
        self.config: dict[str, Any] = {}
        self.source: InletSource | None = None
        self.streams: dict[str, StreamState] = {}
        self.error: str | None = None
        self._changed = asyncio.Event()
        self._files_lock = asyncio.Lock()

    async def configure(self, settings: dict[str, Any], simulate: bool) -> dict[str, Any]:
        if self.trial is not None:
            raise CommandError("cannot reconfigure LSL during a trial", protocol.BAD_STATE)
        try:
            pred = predicate(
                settings.get("stream_name"),
                settings.get("stream_type"),
                settings.get("source_id"),
                settings.get("host"),
            )
        except ValueError as exc:
            raise CommandError(str(exc), protocol.BAD_ARGS) from None
        self.config = settings
        own = None if settings.get("record_own") else f"{socket.gethostname()}/"
        self.source = InletSource(
            pred, clock_interval_s=settings.get("clock_interval_s", 5.0), exclude_prefix=own
        )
        self.source.on_overflow = self._on_overflow
        self._changed.set()
        return {
            "devices": [{"id": "lsl", "name": f"LSL streams ({pred or 'any'})", "simulated": False}]
        }

    # -- device work ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Record the inlets; restart whenever configure() replaces them."""
        await run_restarting(self._changed, self._work)

    def _work(self) -> Work:
        return [] if self.source is None else [("lsl-inlets", self._pump(self.source))]

    async def _pump(self, source: InletSource) -> None:
        while True:
            try:
                async with source:
                    self.error = None
                    async for item in source:
                        await self._on_item(item)
            except LslError as exc:
                self.error = str(exc)
                log.error("%s", exc)
            await asyncio.sleep(RETRY_S)

    def _on_overflow(self, lost: Lost) -> None:
        """A chunk the device thread could not hand over (the loop fell behind): each of its
        samples counts as a capture overflow of its stream's file."""
        source = self.source
        key = source.lost_keys.popleft() if source is not None and source.lost_keys else ""
        state = self.streams.get(key)
        if state is not None and state.files is not None:
            for _ in range(lost.size):
                state.files.data.lost(lost.t_mono_ns)

    async def _on_item(self, item: Any) -> None:
        if isinstance(item, Samples):
            state = self.streams.get(item.key)
            if state is None:
                return
            self._on_samples(state, item)
        elif isinstance(item, StreamUp):
            await self._on_up(item)
        elif isinstance(item, StreamDown):
            state = self.streams.get(item.key)
            if state is not None:
                state.up = False
                state.gap_from = state.last_t if state.last_t is not None else item.t_mono_ns
                await self.emit_status()
        elif isinstance(item, Offset):
            state = self.streams.get(item.key)
            if state is not None:
                state.offset = item
                if state.files is not None:
                    state.files.offer_offset(item, item.t_mono_ns)

    def _on_samples(self, state: StreamState, item: Samples) -> None:
        first = item.t_mono_ns[0]
        files = state.files
        if state.gap_from is not None:
            if files is not None:
                period = 1e9 / state.meta.nominal_srate if state.meta.nominal_srate > 0 else None
                missing = max(0, round((first - state.gap_from) / period) - 1) if period else None
                files.data.gap(state.gap_from, first, missing, "stream lost")
            state.gap_from = None
        for t, remote, values in zip(item.t_mono_ns, item.t_remote, item.values, strict=True):
            if files is not None:
                files.data.offer(InletRow(t, remote, values))
        state.samples += len(item.t_mono_ns)
        state.last_t = item.last_t
        state.arrivals = [*state.arrivals[-49:], item.last_t]

    async def _on_up(self, item: StreamUp) -> None:
        meta = item.meta
        state = self.streams.get(meta.key)
        if state is None:
            used = {s.folder for s in self.streams.values()}
            base = _UNSAFE.sub("_", meta.name).strip("._") or "stream"
            folder, n = base, 2
            while folder in used:
                folder, n = f"{base}_{n}", n + 1
            state = StreamState(meta, folder)
            self.streams[meta.key] = state
        else:
            state.meta = meta
            state.up = True
        if self.trial is not None and self.session is not None and state.files is None:
            await self._open_files(state, self.trial)  # first seen during the trial
        await self.emit_status()

    # -- trials --------------------------------------------------------------------------------
    async def start_session(self, session: SessionInfo) -> dict[str, Any]:
        """Ready to record means the streams present now are open: a trial started from now on
        has their samples from its start."""
        source = self.source
        if source is not None:
            await asyncio.to_thread(source.settled.wait, SETTLE_TIMEOUT_S)
        return {"streams": [s.meta.name for s in self.streams.values()]}

    async def _open_files(self, state: StreamState, window: TrialWindow) -> None:
        """The stream's files for `window`. A stream down now keeps its pending gap (set when
        it went away): it is written at its first sample or at the stop."""
        assert self.session is not None
        folder: Path = self.session.module_dir / state.folder
        meta = state.meta
        lsl = {
            "name": meta.name,
            "type": meta.type,
            "source_id": meta.source_id,
            "host": meta.host,
            "nominal_srate": meta.nominal_srate,
            "channel_format": meta.channel_format,
            "units": list(meta.units),
        }
        data_path = folder / f"{window.stem}_{state.folder}.csv"
        sync_path = folder / f"{window.stem}_time_sync.csv"
        rate = meta.nominal_srate or 100.0
        data = self._stream(
            window, data_path, columns_of(meta), state, "samples", lsl, max(4096, int(rate * 4))
        )
        offsets = self._stream(window, sync_path, OFFSET_COLUMNS, state, "time_sync", lsl, 256)
        await data.open(self.announce_file)
        try:
            await offsets.open(self.announce_file)
        except BaseException:
            await data.close()
            raise
        pair = TrialStreamPair(data, offsets)
        if state.offset is not None:
            pair.offer_offset(state.offset, window.start_ns)
        state.files = pair

    def _stream(
        self,
        window: TrialWindow,
        path: Path,
        columns: Sequence[str],
        state: StreamState,
        kind: str,
        lsl: dict[str, Any],
        max_items: int,
    ) -> TrialStream[Any]:
        sink: Sink[Any] = RowSink(CsvSink(path, columns, append=True))
        record = FileRecord(state.folder, "csv", path, extra={"stream": kind, "lsl": lsl})
        return TrialStream(
            window, sink, record, name=f"lsl {state.folder} {kind}", max_items=max_items
        )

    async def start_trial(self, window: TrialWindow) -> dict[str, Any]:
        opened = []
        try:
            for state in self.streams.values():
                await self._open_files(state, window)
                opened.append(state.folder)
        except SinkError as exc:
            await self.stop_trial(window)
            raise CommandError(str(exc)) from None
        return {"streams": opened}

    async def stop_trial(self, window: TrialWindow) -> list[FileRecord]:
        records: list[FileRecord] = []
        for state in self.streams.values():
            pair, state.files = state.files, None
            if pair is None:
                continue
            if state.gap_from is not None and window.stop_ns is not None:
                pair.data.gap(state.gap_from, window.stop_ns, None, "stream lost")
            for stream in (pair.data, pair.offsets):
                record = await stream.close()
                record.extra["connected_at_stop"] = state.up
                records.append(record)
        return records

    async def shutdown(self) -> None:
        source, self.source = self.source, None
        if source is not None:
            await source.close()

    def status(self) -> dict[str, Any]:
        streams = []
        for state in self.streams.values():
            a = state.arrivals
            streams.append(
                {
                    "name": state.meta.name,
                    "type": state.meta.type,
                    "host": state.meta.host,
                    "source_id": state.meta.source_id,
                    "connected": state.up,
                    "samples": state.samples,
                    "clock_offset_ms": None
                    if state.offset is None
                    else round(-state.offset.correction_s * 1e3, 4),
                    "recording": None if state.files is None else state.files.data.status(),
                    "chunks_per_s": round((len(a) - 1) * 1e9 / (a[-1] - a[0]), 1)
                    if len(a) > 1 and a[-1] > a[0]
                    else 0.0,
                }
            )
        return {"streams": streams, "error": self.error}
