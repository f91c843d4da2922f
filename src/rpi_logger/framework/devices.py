"""Modules of several devices of one kind (cameras, microphones): what each would otherwise copy.

A `DevicePipeline` is one device of a module: its capture loop on the module's loop (the
source's samples, each handed to `_on_sample`) and, during a trial, its files (`start_trial`,
`stop_trial`, usually one `TrialStream` each). A device that fails is logged and reported in
status, never raised: the module's other devices keep recording.

A `DeviceModule` holds the pipelines (`set_devices` from `configure`), runs their capture loops
from start to shutdown (restarted when `configure` changes them) beside one side task of the
module's own (previews, a level meter), and starts, stops and waits for every device together.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from rpi_logger.framework.base import CommandError, FileRecord, Module, ModuleContext, SessionInfo
from rpi_logger.framework.restarting import Work, run_restarting
from rpi_logger.framework.source import ThreadedSource
from rpi_logger.framework.trial import TrialWindow

log = logging.getLogger(__name__)

S = TypeVar("S")
Announce = Callable[[FileRecord], Awaitable[None]]


class DevicePipeline(abc.ABC, Generic[S]):
    """One device: its capture loop and, during a trial, its files. See the module docstring."""

    #: What the device is called in messages ("camera", "audio input").
    kind: ClassVar[str] = "device"
    #: How long a trial start waits for a device that is still opening.
    open_timeout_s: ClassVar[float] = 10.0

    def __init__(self, source: ThreadedSource[S, Any]) -> None:
        self.source = source
        self.id = source.name
        self.error: str | None = None
        self._opened = asyncio.Event()
        self._settled = asyncio.Event()  # opened, or failed to

    async def capture(self) -> None:
        """Run the source until cancelled; a device failure ends up in `error` and the log."""
        try:
            async with self.source:
                self._opened.set()
                self._settled.set()
                async for sample in self.source:
                    self._on_sample(sample)
        except self.source.error_class as exc:
            self.error = str(exc)
            log.error("%s %s failed: %s", self.kind, self.id, exc)
        finally:
            self._opened.clear()
            self._settled.set()

    async def wait_open(self) -> None:
        """Return once the device delivers; the source's error class if it failed to open."""
        if not self._opened.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.open_timeout_s):
                    await self._settled.wait()
        if not self._opened.is_set():
            raise self.source.error_class(
                f"{self.kind} {self.id} did not open: {self.error or 'timeout'}"
            )

    @abc.abstractmethod
    def _on_sample(self, sample: S) -> None:
        """One sample from the device (loop thread, O(1)): live figures, the trial stream."""

    @abc.abstractmethod
    async def start_trial(
        self, window: TrialWindow, module_dir: Path, announce: Announce | None = None
    ) -> FileRecord:
        """Open the trial's files (announced); raise the source's error class with a reason."""

    @abc.abstractmethod
    async def stop_trial(self) -> FileRecord | None:
        """Close the trial's files; never raises for a failed file (the record says so)."""

    @abc.abstractmethod
    def status(self) -> dict[str, Any]:
        """Live figures of this device."""


P = TypeVar("P", bound=DevicePipeline[Any])


class DeviceModule(Module, Generic[P]):
    """A module of several devices; see the module docstring."""

    def __init__(self, context: ModuleContext) -> None:
        super().__init__(context)
        self.devices: dict[str, P] = {}
        self._changed = asyncio.Event()

    def set_devices(self, pipelines: Iterable[P]) -> None:
        """Use these devices from now on (`run` restarts the capture loops with them)."""
        self.devices = {p.id: p for p in pipelines}
        self._changed.set()

    async def run(self) -> None:
        """Capture with the current devices; restart the loops whenever they change."""
        await run_restarting(self._changed, self._work)

    def _work(self) -> Work:
        devices = list(self.devices.values())
        jobs: Work = [(f"capture-{d.id}", d.capture()) for d in devices]
        return [*jobs, ("alongside", self.alongside(devices))]

    async def alongside(self, devices: list[P]) -> None:
        """The module's own live work beside the capture loops (previews, a level meter)."""

    async def start_session(self, session: SessionInfo) -> dict[str, Any]:
        """Ready to record means capturing: a trial started from now on has every sample from
        its start (a device that cannot open says so in its status)."""
        for result in await asyncio.gather(
            *(d.wait_open() for d in self.devices.values()), return_exceptions=True
        ):
            if isinstance(result, Exception):
                log.warning("%s", result)
        return {}

    async def start_trial(self, window: TrialWindow) -> dict[str, Any]:
        """Every device's files open, or none: a trial with a missing device is refused."""
        assert self.session is not None
        folder, announce = self.session.module_dir, self.announce_file
        results = await asyncio.gather(
            *(d.start_trial(window, folder, announce) for d in self.devices.values()),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.stop_trial(window)  # close what did open
            raise CommandError("; ".join(str(e) for e in errors))
        return {"devices": list(self.devices)}

    async def stop_trial(self, window: TrialWindow) -> list[FileRecord]:
        records = await asyncio.gather(*(d.stop_trial() for d in self.devices.values()))
        return [r for r in records if r is not None]

    def device_status(self) -> list[dict[str, Any]]:
        """Every device's live figures."""
        return [d.status() for d in self.devices.values()]
