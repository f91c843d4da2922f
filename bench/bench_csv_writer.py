"""Micro-benchmark of the CSV path (CsvStreamWriter = SinkWriter + CsvSink), not a test.

Each figure is taken with the writer thread (normal) and in blocking mode (the sink called
inline on the caller's thread, as naive code does; `rpi_logger.io.sinks.set_blocking`):

(a) Cost on the event loop of one `write_row` call (median and p99 ns per call, timer overhead
    subtracted), for rows shaped like video timing rows.
(b) Rows per second sustained to disk: a thread enqueues N rows as fast as it can with the block
    policy; the time runs until `close()` (drain, flush, fsync, join) returns. Meanwhile the
    main thread runs an event loop with a LoopLagMonitor: what the writer costs a loop in the
    same process (the GIL included).
(c) Loop lag while the loop itself records like a camera module: 30 timing rows per second and
    a `sync()` (a note) every half second, for `--seconds`. `--latency flush=5,fsync=50` slows
    every flush and fsync like an SD card; blocking mode then stalls the loop, the writer
    thread does not.

    .venv/bin/python bench/bench_csv_writer.py [--rows N] [--calls N] [--seconds S]
        [--latency flush=MS,fsync=MS] [--dir D] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rpi_logger.io import sinks
from rpi_logger.io.csv_writer import CsvStreamWriter
from rpi_logger.io.loop_monitor import LoopLagMonitor
from rpi_logger.io.sinks.base import _latency_from_env

COLUMNS = ["frame_index", "t_mono_ns", "t_wall_unix", "t_device_ns", "exposure_ms", "gain"]
MODES = ("thread", "blocking")


def video_row(i: int) -> tuple[Any, ...]:
    t = time.monotonic_ns()
    return (i, t, time.time(), t - 123_456, 8.333 + (i % 7) * 0.001, 1.0 + (i % 5) / 3)


def timer_overhead_ns(n: int = 100_000) -> float:
    pc = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t0 = pc()
        t1 = pc()
        samples.append(t1 - t0)
    return statistics.median(samples)


async def enqueue_cost(folder: Path, calls: int) -> dict[str, float]:
    """Per-call cost of write_row on a running event loop."""
    overhead = timer_overhead_ns()
    pc = time.perf_counter_ns
    per_call: list[int] = []
    # A queue that never fills: this measures the enqueue itself, not the drop path.
    async with CsvStreamWriter(folder / "enqueue.csv", COLUMNS, max_queue=2 * calls + 1) as w:
        for i in range(calls):
            row = video_row(i)
            t0 = pc()
            w.write_row(row)
            t1 = pc()
            per_call.append(t1 - t0)
            if i % 1000 == 999:
                await asyncio.sleep(0)  # behave like a loop: let other callbacks run
        dropped = w.stats().dropped
    per_call.sort()
    return {
        "calls": calls,
        "median_ns": max(0.0, per_call[len(per_call) // 2] - overhead),
        "p99_ns": max(0.0, per_call[int(len(per_call) * 0.99)] - overhead),
        "max_ns": float(per_call[-1]),
        "timer_overhead_ns": overhead,
        "dropped": dropped,
    }


def throughput(folder: Path, n_rows: int) -> dict[str, Any]:
    """Rows/s to disk with the block policy, plus loop lag in the same process meanwhile."""
    path = folder / "throughput.csv"
    rows = [video_row(i) for i in range(n_rows)]  # prepared first: measure the writer only
    result: dict[str, Any] = {}
    done = threading.Event()

    def produce() -> None:
        w = CsvStreamWriter(path, COLUMNS, overflow="block", append=False)
        w.start()
        t0 = time.perf_counter()
        for r in rows:
            w.write_row(r)
        stats = w.close(timeout=None)
        seconds = time.perf_counter() - t0
        size = path.stat().st_size
        result.update(
            rows=n_rows,
            seconds=seconds,
            rows_per_s=n_rows / seconds,
            mb_per_s=size / seconds / 1e6,
            file_mb=size / 1e6,
            dropped=stats.dropped,
            flushes=stats.flushes,
        )
        done.set()

    async def watch_loop() -> dict[str, Any]:
        mon = LoopLagMonitor()
        async with asyncio.TaskGroup() as tg:
            task = mon.start_in(tg)
            producer = threading.Thread(target=produce)
            producer.start()
            await asyncio.to_thread(done.wait)
            task.cancel()
        await asyncio.to_thread(producer.join)
        return mon.snapshot()

    result["loop_lag_ms"] = asyncio.run(watch_loop())
    return result


async def recording_loop(folder: Path, seconds: float) -> dict[str, Any]:
    """Loop lag while the loop writes 30 rows/s and syncs every 0.5 s (a camera plus notes)."""
    mon = LoopLagMonitor()
    async with asyncio.TaskGroup() as tg:
        task = mon.start_in(tg)
        async with CsvStreamWriter(folder / "recording.csv", COLUMNS) as w:
            i, t0 = 0, time.monotonic()
            while time.monotonic() - t0 < seconds:
                for _ in range(15):
                    w.write_row(video_row(i))
                    i += 1
                    await asyncio.sleep(1 / 30)
                await w.sync()
        task.cancel()
    return {"rows": i, **mon.snapshot()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows for the throughput run")
    ap.add_argument("--calls", type=int, default=200_000, help="write_row calls timed on the loop")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the recording run (c)")
    ap.add_argument("--latency", default="", help='simulated storage, e.g. "flush=5,fsync=50" ms')
    ap.add_argument("--dir", type=Path, default=None, help="folder for the files (default: temp)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "latency": args.latency or None,
    }
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for mode in MODES:
            sinks.set_blocking(mode == "blocking")
            folder = Path(tmp) / mode
            folder.mkdir()
            sinks.set_latency()  # (a), (b): the disk as it is
            cost = asyncio.run(enqueue_cost(folder, args.calls))
            tput = throughput(folder, args.rows)
            _latency_from_env(args.latency)
            rec = asyncio.run(recording_loop(folder, args.seconds))
            out[mode] = {"enqueue_on_loop": cost, "throughput": tput, "recording": rec}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"Python {out['python']} on {out['machine']} ({out['cpus']} CPUs)")
    for mode in MODES:
        cost, tput, rec = (out[mode][k] for k in ("enqueue_on_loop", "throughput", "recording"))
        lag = tput["loop_lag_ms"]
        print(f"[{mode}]")
        print(
            f"  (a) write_row on the loop: median {cost['median_ns']:.0f} ns, p99 "
            f"{cost['p99_ns']:.0f} ns per call (max {cost['max_ns'] / 1000:.0f} µs; "
            f"{cost['calls']} calls)"
        )
        print(
            f"  (b) sustained to disk: {tput['rows_per_s']:,.0f} rows/s ({tput['rows']:,} rows, "
            f"{tput['file_mb']:.1f} MB in {tput['seconds']:.2f} s until close() returned; "
            f"dropped {tput['dropped']}); loop lag meanwhile p50 {lag['p50']:.2f} ms, "
            f"p99 {lag['p99']:.2f} ms, max {lag['max']:.2f} ms"
        )
        print(
            f"  (c) loop recording 30 rows/s + sync every 0.5 s"
            f"{' with ' + args.latency if args.latency else ''}: loop lag p50 "
            f"{rec['p50']:.2f} ms, p99 {rec['p99']:.2f} ms, max {rec['max']:.2f} ms"
        )


if __name__ == "__main__":
    main()
