"""Micro-benchmark of CsvStreamWriter (not a test).

(a) Cost on the event loop of one `write_row` call (median and p99 ns per call, timer overhead
    subtracted), with the writer thread running, for rows shaped like video timing rows.
(b) Rows per second the writer sustains to disk: a thread enqueues N rows as fast as it can with
    the block policy; the time runs until `close()` (drain, flush, fsync, join) returns. Meanwhile
    the main thread runs an event loop with a LoopLagMonitor, showing what the writer thread
    (GIL included) costs a loop in the same process.

    .venv/bin/python bench/bench_csv_writer.py [--rows N] [--calls N] [--dir D] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rpi_logger.io.csv_writer import CsvStreamWriter
from rpi_logger.io.loop_monitor import LoopLagMonitor

COLUMNS = ["frame_index", "t_mono_ns", "t_wall_unix", "t_device_ns", "exposure_ms", "gain"]


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
        dropped = w.rows_dropped
        rows = [video_row(i) for i in range(calls)]
        t0 = pc()
        for r in rows:  # amortized: no per-call timer at all
            w.write_row(r)
        amortized = (pc() - t0) / calls
    per_call.sort()
    return {
        "calls": calls,
        "median_ns": max(0.0, per_call[len(per_call) // 2] - overhead),
        "p99_ns": max(0.0, per_call[int(len(per_call) * 0.99)] - overhead),
        "max_ns": float(per_call[-1]),
        "amortized_ns": amortized,
        "timer_overhead_ns": overhead,
        "dropped": dropped,
    }


def throughput(folder: Path, n_rows: int) -> dict[str, float]:
    """Rows/s to disk with the block policy, plus loop lag in the same process meanwhile."""
    path = folder / "throughput.csv"
    rows = [video_row(i) for i in range(n_rows)]  # prepared first: measure the writer only
    result: dict[str, float] = {}
    done = threading.Event()

    def produce() -> None:
        w = CsvStreamWriter(path, COLUMNS, overflow="block", append=False)
        w.start()
        t0 = time.perf_counter()
        for r in rows:
            w.write_row(r)
        t_enq = time.perf_counter()
        w.close(timeout=None)
        t1 = time.perf_counter()
        result.update(
            rows=n_rows,
            seconds=t1 - t0,
            enqueue_seconds=t_enq - t0,
            rows_per_s=n_rows / (t1 - t0),
            mb_per_s=path.stat().st_size / (t1 - t0) / 1e6,
            file_mb=path.stat().st_size / 1e6,
            dropped=w.rows_dropped,
            flushes=w.flushes,
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

    lag = asyncio.run(watch_loop())
    result["loop_lag_ms"] = lag  # type: ignore[assignment]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows for the throughput run")
    ap.add_argument("--calls", type=int, default=200_000, help="write_row calls timed on the loop")
    ap.add_argument("--dir", type=Path, default=None, help="folder for the files (default: temp)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        cost = asyncio.run(enqueue_cost(folder, args.calls))
        tput = throughput(folder, args.rows)

    out = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "enqueue_on_loop": cost,
        "throughput": tput,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    lag = tput["loop_lag_ms"]
    print(f"Python {out['python']} on {out['machine']}")
    print(
        f"(a) write_row on the loop: median {cost['median_ns']:.0f} ns, "
        f"p99 {cost['p99_ns']:.0f} ns per call (max {cost['max_ns'] / 1000:.0f} µs; "
        f"amortized {cost['amortized_ns']:.0f} ns; timer overhead {cost['timer_overhead_ns']:.0f}"
        f" ns subtracted; {cost['calls']} calls)"
    )
    print(
        f"(b) sustained to disk: {tput['rows_per_s']:,.0f} rows/s "
        f"({tput['rows']:,} rows, {tput['file_mb']:.1f} MB in {tput['seconds']:.2f} s until "
        f"close() returned; {tput['mb_per_s']:.1f} MB/s; dropped {tput['dropped']})"
    )
    print(
        f"    loop lag in the same process meanwhile: p50 {lag['p50']:.2f} ms, "
        f"p99 {lag['p99']:.2f} ms, max {lag['max']:.2f} ms ({lag['samples']} samples)"
    )


if __name__ == "__main__":
    main()
