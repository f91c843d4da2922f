"""Headless recording (`rpi-logger record`): one session of N trials, then exit."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from rpi_logger.core.master import Master, MasterConfig, MasterError
from rpi_logger.modules.trial import sleep_until

log = logging.getLogger("rpi_logger.record")


def _say(text: str) -> None:
    # Progress goes to stderr: stdout's last line is the session folder, for scripts.
    print(text, file=sys.stderr, flush=True)


async def record(
    *,
    modules: list[str],
    duration_s: float,
    trials: int,
    label: str | None,
    data_dir: Path,
    simulate: bool,
    module_dirs: list[Path],
    lead_time_ms: int = 200,
    log_level: str = "INFO",
    overrides: list[tuple[str, str, str]] = (),
) -> int:
    """Record and return the exit status: 0 only if every module recorded every trial.

    Ctrl-C or SIGTERM stops the running trial at once and ends the session properly.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    outcome: dict[str, object] = {}
    try:
        return await _record(
            outcome,
            modules=modules,
            duration_s=duration_s,
            trials=trials,
            label=label,
            data_dir=data_dir,
            simulate=simulate,
            module_dirs=module_dirs,
            lead_time_ms=lead_time_ms,
            log_level=log_level,
            overrides=list(overrides),
        )
    except asyncio.CancelledError:
        _say("rpi-logger record: interrupted; the running trial was stopped")
        if "session" in outcome:
            print(outcome["session"])
        return 130
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _record(
    outcome: dict[str, object],
    *,
    modules: list[str],
    duration_s: float,
    trials: int,
    label: str | None,
    data_dir: Path,
    simulate: bool,
    module_dirs: list[Path],
    lead_time_ms: int,
    log_level: str,
    overrides: list[tuple[str, str, str]],
) -> int:
    config = MasterConfig(
        data_dir=data_dir,
        module_dirs=module_dirs,
        lead_time_ms=lead_time_ms,
        simulate=simulate,
        log_level=log_level,
    )
    session = None
    async with Master(config) as master:
        try:
            names = [master.spec(n).name for n in modules]
            for module, key, value in overrides:
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
