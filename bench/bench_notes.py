"""Note round trip while cameras record: add_note -> Notes module -> fsynced -> reply.

    .venv/bin/python bench/bench_notes.py [--cameras 2] [--width 1280] [--height 720]
                                          [--notes 400] [--interval 0.02] [--json OUT]

Starts a real master with simulated cameras and Notes, starts a trial, then adds notes one at a
time (`--interval` apart) and reports the round-trip latency p50/p99/max in ms, with the
master's loop lag during the run. The figures depend on the machine and its load: compare runs
made one after the other on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from rpi_logger.core.master import Master, MasterConfig


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def master_config(args: argparse.Namespace, tmp: str) -> MasterConfig:
    """A simulated master with `args.cameras` cameras of the asked size, in `tmp`."""
    return MasterConfig(
        data_dir=Path(tmp),
        simulate=True,
        state_path=Path(tmp) / "state.json",
        overrides={
            "Cameras": {"synthetic_count": args.cameras, "width": args.width, "height": args.height}
        },
    )


def report(args: argparse.Namespace, key: str, latencies: list[float], lag: dict) -> dict:
    """The figures of a run: the machine, the command, round-trip p50/p99/max, the loop lag."""
    return {
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([sys.argv[0], *sys.argv[1:]]),
        "cameras": f"{args.cameras} x {args.width}x{args.height} @ 30 fps (simulated)",
        "notes": len(latencies),
        key: {
            "p50": round(statistics.median(latencies), 2),
            "p99": round(percentile(latencies, 99), 2),
            "max": round(max(latencies), 2),
        },
        "master_loop_lag_ms": lag,
    }


def cli(run: Callable[[argparse.Namespace], Awaitable[dict]], doc: str, notes: int) -> None:
    """Parse the common options, run, print the figures (and write them with --json)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--notes", type=int, default=notes)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


async def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = master_config(args, tmp)
        async with Master(config) as master:
            modules = ["Notes"] + (["Cameras"] if args.cameras else [])
            errors = await master.start_modules(modules)
            if any(errors.values()):
                raise SystemExit(f"modules did not start: {errors}")
            await master.start_session("bench_notes")
            await master.start_trial()
            await asyncio.sleep(1.0)  # cameras and encoders at full speed
            latencies = []
            for i in range(args.notes):
                t0 = time.perf_counter()
                await master.request(
                    "Notes", "add_note", {"text": f"note {i}", "modules": master.recording()}
                )
                latencies.append((time.perf_counter() - t0) * 1e3)
                await asyncio.sleep(args.interval)
            lag = master.monitor.snapshot()
            await master.stop_trial()
            await master.end_session()
    return report(args, "round_trip_ms", latencies, lag)


if __name__ == "__main__":
    cli(run, __doc__, notes=400)
