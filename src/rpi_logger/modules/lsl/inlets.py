"""Every LSL stream the predicate matches, read on one device thread (`ThreadedSource`).

The thread resolves streams continuously (`ContinuousResolver` with the predicate), opens an
inlet for each new one (``recover=False``: a stream that goes away raises `LostError`, which
becomes a `StreamDown`; when it is resolved again it is a new inlet and a new `StreamUp`), pulls
every inlet without waiting and re-measures each inlet's clock offset (`time_correction()`)
every `clock_interval_s`. Remote times are mapped onto the host clock on the thread with the
offset in force, ``t_mono_ns = round((t_remote + correction) * 1e9)``; liblsl's `local_clock()`
is CLOCK_MONOTONIC (design.md §11), so the sum is on the session's clock.

What reaches the loop: `StreamUp` (its metadata), `Samples` (a pulled chunk), `Offset` (a
clock measurement) and `StreamDown`. pylsl is imported on the device thread only.
"""

from __future__ import annotations

import logging
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rpi_logger.framework.source import Lost, SourceError, ThreadedSource

log = logging.getLogger("rpi_logger.lsl")

#: How often the resolver's results are looked at.
RESOLVE_INTERVAL_S = 0.5
#: Idle wait when no inlet had data.
IDLE_S = 0.002
#: How long the first look for streams lasts: those present then are open when it ends.
FIRST_PASS_S = 1.0
#: Samples pulled from one inlet per call (bounds one item's size).
MAX_CHUNK = 1024


class LslError(SourceError):
    """liblsl is missing or failed; the message says why."""


def stream_key(name: str, source_id: str, host: str) -> str:
    """A stream's identity across restarts of its publisher (uids change, these do not)."""
    return f"{name}|{source_id}|{host}"


@dataclass(frozen=True, slots=True)
class StreamMeta:
    """What a resolved stream says about itself."""

    key: str
    name: str
    type: str
    source_id: str
    host: str
    uid: str
    channel_count: int
    channel_format: str
    nominal_srate: float
    labels: tuple[str, ...]
    units: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StreamUp:
    kind: ClassVar[str] = "up"
    meta: StreamMeta
    t_mono_ns: int


@dataclass(frozen=True, slots=True)
class StreamDown:
    kind: ClassVar[str] = "down"
    key: str
    t_mono_ns: int
    reason: str


@dataclass(frozen=True, slots=True)
class Offset:
    """One `time_correction()`: add `correction_s` to a remote time to get local time."""

    kind: ClassVar[str] = "offset"
    key: str
    t_mono_ns: int
    correction_s: float
    t_remote: float
    uncertainty_s: float


@dataclass(frozen=True, slots=True)
class Samples:
    """A pulled chunk, mapped: `t_mono_ns[i]` is `t_remote[i] + correction_s` in ns."""

    kind: ClassVar[str] = "samples"
    key: str
    t_mono_ns: list[int]
    t_remote: list[float]
    values: list[Any] = field(default_factory=list)

    @property
    def last_t(self) -> int:
        return self.t_mono_ns[-1]


