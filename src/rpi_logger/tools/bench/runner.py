"""Runs a bench: the idle floor alone, then the rig once per mode, and gathers the figures.

Each mode is a fresh driver process (master + HTTP server + module processes, see driver.py)
started with `RPI_LOGGER_BLOCKING_SINKS` set to 0 or 1: the one switch of the sink layer, which
the module processes inherit. While its trial records, this process posts the notes (a thread)
and runs the idle-floor sampler (floor.py) as a process of its own beside the rig.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from rpi_logger import __version__
from rpi_logger.tools.bench.figures import mode_figures, ratios
from rpi_logger.tools.bench.notes import NotePoster, warm_up
from rpi_logger.tools.bench.rigs import Rig

__all__ = ["MODES", "BenchError", "run_bench"]

#: Mode name -> blocking sinks.
MODES = {"non_blocking": False, "blocking": True}

#: Seconds a driver may take to start its modules, or to stop and close after its trial.
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 180.0

Tick = Callable[[str, float], None]  # (what is running, seconds done) -> progress display


class BenchError(Exception):
    """The bench could not run to its end; one line saying why."""


def _lines(stream: IO[str]) -> queue.Queue[str]:
    """The stream's lines on a queue ('' at the end), read by a daemon thread."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, name="bench-pipe", daemon=True).start()
    return lines


def _tail(log: Path, lines: int = 5) -> str:
    """The driver log's last lines (the folder may be temporary: quote, do not point)."""
    try:
        text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return ("; driver log ends: " + " | ".join(text)) if text else ""


