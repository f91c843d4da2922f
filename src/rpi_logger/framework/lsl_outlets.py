"""Lab Streaming Layer outlets: any module's sample streams, also published live.

With the module setting ``lsl = true`` (off by default) a module declares its streams once
(`OutletSpec`: name, type, channel labels and units, nominal rate, format) and pushes each
sample from the loop with its own host time: ``outlets.push(key, t_mono_ns, values)``, O(1),
never waiting. An outlet is a `Sink` run by a `SinkWriter`: liblsl is loaded, the outlet made
and every sample pushed on that writer's thread, so the loop never waits on liblsl; when that
thread falls behind, samples are dropped (counted), never queued without bound.

Timestamps are the samples' own capture times, ``t_mono_ns / 1e9``: liblsl's `local_clock()` is
CLOCK_MONOTONIC on Linux (design.md §11), the host clock every row of the session is on. Each outlet
measures ``local_clock() - time.monotonic()`` when it opens and adds it when it is not zero
(another platform), so a receiver's `time_correction()` keeps working.

Metadata follows the XDF conventions: ``desc/channels/channel`` with ``label``, ``unit`` and
``type``; ``desc/synchronization/can_drop_samples`` is true (the time stamps are measured
capture times: pyxdf keeps them instead of dejittering); ``desc/acquisition`` names the
software; ``desc/rpi_logger`` the host, module, device and clock. The source id
``<host>/<module>/<device>/<key>`` is stable across restarts, so LabRecorder and inlets pick a
restarted module up again.

pylsl is imported only on the writer threads, and only when ``lsl = true``.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rpi_logger.io.sinks.base import Sink
from rpi_logger.io.sinks.writer import SinkWriter

log = logging.getLogger("rpi_logger.lsl")

#: A local_clock() this far from time.monotonic() is another clock (converted, not assumed).
CLOCK_TOLERANCE_S = 0.001
#: Samples an outlet's queue holds before it drops (a few seconds of gaze).
DEFAULT_QUEUE = 2048


@dataclass(frozen=True, slots=True)
class Channel:
    """One channel's XDF description."""

    label: str
    unit: str = ""
    type: str = ""


@dataclass(frozen=True, slots=True)
class OutletSpec:
    """One published stream. `key` is the module's own name for it (used by `push`)."""

    key: str
    name: str
    type: str
    channels: tuple[Channel, ...]
    nominal_srate: float = 0.0  # 0: irregular (markers, events)
    channel_format: str = "float64"  # float32, float64 (double64), int32, int64, string
    device: str = ""
    chunk_size: int = 0
    extra: dict[str, str] = field(default_factory=dict)


class Chunk(NamedTuple):
    """Samples at a fixed rate: row i was taken at ``t_mono_ns + i * 1e9 / rate``."""

    t_mono_ns: int
    rate: float
    data: np.ndarray  # (frames, channels)


def stream_info(spec: OutletSpec, module: str, host: str | None = None) -> Any:
    """The pylsl `StreamInfo` of `spec` with its XDF metadata (imports pylsl)."""
    import pylsl

    host = host or socket.gethostname()
    fmt = "double64" if spec.channel_format == "float64" else spec.channel_format
    source_id = f"{host}/{module}/{spec.device}/{spec.key}"
    info = pylsl.StreamInfo(
        spec.name, spec.type, len(spec.channels), spec.nominal_srate, fmt, source_id
    )
    desc = info.desc()
    channels = desc.append_child("channels")
    for ch in spec.channels:
        node = channels.append_child("channel")
        node.append_child_value("label", ch.label)
        if ch.unit:
            node.append_child_value("unit", ch.unit)
        if ch.type:
            node.append_child_value("type", ch.type)
    # Measured capture times, not a clock ticking at the nominal rate: pyxdf keeps them as
    # they are instead of fitting a line (a dropped sample stays a hole).
    desc.append_child("synchronization").append_child_value("can_drop_samples", "true")
    acq = desc.append_child("acquisition")
    acq.append_child_value("manufacturer", "RPi Logger")
    acq.append_child_value("model", module)
    ours = desc.append_child("rpi_logger")
    for key, value in {
        "host": host,
        "module": module,
        "device": spec.device,
        "stream": spec.key,
        "clock": "CLOCK_MONOTONIC (time.monotonic_ns() / 1e9)",
        **spec.extra,
    }.items():
        ours.append_child_value(key, str(value))
    return info


