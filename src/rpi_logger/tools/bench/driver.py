"""One bench run of a rig: the real master, its HTTP server and module processes, one trial.

    python -m rpi_logger.tools.bench.driver RIG SECONDS DATA_DIR STATE_DIR

Started by the runner once per mode (blocking mode is the environment it is given, which the
module processes inherit). Speaks JSON lines on stdout: `{"url": URL}` once the session runs
(then it waits for a line on stdin: the runner's go, after its warm-up request), `{"ready":
URL}` once the trial records (the runner then posts notes and samples the floor), and at the
end `{"session": PATH, "usage": {...}}` or `{"error": ...}`. CPU and peak memory are measured
here, from outside the processes, over the trial: CPU time used / wall time, and the kernel's
high-water RSS (VmHWM).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from rpi_logger.core.master import MasterConfig, MasterError
from rpi_logger.tools.bench.rigs import RIGS, Rig
from rpi_logger.web.server import serving

#: Seconds between the session start and the trial: sources open, encoders warm.
SETTLE_S = 1.0


def _say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds each process has used so far (blocking: reads /proc)."""
    out = {}
    for name, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        out[name] = times.user + times.system
    return out


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory in MB (Linux VmHWM; else the current RSS)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) * 1024 / 1e6, 1)
    except OSError:
        pass
    try:
        return round(psutil.Process(pid).memory_info().rss / 1e6, 1)
    except psutil.Error:
        return None


def _usage(pids: dict[str, int], before: dict[str, float], wall_s: float) -> dict[str, Any]:
    after = cpu_seconds(pids)
    return {
        name: {
            "cpu_percent": round(100.0 * (after[name] - before[name]) / wall_s, 1)
            if name in after and name in before
            else None,
            "peak_rss_mb": peak_rss_mb(pid),
        }
        for name, pid in pids.items()
    }


async def drive(rig: Rig, seconds: float, data_dir: Path, state_dir: Path) -> dict[str, Any]:
    """Run the rig for one trial of `seconds`; the final message (session and usage)."""
    config = MasterConfig(
        data_dir=data_dir,
        simulate=True,
        state_path=state_dir / "state.json",
        log_level="WARNING",
        overrides={name: dict(values) for name, values in rig.overrides.items()},
    )
    async with serving(config, "127.0.0.1", 0, start_modules=False) as served:
        master = served.master
        errors = await master.start_modules(list(rig.modules))
        failed = {name: error for name, error in errors.items() if error}
        if failed:
            return {"error": f"modules did not start: {failed}"}
        await master.start_session("bench")
        pids = {"master": os.getpid()}
        pids.update({n: e.proc.pid for n, e in master.modules.items() if e.proc and e.proc.pid})
        _say({"url": served.url, "token": served.token})
        # The runner warms the HTTP server up (its first request pays a lazy set-up on this
        # loop) and says go; meanwhile sources open and encoders warm.
        await asyncio.gather(asyncio.to_thread(sys.stdin.readline), asyncio.sleep(SETTLE_S))
        await master.start_trial()
        before = await asyncio.to_thread(cpu_seconds, pids)
        t0 = time.monotonic()
        _say({"ready": served.url, "token": served.token})
        await asyncio.sleep(seconds)
        wall = time.monotonic() - t0
        usage = await asyncio.to_thread(_usage, pids, before, wall)
        await master.stop_trial()
        status = {n: e.last_status for n, e in master.modules.items()}
        session = await master.end_session()
        return {"session": str(session.directory), "usage": usage, "status": status}


def main() -> None:
    rig_name, seconds, data_dir, state_dir = sys.argv[1:5]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        result = asyncio.run(drive(RIGS[rig_name], float(seconds), Path(data_dir), Path(state_dir)))
    except (MasterError, OSError) as exc:
        result = {"error": str(exc)}
    _say(result)


if __name__ == "__main__":
    main()