def _message(lines: queue.Queue[str], timeout: float, what: str, log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise BenchError(f"{what}: no answer in {timeout:.0f} s{_tail(log)}") from None
        if not line:
            raise BenchError(f"{what}: the driver ended early{_tail(log)}")
        if line.startswith("{"):
            message = json.loads(line)
            if "error" in message:
                raise BenchError(f"{what}: {message['error']}")
            return message


def _floor(seconds: float) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "rpi_logger.tools.bench.floor", f"{seconds:g}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def _floor_result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise BenchError(f"the idle-floor sampler failed (status {proc.returncode})")
    return json.loads(out)["loop_lag_ms"]


def _wait(seconds: float, what: str, tick: Tick) -> None:
    t0 = time.monotonic()
    while (done := time.monotonic() - t0) < seconds:
        tick(what, done)
        time.sleep(min(0.5, seconds - done))
    tick(what, seconds)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_mode(
    rig: Rig, blocking: bool, seconds: float, work: Path, env_extra: dict[str, str], tick: Tick
) -> dict[str, Any]:
    """The rig for one trial of `seconds` in one mode; its figures."""
    mode = "blocking" if blocking else "non_blocking"
    folder = work / mode
    (folder / "state").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **env_extra, "RPI_LOGGER_BLOCKING_SINKS": "1" if blocking else "0"}
    log_path = folder / "driver.log"
    cmd = [
        sys.executable, "-m", "rpi_logger.tools.bench.driver",
        rig.name, f"{seconds:g}", str(folder / "data"), str(folder / "state"),
    ]  # fmt: skip
    load_before = _load()
    with log_path.open("w") as log:
        driver = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env
        )
        floor = None
        try:
            assert driver.stdout is not None and driver.stdin is not None
            lines = _lines(driver.stdout)
            up = _message(lines, START_TIMEOUT_S, f"{mode}: starting the rig", log_path)
            try:
                first_request_ms = warm_up(up["url"], up.get("token"))
            except OSError as exc:
                raise BenchError(f"{mode}: the HTTP server does not answer: {exc}") from None
            driver.stdin.write("go\n")
            driver.stdin.flush()
            ready = _message(lines, START_TIMEOUT_S, f"{mode}: starting the trial", log_path)
            floor = _floor(seconds)
            poster = NotePoster(ready["ready"], rig.note_interval_s, ready.get("token"))
            poster.start()
            try:
                # Stop posting just before the trial ends: every note lands in the trial.
                _wait(max(0.0, seconds - 0.3), mode.replace("_", "-"), tick)
            finally:
                poster.stop()
            done = _message(lines, STOP_TIMEOUT_S + seconds, f"{mode}: stopping", log_path)
            floor_lag = _floor_result(floor)
            driver.wait(timeout=30)
        finally:
            for proc in (driver, floor):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
    figures = mode_figures(
        Path(done["session"]), done["usage"], poster.round_trips_ms, poster.failures, floor_lag
    )
    return {
        "blocking": blocking,
        "load_avg": {"before": load_before, "after": _load()},
        "session": done["session"],
        "first_request_ms": round(first_request_ms, 1),
        **figures,
    }


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with the measured value and whether it was met."""
    fast = result["modes"].get("non_blocking")
    slow = result["modes"].get("blocking")
    out: dict[str, Any] = {}
    if fast:
        rig = fast["rig"]
        worst_p99 = rig["loop_lag_ms"]["p99"]
        worst_max = rig["loop_lag_ms"]["max"]
        drops = (
            rig["frames_dropped"]
            + rig["samples_dropped"]
            + rig["audio_blocks_dropped"]
            + rig["audio_input_overflows"]
        )
        note_p99 = fast["notes"]["round_trip_ms"]["p99"]
        out["loop_lag_p99_ms<=2"] = {"value": worst_p99, "met": worst_p99 <= 2.0}
        out["loop_lag_max_ms<=20"] = {"value": worst_max, "met": worst_max <= 20.0}
        out["nothing_dropped"] = {"value": drops, "met": drops == 0}
        out["note_p99_ms<=10"] = {
            "value": note_p99,
            "met": note_p99 is not None and note_p99 <= 10.0,
        }
        out["p99_over_floor<=1.5"] = {
            "value": rig["p99_over_floor"],
            "met": rig["p99_over_floor"] <= 1.5,
        }
    if fast and slow:
        ratio = result["ratios"]["rig"]["loop_lag_p99"]
        out["blocking_over_non_blocking_p99>=10"] = {"value": ratio, "met": ratio >= 10}
    return out


def run_bench(
    rig: Rig,
    seconds: float,
    *,
    modes: tuple[str, ...] = tuple(MODES),
    keep: Path | None = None,
    sink_latency: str | None = None,
    tick: Tick = lambda what, done: None,
) -> dict[str, Any]:
    """The idle floor alone, then `rig` for `seconds` in each of `modes`: everything measured."""
    env_extra = {"RPI_LOGGER_SINK_LATENCY_MS": sink_latency} if sink_latency else {}
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="rpi-logger-bench-") as tmp:
        work = keep if keep is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        floor = _floor(seconds)
        try:
            _wait(seconds, "idle floor", tick)
            floor_alone = _floor_result(floor)
        finally:
            if floor.poll() is None:
                floor.kill()
                floor.wait()
        per_mode = {
            mode: run_mode(rig, MODES[mode], seconds, work, env_extra, tick) for mode in modes
        }
        if keep is None:
            for figures in per_mode.values():
                figures["session"] = None  # gone with the temporary folder
    result: dict[str, Any] = {
        "rig": {
            "name": rig.name,
            "description": rig.description,
            "modules": list(rig.modules),
            "overrides": rig.overrides,
            "note_interval_s": rig.note_interval_s,
        },
        "duration_s": seconds,
        "started": started,
        "machine": {
            "node": platform.node(),
            "system": f"{platform.system()} {platform.release()} {platform.machine()}",
            "processor": _cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "rpi_logger": __version__,
            "load_avg": {"before": load_before, "after": _load()},
        },
        "sink_latency": sink_latency,
        "floor_alone": {"loop_lag_ms": floor_alone},
        "modes": per_mode,
    }
    if "non_blocking" in per_mode and "blocking" in per_mode:
        result["ratios"] = ratios(per_mode["non_blocking"], per_mode["blocking"])
    result["targets"] = targets(result)
    return result


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
