"""What every Neon backend shares: the device thread, the clock mapping, stalls and reconnects.

A backend is a `ThreadedSource`: its device thread runs its own asyncio loop (the realtime API
is asyncio), so the module's loop never waits on the device. A backend only says how to
connect (`_connect` -> a `Link`: the device's address, its time-echo port, its raw streams as
the API's async iterators of the API's data classes, and its phone status); this class does the
rest, the same for the real and the simulated device:

- **Clock.** The phone's clock is measured against the host clock with the API's
  `TimeOffsetEstimator` (time echo) at connection, every `sync_interval_s`, and on request (the
  module asks at session and trial start). Each estimate goes into a `ClockMap` (rejected when
  its round trip is above `max_roundtrip_ms`) and to the loop as a `TimeSync` item (the
  trial's `time_sync.csv`). Every sample is mapped with the estimate in force
  (`rpi_logger.io.clock_map`).
- **Streams.** `streams/*.py` turn each raw stream into our typed samples, emitted to the loop.
- **Connection loss.** No gaze for `stall_timeout_s`, or any stream ending or failing, ends the
  link: a `Connection(connected=False)` item goes to the loop, the thread reconnects every
  `reconnect_interval_s` until it can, measures the clock again, and says
  `Connection(connected=True)`. The module records the gap; the trial's files go on.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rpi_logger.framework.source import Lost, SourceError, ThreadedSource
from rpi_logger.io.clock_map import ClockMap, OffsetEstimate
from rpi_logger.modules.eyetracker.streams.events import eye_events
from rpi_logger.modules.eyetracker.streams.eye_video import eye_frames
from rpi_logger.modules.eyetracker.streams.gaze import gaze_samples
from rpi_logger.modules.eyetracker.streams.imu import imu_samples
from rpi_logger.modules.eyetracker.streams.scene import scene_frames

log = logging.getLogger("rpi_logger.eyetracker")

#: Stream kind -> the converter from the API's raw stream to our samples.
CONVERTERS: dict[str, Callable[[AsyncIterator[Any], ClockMap], AsyncIterator[Any]]] = {
    "gaze": gaze_samples,
    "imu": imu_samples,
    "events": eye_events,
    "scene": scene_frames,
    "eyes": eye_frames,
}
STATUS_INTERVAL_S = 5.0


class NeonError(SourceError):
    """The Neon could not be reached or stopped delivering; the message says why."""


@dataclass(frozen=True, slots=True)
class NeonInfo:
    """What a backend is (before open) and what the open device says about itself."""

    id: str
    name: str
    backend: str
    simulated: bool
    address: str | None = None
    scene_width: int = 1600
    scene_height: int = 1200
    scene_fps: float = 30.0


@dataclass(frozen=True, slots=True)
class Connection:
    """The link to the device came up or went down (host time of the change)."""

    kind: ClassVar[str] = "connection"
    t_mono_ns: int
    connected: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PhoneStatus:
    """The phone's battery and storage, as its API reports them."""

    kind: ClassVar[str] = "phone"
    t_mono_ns: int
    battery_percent: int | None = None
    battery_state: str | None = None
    storage_bytes: int | None = None
    storage_state: str | None = None
    device_name: str | None = None


@dataclass(frozen=True, slots=True)
class TimeSync:
    """One clock-offset estimate (accepted or rejected)."""

    kind: ClassVar[str] = "time_sync"
    estimate: OffsetEstimate

    @property
    def t_mono_ns(self) -> int:
        return self.estimate.t_mono_ns


@dataclass(slots=True)
class NeonOptions:
    """The settings a backend runs with (module settings, typed)."""

    streams: tuple[str, ...] = ("scene", "gaze", "imu", "events")
    sync_interval_s: float = 60.0
    sync_measurements: int = 100
    max_roundtrip_ms: float = 50.0
    stall_timeout_s: float = 1.0
    reconnect_interval_s: float = 1.0
    connect_timeout_s: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)


class Link(abc.ABC):
    """One connection to a device."""

    address: str
    time_echo_port: int | None

    @abc.abstractmethod
    def streams(self, kinds: tuple[str, ...]) -> dict[str, AsyncIterator[Any]]:
        """The raw streams (the API's data classes) of the kinds asked for."""

    async def phone_status(self) -> PhoneStatus | None:
        return None

    async def aclose(self) -> None:
        return None


class _LinkLost(Exception):
    """The link ended; the message says why."""


class _Stopped(Exception):
    """The source is closing."""