def channel_labels(xml: str, count: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Channel labels and units from a stream's XDF description (``ch0``... when absent)."""
    labels = [f"ch{i}" for i in range(count)]
    units = [""] * count
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return tuple(labels), tuple(units)
    for i, ch in enumerate(root.findall("./desc/channels/channel")[:count]):
        labels[i] = (ch.findtext("label") or labels[i]).strip() or labels[i]
        units[i] = (ch.findtext("unit") or "").strip()
    return tuple(labels), tuple(units)


def predicate(name: str | None, type_: str | None, source_id: str | None, host: str | None) -> str:
    """The XPath predicate liblsl resolves with (empty: every stream)."""
    parts = []
    for field_name, value in (
        ("name", name),
        ("type", type_),
        ("source_id", source_id),
        ("hostname", host),
    ):
        if value:
            if "'" in value:
                raise ValueError(f"{field_name} must not contain a quote: {value!r}")
            parts.append(f"{field_name}='{value}'")
    return " and ".join(parts)


class _Tracked:
    __slots__ = ("correction", "inlet", "meta", "next_clock")

    def __init__(self, inlet: Any, meta: StreamMeta, correction: float) -> None:
        self.inlet = inlet
        self.meta = meta
        self.correction = correction
        self.next_clock = 0.0


class InletSource(ThreadedSource[Any, str]):
    """The streams matching `pred`, on one device thread (module docstring)."""

    backend = "lsl"
    error_class = LslError

    def __init__(
        self,
        pred: str,
        *,
        clock_interval_s: float = 5.0,
        exclude_prefix: str | None = None,
        queue_size: int = 4096,
    ) -> None:
        super().__init__("inlets", pred, queue_size)
        self.pred = pred
        self.clock_interval_s = clock_interval_s
        self.exclude_prefix = exclude_prefix
        self._lsl: Any = None
        self._errors: Any = None
        #: The stream of each item lost in the hand-off, oldest first (see `_lost_of`).
        self.lost_keys: deque[str] = deque(maxlen=100_000)
        #: Set once the streams present at start were found and opened (`FIRST_PASS_S`).
        self.settled = threading.Event()

    def _lost_of(self, sample: Any) -> Lost:
        """A chunk lost in the hand-off (device thread): its stream is remembered, in order,
        for the loop's `on_overflow` (`lost_keys`)."""
        if isinstance(sample, Samples):
            self.lost_keys.append(sample.key)
            return Lost(sample.t_mono_ns[0], None, len(sample.t_mono_ns))
        self.lost_keys.append("")
        return Lost(sample.t_mono_ns, None, 0)

    def _device_open(self) -> str:
        try:
            import pylsl
        except Exception as exc:  # the wheel ships liblsl; a broken install says so
            raise LslError(f"pylsl cannot be loaded: {exc}") from None
        import pylsl.util

        self._lsl = pylsl
        self._errors = pylsl.util
        return self.pred

    def _device_close(self) -> None:
        return None

    def _open_inlet(self, info: Any) -> _Tracked | None:
        pylsl = self._lsl
        labels, units = channel_labels(info.as_xml(), info.channel_count())
        fmt = {
            pylsl.cf_float32: "float32",
            pylsl.cf_double64: "float64",
            pylsl.cf_string: "string",
            pylsl.cf_int32: "int32",
            pylsl.cf_int16: "int16",
            pylsl.cf_int8: "int8",
            pylsl.cf_int64: "int64",
        }.get(info.channel_format(), "float64")
        inlet = pylsl.StreamInlet(info, max_buflen=360, recover=False)
        try:
            inlet.open_stream(timeout=5.0)
            correction = inlet.time_correction(timeout=5.0)
        except (self._errors.TimeoutError, self._errors.LostError) as exc:
            log.warning("LSL stream %s not opened: %s", info.name(), exc)
            return None
        full = inlet.info(timeout=5.0)  # the resolver's info has no description
        labels, units = channel_labels(full.as_xml(), info.channel_count())
        meta = StreamMeta(
            key=stream_key(info.name(), info.source_id(), info.hostname()),
            name=info.name(),
            type=info.type(),
            source_id=info.source_id(),
            host=info.hostname(),
            uid=info.uid(),
            channel_count=info.channel_count(),
            channel_format=fmt,
            nominal_srate=info.nominal_srate(),
            labels=labels,
            units=units,
        )
        return _Tracked(inlet, meta, correction)

    def _device_loop(self) -> None:
        pylsl = self._lsl
        resolver = (
            pylsl.ContinuousResolver(pred=self.pred, forget_after=5.0)
            if self.pred
            else pylsl.ContinuousResolver(forget_after=5.0)
        )
        tracked: dict[str, _Tracked] = {}
        dead: set[str] = set()  # uids of streams that went away (the resolver forgets later)
        next_resolve = 0.0
        settle_at = time.monotonic() + FIRST_PASS_S
        self.settled.clear()
        stop = self._stop
        while not stop.is_set():
            now = time.monotonic()
            if now >= settle_at and not self.settled.is_set():
                next_resolve = 0.0  # one more look, then the streams present at start are open
            if now >= next_resolve:
                next_resolve = now + (RESOLVE_INTERVAL_S if now >= settle_at else 0.1)
                for info in resolver.results():
                    key = stream_key(info.name(), info.source_id(), info.hostname())
                    if key in tracked or info.uid() in dead:
                        continue
                    if self.exclude_prefix and info.source_id().startswith(self.exclude_prefix):
                        continue
                    item = self._open_inlet(info)
                    if item is None:
                        continue
                    tracked[key] = item
                    log.info(
                        "LSL stream %s (%s) from %s", item.meta.name, item.meta.type, item.meta.host
                    )
                    if not self._emit(StreamUp(item.meta, time.monotonic_ns())):
                        return
                    self._emit_offset(item, time.monotonic(), timeout=0.0)
                if now >= settle_at:
                    self.settled.set()
            pulled = False
            for key, item in list(tracked.items()):
                try:
                    values, stamps = item.inlet.pull_chunk(timeout=0.0, max_samples=MAX_CHUNK)
                    now = time.monotonic()
                    if now >= item.next_clock:
                        self._emit_offset(item, now, timeout=2.0)
                except self._errors.LostError as exc:
                    del tracked[key]
                    dead.add(item.meta.uid)
                    log.warning("LSL stream %s lost: %s", item.meta.name, exc)
                    if not self._emit(StreamDown(key, time.monotonic_ns(), "stream lost")):
                        return
                    continue
                if stamps:
                    pulled = True
                    corr = item.correction
                    mapped = [round((t + corr) * 1e9) for t in stamps]
                    if not self._emit(Samples(key, mapped, list(stamps), values)):
                        return
            if not pulled:
                stop.wait(IDLE_S)
        for item in tracked.values():
            item.inlet.close_stream()

    def _emit_offset(self, item: _Tracked, now: float, timeout: float) -> None:
        """Re-measure the stream's clock offset (liblsl answers from its last estimate and
        refreshes it in the background) and report it with its uncertainty."""
        item.next_clock = now + self.clock_interval_s
        try:
            corr, remote, unc = time_correction_ex(item.inlet, max(timeout, 0.5))
        except (self._errors.TimeoutError, self._errors.LostError):
            return  # a lost stream is reported by the next pull
        item.correction = corr
        self._emit(Offset(item.meta.key, time.monotonic_ns(), corr, remote, unc))


def time_correction_ex(inlet: Any, timeout: float) -> tuple[float, float, float]:
    """liblsl's `lsl_time_correction_ex`: (correction, remote time, uncertainty) in seconds
    (pylsl exposes only the correction)."""
    import ctypes

    from pylsl.lib import lib
    from pylsl.util import handle_error

    remote, unc, err = ctypes.c_double(), ctypes.c_double(), ctypes.c_int()
    fn = lib.lsl_time_correction_ex
    fn.restype = ctypes.c_double
    corr = fn(
        inlet.obj,
        ctypes.byref(remote),
        ctypes.byref(unc),
        ctypes.c_double(timeout),
        ctypes.byref(err),
    )
    handle_error(err)
    return corr, remote.value, unc.value