class OutletSink(Sink[Any]):
    """One LSL outlet as a sink: items are ``(t_mono_ns, values)`` or a `Chunk`."""

    def __init__(self, spec: OutletSpec, module: str) -> None:
        self.spec = spec
        self.module = module
        self.path = Path(f"lsl:{spec.name}")  # named in errors
        self.clock_shift_s = 0.0
        self._outlet: Any = None

    def open(self) -> None:
        import pylsl

        shift = pylsl.local_clock() - time.monotonic()
        if abs(shift) > CLOCK_TOLERANCE_S:
            self.clock_shift_s = shift
            log.info(
                "%s: local_clock() is not CLOCK_MONOTONIC here: shifted by %.6f s", self.path, shift
            )
        self._outlet = pylsl.StreamOutlet(
            stream_info(self.spec, self.module), chunk_size=self.spec.chunk_size
        )

    def write(self, batch: Sequence[Any]) -> None:
        outlet, shift = self._outlet, self.clock_shift_s
        rows: list[Any] = []
        stamps: list[float] = []
        for item in batch:
            if isinstance(item, Chunk):
                if rows:
                    outlet.push_chunk(rows, stamps)
                    rows, stamps = [], []
                n = len(item.data)
                t0 = item.t_mono_ns / 1e9 + shift
                times = t0 + np.arange(n) / item.rate
                outlet.push_chunk(item.data, times.tolist())
            else:
                t_mono_ns, values = item
                rows.append(values)
                stamps.append(t_mono_ns / 1e9 + shift)
        if rows:
            outlet.push_chunk(rows, stamps)

    def close(self) -> None:
        self._outlet = None  # liblsl unpublishes the stream when the outlet is freed


class Outlets:
    """A module's outlets (see the module docstring). Disabled: every call is a no-op."""

    def __init__(self, module: str, enabled: bool) -> None:
        self.module = module
        self.enabled = enabled
        self._writers: dict[str, SinkWriter[Any]] = {}

    async def open(self, specs: Sequence[OutletSpec], queue: int = DEFAULT_QUEUE) -> None:
        """Publish `specs` (off the loop). A stream that cannot be published is logged in one
        line and left out: recording never depends on LSL."""
        if not self.enabled:
            return
        for spec in specs:
            writer: SinkWriter[Any] = SinkWriter(
                OutletSink(spec, self.module),
                max_queue=queue,
                overflow="drop",
                name=f"lsl {spec.name}",
                flush_interval_s=1.0,
                fsync_interval_s=None,
                wake_items=1,  # pushed as soon as they come
            )
            try:
                await writer.astart()
            except Exception as exc:  # liblsl missing or failing: one line, keep recording
                log.error("LSL outlet %s not published: %s", spec.name, exc)
                continue
            self._writers[spec.key] = writer

    def push(self, key: str, t_mono_ns: int, values: Sequence[Any]) -> None:
        """Publish one sample taken at `t_mono_ns` (loop, O(1), never waits)."""
        writer = self._writers.get(key)
        if writer is not None:
            writer.submit((t_mono_ns, values))

    def push_chunk(self, key: str, chunk: Chunk) -> None:
        """Publish samples at a fixed rate (audio blocks)."""
        writer = self._writers.get(key)
        if writer is not None:
            writer.submit(chunk)

    def __contains__(self, key: str) -> bool:
        return key in self._writers

    def status(self) -> dict[str, Any]:
        return {
            key: {"pushed": w.stats().written, "dropped": w.stats().dropped}
            for key, w in self._writers.items()
        }

    async def aclose(self) -> None:
        """Unpublish every stream (off the loop)."""
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            try:
                await writer.aclose()
            except Exception as exc:  # already reported once by the writer
                log.debug("LSL outlet %s: %s", writer.name, exc)
