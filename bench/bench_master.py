"""How the master's loop copes with a long session (a benchmark, not a test).

Records one session of many short trials (default 150 of 0.2 s) with one simulated 640x480
camera and Notes (a note per trial), in this process, and reports from the manifest:

* the master's loop-lag max per trial (`trials[i].health.master.loop_lag_ms.max`) over the
  first and the last 20 trials: work that grows with the session (a manifest save that
  serializes every finished trial on the loop) shows up as a max that climbs;
* the gap between trials (one trial's stop to the next one's start on the host clock: the
  stop's grace and file closing, plus the start's lead time).

    .venv/bin/python bench/bench_master.py [--trials 150] [--duration 0.2] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from rpi_logger.core.master import Master, MasterConfig
from rpi_logger.framework.trial import sleep_until


async def _note(master: Master, text: str) -> None:
    await master.request("Notes", "add_note", {"text": text})


async def run(trials: int, duration_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data:
        config = MasterConfig(
            data_dir=Path(data),
            simulate=True,
            state_path=Path(data) / "state.json",
            log_level="WARNING",
            overrides={
                "Cameras": {"synthetic_count": 1, "width": 640, "height": 480, "preview_fps": 0}
            },
        )
        lead_ns = config.lead_time_ms * 1_000_000
        async with Master(config) as master:
            errors = await master.start_modules(["Cameras", "Notes"])
            if any(errors.values()):
                raise SystemExit(f"modules did not start: {errors}")
            session = await master.start_session("bench")
            t0 = time.monotonic()
            for n in range(trials):
                trial = await master.start_trial()
                stop_ns = trial["start"]["mono_ns"] + round(duration_s * 1e9)
                await _note(master, f"trial {n + 1}")
                await sleep_until(stop_ns - lead_ns)
                await master.stop_trial(at_mono_ns=stop_ns)
            elapsed = time.monotonic() - t0
            await master.end_session()
            manifest = json.loads((session.directory / "session.json").read_text())
    done = manifest["trials"]
    lags = [t["health"]["master"]["loop_lag_ms"]["max"] for t in done]
    gaps = [(b["start"]["mono_ns"] - a["stop"]["mono_ns"]) / 1e6 for a, b in pairwise(done)]
    window = min(20, len(done))
    return {
        "trials": len(done),
        "complete": sum(t["status"] == "complete" for t in done),
        "seconds": round(elapsed, 1),
        "lag_max_ms_first": _stats(lags[:window]),
        "lag_max_ms_last": _stats(lags[-window:]),
        "gap_ms_first": _stats(gaps[: window - 1]),
        "gap_ms_last": _stats(gaps[-(window - 1) :]),
        "manifest_kb": round(len(json.dumps(manifest, indent=2)) / 1e3, 1),
    }


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--duration", type=float, default=0.2, help="seconds per trial")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    result = asyncio.run(run(args.trials, args.duration))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{result['trials']} trials ({result['complete']} complete) in {result['seconds']} s; "
        f"manifest {result['manifest_kb']} kB"
    )
    for key, what in (
        ("lag_max_ms", "master loop-lag max per trial (ms)"),
        ("gap_ms", "gap between trials (ms)"),
    ):
        first, last = result[f"{key}_first"], result[f"{key}_last"]
        print(
            f"{what:<38} first 20: median {first['median']:>6.2f} max {first['max']:>6.2f}"
            f"   last 20: median {last['median']:>6.2f} max {last['max']:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
