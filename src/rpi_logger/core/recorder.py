"""Headless recording (`rpi-logger record`): one session of N trials, then exit."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from rpi_logger.core.master import DISK_FULL, DiskFullError, Master, MasterConfig, MasterError
from rpi_logger.framework.trial import sleep_until

log = logging.getLogger("rpi_logger.record")

T = TypeVar("T")

#: Exit statuses besides 0 (all recorded) and 1 (something was not recorded).
EXIT_USAGE = 2
EXIT_DISK_FULL = 3
EXIT_INTERRUPTED = 130


def _say(text: str) -> None:
    # Progress goes to stderr: stdout's last line is the session folder, for scripts. One
    # write, the newline included: print() writes it separately, and the log listener thread
    # may write a line in between ("...: disk full12:56:56 INFO ...").
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


@dataclass(slots=True)
class RecordPlan:
    """What `rpi-logger record` was asked to do."""

    modules: list[str]
    duration_s: float
    trials: int = 1
    label: str | None = None
    overrides: list[tuple[str, str, str]] = field(default_factory=list)  # module, key, value


class _Interrupt:
    """Ctrl-C / SIGTERM, noted rather than raised: the recording decides where to stop.

    The first signal asks the running trial to stop at that instant; later ones only say that
    the files are being closed (a second Ctrl-C must not cost the data the first one saves).
    """

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.at_ns: int | None = None
        self.signal_name = ""

    def __call__(self, sig: signal.Signals) -> None:
        if self.at_ns is None:
            self.at_ns = time.monotonic_ns()
            self.signal_name = sig.name
            self.event.set()
            _say(f"rpi-logger record: {sig.name}: stopping the trial and closing the files")
        else:
            _say("rpi-logger record: still closing the files; the session ends in a moment")

    @property
    def requested(self) -> bool:
        return self.at_ns is not None


async def _unless(interrupt: asyncio.Event, aw: Awaitable[T]) -> tuple[bool, T | None]:
    """Run `aw` unless `interrupt` fires first (then `aw` is cancelled): (finished, result)."""
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(aw)  # type: ignore[arg-type]
        waiter = tg.create_task(interrupt.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        waiter.cancel()
    if task.cancelled():
        return False, None
    return True, task.result()


async def record(plan: RecordPlan, config: MasterConfig) -> int:
    """Record and return the exit status: 0 only if every module recorded every trial.

    Ctrl-C or SIGTERM stops the running trial a lead time after the signal (a stop already on
    its way keeps its planned instant) and ends the session properly; the status is then 130.
    """
    loop = asyncio.get_running_loop()
    interrupt = _Interrupt()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt, sig)
    try:
        return await _record(plan, config, interrupt)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _record(plan: RecordPlan, config: MasterConfig, interrupt: _Interrupt) -> int:
    lead_ns = config.lead_ns
    disk_full = False
    async with Master(config) as master:
        try:
            names = list(dict.fromkeys(master.spec(n).name for n in plan.modules))
            for module, key, value in plan.overrides:
                name = master.spec(module).name
                config.overrides.setdefault(name, {})[key] = value
        except MasterError as exc:
            _say(f"rpi-logger record: {exc}")
            return EXIT_USAGE
        finished, errors = await _unless(interrupt.event, master.start_modules(names))
        if not finished:
            _say("rpi-logger record: interrupted while starting the modules; nothing recorded")
            return EXIT_INTERRUPTED
        assert errors is not None
        failed = {n: e for n, e in errors.items() if e}
        if failed:
            for name, error in failed.items():
                _say(f"rpi-logger record: module {name} did not start: {error}")
            return 1
        try:
            session = await master.start_session(plan.label)
        except MasterError as exc:
            _say(f"rpi-logger record: {exc}")
            return EXIT_DISK_FULL if isinstance(exc, DiskFullError) else 1
        _say(
            f"recording session {session.directory.name}: {', '.join(names)}"
            f"{' (simulated)' if session.manifest.simulated else ''}"
        )
        for number in range(1, plan.trials + 1):
            if interrupt.requested or master.halted.is_set():
                break
            try:
                trial = await master.start_trial(plan.label)
            except MasterError as exc:
                _say(f"rpi-logger record: trial {number} not started: {exc}")
                disk_full = isinstance(exc, DiskFullError)
                break
            _say(f"  trial {number}/{plan.trials}: {plan.duration_s:g} s")
            # The trial is exactly `duration_s` long on the host clock: the stop instant is sent
            # a lead time before it comes, unless a signal or a halt (disk full) comes first.
            start_ns = trial["start"]["mono_ns"]
            stop_ns = start_ns + round(plan.duration_s * 1e9)
            await _first(
                sleep_until(stop_ns - lead_ns), interrupt.event.wait(), master.halted.wait()
            )
            if interrupt.requested and interrupt.at_ns is not None:
                # A lead time after the signal, like any stop: an instant already past when a
                # module hears of it would let samples after it into the files.
                stop_ns = min(stop_ns, max(interrupt.at_ns + lead_ns, start_ns))
            if master.halt_reason is not None:
                # The halt stops the trial itself; this waits until it has.
                await master.halt(master.halt_reason, master.halt_reason)
            else:
                # A signal is the headless Stop button: the trial ends there, properly closed.
                reason = interrupt.signal_name if interrupt.requested else None
                try:
                    await master.stop_trial(at_mono_ns=stop_ns, reason=reason)
                except MasterError as exc:  # stopped meanwhile (a halt got there first)
                    log.debug("trial %d already stopped: %s", number, exc)
        await master.end_session()
        problems = master.recorded_everything(session, names)
        disk_full = disk_full or master.halt_reason == DISK_FULL
    for problem in problems:
        _say(f"rpi-logger record: {problem}")
    print(session.directory)
    if interrupt.requested:
        return EXIT_INTERRUPTED
    if disk_full:
        return EXIT_DISK_FULL
    return 0 if not problems else 1


async def _first(*aws: Awaitable[object]) -> None:
    """Wait until the first of `aws` finishes; the others are cancelled and awaited."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(a) for a in aws]  # type: ignore[arg-type]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
