"""Slow storage: does a slow fsync reach any event loop? (docs/performance.md)

    .venv/bin/python bench/bench_slow_storage.py [--fsync-ms 50] [--duration 6] [--json OUT]

Records the same simulated rig twice with `rpi-logger record` (two 640x480 cameras and Notes,
one trial): once on this machine's disk as it is, once with `--fsync-ms` added to every fsync
(and a tenth of it to every flush) through the sink layer's simulated latency
(`RPI_LOGGER_SINK_LATENCY_MS`), as on an SD card. For each process it reports the trial's
loop-lag p99 from the manifest and the ratio slow/normal, and checks that nothing was lost:
every video has one timing row per frame and no drop, and the session verifies.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def record(data: Path, duration: float, latency: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if latency:
        env["RPI_LOGGER_SINK_LATENCY_MS"] = latency
    cmd = [
        sys.executable,
        "-m",
        "rpi_logger",
        "record",
        "--simulate",
        "--modules",
        "cameras,notes",
        "--duration",
        str(duration),
        "--data-dir",
        str(data),
        "--set",
        "cameras.width=640",
        "--set",
        "cameras.height=480",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"record failed ({result.returncode}):\n{result.stderr}")
    session = Path(result.stdout.split()[-1])
    manifest = json.loads((session / "session.json").read_text())
    [trial] = manifest["trials"]
    lost = []
    for entry in trial["files"]:
        if entry["kind"] != "video":
            continue
        with (session / entry["timing"]).open(newline="") as f:
            rows = sum(1 for _ in csv.DictReader(f))
        if rows != entry["frames"] or entry["dropped"]:
            lost.append(
                f"{entry['path']}: {entry['frames']} frames, {rows} rows, "
                f"{entry['dropped']} dropped"
            )
    check = subprocess.run(
        [sys.executable, "-m", "rpi_logger", "verify", str(session)],
        capture_output=True,
        text=True,
        env=env,
    )
    return {
        "loop_lag_p99_ms": {p: h["loop_lag_ms"]["p99"] for p, h in trial["health"].items()},
        "frames": sum(e["frames"] or 0 for e in trial["files"] if e["kind"] == "video"),
        "lost": lost,
        "verify_ok": check.returncode == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fsync-ms", type=float, default=50.0)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    latency = f"flush={args.fsync_ms / 10:g},fsync={args.fsync_ms:g}"
    with tempfile.TemporaryDirectory() as tmp:
        normal = record(Path(tmp) / "normal", args.duration, None)
        slow = record(Path(tmp) / "slow", args.duration, latency)
    ratios = {
        p: round(slow["loop_lag_p99_ms"][p] / max(normal["loop_lag_p99_ms"][p], 1.0), 2)
        for p in normal["loop_lag_p99_ms"]
    }
    result = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["bench/bench_slow_storage.py", *sys.argv[1:]]),
        "latency": latency,
        "normal": normal,
        "slow": slow,
        # Against a floor of 1 ms: sub-millisecond p99s make ratios of noise.
        "p99_ratio_slow_to_normal": ratios,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