def host_ms() -> int:
    """The host clock in whole ms: the time function our time echo runs on."""
    return time.monotonic_ns() // 1_000_000


class NeonSource(ThreadedSource[Any, NeonInfo]):
    """A Neon on its own thread; subclasses implement `_connect`."""

    error_class = NeonError

    def __init__(self, info: NeonInfo, options: NeonOptions, queue_size: int = 4096) -> None:
        super().__init__(info.id, info, queue_size)
        self.options = options
        self.clock = ClockMap(max_roundtrip_ns=round(options.max_roundtrip_ms * 1e6))
        self.connected = False
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._link: Link | None = None
        self._sync_now: asyncio.Event | None = None
        self._sync_reasons: list[str] = []
        self._last_ns: dict[str, int] = {}
        #: Kinds of the samples lost in the hand-off, in order (device thread appends, loop pops).
        self.lost_kinds: deque[str] = deque()

    # -- what a backend provides ------------------------------------------------------------
    @abc.abstractmethod
    async def _connect(self) -> Link:
        """Connect to the device (raise with a reason when it cannot be reached)."""

    # -- requests from the module's loop (thread-safe) ----------------------------------------
    def request_sync(self, reason: str) -> None:
        """Measure the clock offset now (session start, trial start)."""
        loop = self._aloop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake_sync, reason)

    def _wake_sync(self, reason: str) -> None:
        self._sync_reasons.append(reason)
        if self._sync_now is not None:
            self._sync_now.set()

    @property
    def close_timeout_s(self) -> float:  # type: ignore[override]
        """A device thread may be in a connection attempt when asked to stop."""
        return 10.0 + self.options.connect_timeout_s

    def _lost_of(self, sample: Any) -> Lost:
        self.lost_kinds.append(getattr(sample, "kind", "scene"))
        return super()._lost_of(sample)

    # -- device thread ------------------------------------------------------------------------
    def _device_open(self) -> NeonInfo:
        self._aloop = asyncio.new_event_loop()
        try:
            self._link = self._aloop.run_until_complete(self._first_link())
        except BaseException:
            self._aloop.close()
            self._aloop = None
            raise
        return self.info

    async def _first_link(self) -> Link:
        try:
            async with asyncio.timeout(self.options.connect_timeout_s):
                link = await self._connect()
        except TimeoutError:
            raise NeonError(
                f"{self.name}: no answer within {self.options.connect_timeout_s:g} s"
            ) from None
        for _ in range(5):
            if self._stop.is_set():
                break
            await self._sync(link, "connect")
            if self.clock.ready:
                return link
        await link.aclose()
        raise NeonError(f"{self.name}: no usable clock offset (round trip too long?)")

    def _device_loop(self) -> None:
        assert self._aloop is not None
        self._aloop.run_until_complete(self._main())

    def _device_close(self) -> None:
        loop, self._aloop = self._aloop, None
        if loop is not None and not loop.is_closed() and not loop.is_running():
            loop.close()

    async def _main(self) -> None:
        self._sync_now = asyncio.Event()
        link = self._link
        self.connected = True
        self._emit(Connection(time.monotonic_ns(), True, "connected"))
        while not self._stop.is_set():
            assert link is not None
            reason = await self._run_link(link)
            with contextlib.suppress(Exception):
                await link.aclose()
            if reason is None:  # stopping
                return
            self.connected = False
            log.warning("%s: connection lost (%s); reconnecting", self.name, reason)
            if not self._emit(Connection(time.monotonic_ns(), False, reason)):
                return
            link = await self._reconnect()
            if link is None:
                return
            self.connected = True
            log.info("%s: reconnected", self.name)
            if not self._emit(Connection(time.monotonic_ns(), True, "reconnected")):
                return

    async def _reconnect(self) -> Link | None:
        while not self._stop.is_set():
            try:
                async with asyncio.timeout(self.options.connect_timeout_s):
                    link = await self._connect()
                await self._sync(link, "reconnect")
                return link
            except Exception as exc:  # any failure to connect: try again, say why once a try
                log.info("%s: reconnect failed: %s", self.name, exc)
            await asyncio.sleep(self.options.reconnect_interval_s)
        return None

    async def _run_link(self, link: Link) -> str | None:
        """Pump the link's streams until it is lost (the reason) or the source stops (None)."""
        now = time.monotonic_ns()
        self._last_ns = {}
        try:
            async with asyncio.TaskGroup() as tg:
                for kind, raw in link.streams(self.options.streams).items():
                    self._last_ns[kind] = now
                    tg.create_task(self._pump(kind, raw), name=f"neon-{kind}")
                tg.create_task(self._watchdog())
                tg.create_task(self._sync_loop(link))
                tg.create_task(self._status_loop(link))
        except BaseExceptionGroup as group:
            errors = [e for e in group.exceptions if not isinstance(e, _Stopped)]
            if not errors:
                return None
            lost = [e for e in errors if isinstance(e, _LinkLost)]
            exc = (lost or errors)[0]
            if not isinstance(exc, Exception):
                raise
            return str(exc) if isinstance(exc, _LinkLost) else f"{type(exc).__name__}: {exc}"
        return None

    async def _pump(self, kind: str, raw: AsyncIterator[Any]) -> None:
        try:
            async for sample in CONVERTERS[kind](raw, self.clock):
                self._last_ns[kind] = time.monotonic_ns()
                if not self._emit(sample):
                    raise _Stopped
        except (_Stopped, _LinkLost, asyncio.CancelledError):
            raise
        except Exception as exc:  # the library's errors (RTSP, parsing): the link is lost
            raise _LinkLost(f"{kind} stream failed: {type(exc).__name__}: {exc}") from exc
        raise _LinkLost(f"{kind} stream ended")

    async def _watchdog(self) -> None:
        """Stopping and stalls: no gaze (or, without gaze, no scene) for `stall_timeout_s`."""
        watched = next((k for k in ("gaze", "scene", "imu") if k in self._last_ns), None)
        limit_ns = round(self.options.stall_timeout_s * 1e9)
        while True:
            await asyncio.sleep(0.05)
            if self._stop.is_set():
                raise _Stopped
            if watched is not None and time.monotonic_ns() - self._last_ns[watched] > limit_ns:
                raise _LinkLost(f"no {watched} for {self.options.stall_timeout_s:g} s")

    async def _sync_loop(self, link: Link) -> None:
        event = self._sync_now
        assert event is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.sync_interval_s):
                    await event.wait()
            event.clear()
            reasons, self._sync_reasons = self._sync_reasons, []
            await self._sync(link, ", ".join(reasons) or "periodic")

    async def _status_loop(self, link: Link) -> None:
        while True:
            try:
                status = await link.phone_status()
            except Exception as exc:  # a status is never worth the link
                log.debug("%s: phone status failed: %s", self.name, exc)
                status = None
            if status is not None and not self._emit(status):
                raise _Stopped
            await asyncio.sleep(STATUS_INTERVAL_S)

    async def _sync(self, link: Link, reason: str) -> None:
        """One offset estimate with the API's time-echo estimator, into the clock map."""
        from pupil_labs.realtime_api.time_echo import TimeOffsetEstimator

        # The estimator logs a traceback for a refused connection; our one line says it.
        logging.getLogger("pupil_labs.realtime_api.time_echo").setLevel(logging.CRITICAL)
        if link.time_echo_port is None:
            log.warning("%s: the device offers no time echo; clock not measured", self.name)
            return
        t0 = time.monotonic_ns()
        try:
            result = await TimeOffsetEstimator(link.address, link.time_echo_port).estimate(
                number_of_measurements=self.options.sync_measurements,
                sleep_between_measurements_seconds=0.001,
                time_fn_ms=host_ms,
            )
        except OSError as exc:
            log.warning("%s: time echo failed: %s", self.name, exc)
            return
        if result is None:
            log.warning("%s: time echo gave no estimate", self.name)
            return
        t1 = time.monotonic_ns()
        offsets = result.time_offset_ms  # host minus device, ms (the API's sign)
        estimate = self.clock.add(
            OffsetEstimate(
                t_mono_ns=(t0 + t1) // 2,
                offset_ns=-round(offsets.mean * 1e6),
                std_ns=round(offsets.std * 1e6),
                roundtrip_ns=round(result.roundtrip_duration_ms.mean * 1e6),
                mean_ns=-round(offsets.mean * 1e6),
                median_ns=-round(offsets.median * 1e6),
                measurements=len(offsets.measurements),
                source=reason,
            )
        )
        if not estimate.accepted:
            log.warning(
                "%s: clock estimate rejected: round trip %.1f ms > %.1f ms",
                self.name,
                estimate.roundtrip_ns / 1e6,
                self.options.max_roundtrip_ms,
            )
        self._emit(TimeSync(estimate))
