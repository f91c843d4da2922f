"""Note latency through HTTP while cameras record: POST /api/v1/notes -> fsynced -> response.

    .venv/bin/python bench/bench_notes_http.py [--cameras 2] [--width 1280] [--height 720]
                                               [--notes 500] [--interval 0.02] [--json OUT]

Starts `rpi-logger serve`'s master and web server in this process (simulated cameras and Notes),
starts a trial, then a separate client process (one keep-alive HTTP connection, as a phone's
browser or `rpi-logger note` would use) posts notes one at a time and times each round trip:
request sent -> the Notes module wrote and fsynced the row -> response read. Reports p50/p99/max
in ms and the master's loop lag over the run. Figures depend on the machine and its load.
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
from pathlib import Path

from rpi_logger.core.master import MasterConfig
from rpi_logger.web.server import serving

CLIENT = r"""
import http.client, json, sys, time
host, port, n, interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
conn = http.client.HTTPConnection(host, port, timeout=30)
out = []
for i in range(n):
    body = json.dumps({"text": f"note {i}"})
    t0 = time.perf_counter()
    conn.request("POST", "/api/v1/notes", body, {"Content-Type": "application/json"})
    reply = conn.getresponse()
    data = reply.read()
    out.append((time.perf_counter() - t0) * 1e3)
    if reply.status != 200:
        sys.exit(f"note {i}: {reply.status} {data!r}")
    time.sleep(interval)
print(json.dumps(out))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = MasterConfig(
            data_dir=Path(tmp),
            simulate=True,
            state_path=Path(tmp) / "state.json",
            overrides={
                "Cameras": {
                    "synthetic_count": args.cameras,
                    "width": args.width,
                    "height": args.height,
                }
            },
        )
        async with serving(config, "127.0.0.1", 0, start_modules=False) as served:
            master = served.master
            modules = ["Notes"] + (["Cameras"] if args.cameras else [])
            errors = await master.start_modules(modules)
            if any(errors.values()):
                raise SystemExit(f"modules did not start: {errors}")
            await master.start_session("bench_notes_http")
            await master.start_trial()
            await asyncio.sleep(1.0)  # cameras and encoders at full speed
            host, port = served.url.removeprefix("http://").rsplit(":", 1)
            client = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CLIENT, host, port, str(args.notes), str(args.interval),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await client.communicate()
            if client.returncode != 0:
                raise SystemExit("the client failed")
            latencies = json.loads(out)
            lag = master.monitor.snapshot()
            await master.stop_trial()
            await master.end_session()
    return {
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["bench/bench_notes_http.py", *sys.argv[1:]]),
        "cameras": f"{args.cameras} x {args.width}x{args.height} @ 30 fps (simulated)",
        "notes": len(latencies),
        "http_round_trip_ms": {
            "p50": round(statistics.median(latencies), 2),
            "p99": round(percentile(latencies, 99), 2),
            "max": round(max(latencies), 2),
        },
        "master_loop_lag_ms": lag,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--notes", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
