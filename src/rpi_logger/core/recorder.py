"""Headless recording (`rpi-logger record`): one session of N trials, then exit."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass, field

from rpi_logger.core.master import Master, MasterConfig, MasterError
from rpi_logger.modules.trial import sleep_until

log = logging.getLogger("rpi_logger.record")


def _say(text: str) -> None:
    # Progress goes to stderr: stdout's last line is the session folder, for scripts.
    print(text, file=sys.stderr, flush=True)


@dataclass(slots=True)
class RecordPlan:
    """What `rpi-logger record` was asked to do."""

    modules: list[str]
    duration_s: float
    trials: int = 1
    label: str | None = None
    overrides: list[tuple[str, str, str]] = field(default_factory=list)  # module, key, value


async def record(plan: RecordPlan, config: MasterConfig) -> int:
    """Record and return the exit status: 0 only if every module recorded every trial.

    Ctrl-C or SIGTERM stops the running trial at once and ends the session properly.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    outcome: dict[str, object] = {}
    try:
        return await _record(outcome, plan, config)
    except asyncio.CancelledError:
        _say("rpi-logger record: interrupted; the running trial was stopped")
        if "session" in outcome:
            print(outcome["session"])
        return 130
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _record(outcome: dict[str, object], plan: RecordPlan, config: MasterConfig) -> int:
    modules, duration_s, trials, label = plan.modules, plan.duration_s, plan.trials, plan.label
    lead_time_ms = config.lead_time_ms
    session = None
    async with Master(config) as master:
        try:
            names = [master.spec(n).name for n in modules]
            for module, key, value in plan.overrides:
                name = master.spec(module).name
                config.overrides.setdefault(name, {})[key] = value
        except MasterError as exc:
            _say(f"rpi-logger record: {exc}")
            return 2
        errors = await master.start_modules(names)
        failed = {n: e for n, e in errors.items() if e}
        if failed:
            for name, error in failed.items():
                _say(f"rpi-logger record: module {name} did not start: {error}")
            return 1
        session = await master.start_session(label)
        outcome["session"] = session.directory
        _say(
            f"recording session {session.directory.name}: {', '.join(names)}"
            f"{' (simulated)' if session.manifest['simulated'] else ''}"
        )
        for number in range(1, trials + 1):
            trial = await master.start_trial(label)
            _say(f"  trial {number}/{trials}: {duration_s:g} s")
            # The trial is exactly `duration_s` long on the host clock: the stop instant is sent
            # a lead time before it comes.
            stop_ns = trial["start"]["mono_ns"] + int(duration_s * 1e9)
            await sleep_until(stop_ns - lead_time_ms * 1_000_000)
            await master.stop_trial(at_mono_ns=stop_ns)
        await master.end_session()
        problems = master.recorded_everything(session, names)
    for problem in problems:
        _say(f"rpi-logger record: {problem}")
    print(session.directory)
    return 0 if not problems else 1
