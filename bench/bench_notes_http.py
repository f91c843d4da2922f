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
import sys
import tempfile

from bench_notes import cli, master_config, report

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


async def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = master_config(args, tmp)
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
    return report(args, "http_round_trip_ms", latencies, lag)


if __name__ == "__main__":
    cli(run, __doc__, notes=500)
