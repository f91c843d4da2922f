"""How the Cameras module's cost grows with cameras (a benchmark, not a test).

Records N simulated cameras (default 1, 2 and 4 at 640x480, 30 fps) with `rpi-logger record`
and samples, once a second, the CPU % of the Cameras module process (100 % = one core) and of
the whole machine (100 % = all cores), plus the drops the manifest reports.

    .venv/bin/python bench/bench_cameras.py [--cameras 1,2,4] [--duration 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def _camera_process(master: psutil.Process) -> psutil.Process | None:
    for child in master.children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if " module " in cmd and "cameras" in cmd.lower():
            return child
    return None


def run_one(cameras: int, width: int, height: int, fps: float, duration: float) -> dict:
    with tempfile.TemporaryDirectory() as data:
        cmd = [
            sys.executable,
            "-m",
            "rpi_logger",
            "--log-level",
            "WARNING",
            "record",
            "--modules",
            "cameras",
            "--simulate",
            "--duration",
            str(duration),
            "--data-dir",
            data,
            "--set",
            f"cameras.synthetic_count={cameras}",
            "--set",
            f"cameras.width={width}",
            "--set",
            f"cameras.height={height}",
            "--set",
            f"cameras.fps={fps}",
            "--set",
            "cameras.preview_fps=0",
        ]
        master = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        proc = psutil.Process(master.pid)
        module = None
        while module is None and master.poll() is None:
            module = _camera_process(proc)
            time.sleep(0.05)
        time.sleep(1.5)  # start-up and the trial's lead time are not what we measure
        module_cpu, machine_cpu = [], []
        assert module is not None
        module.cpu_percent(None)
        psutil.cpu_percent(None)
        while master.poll() is None and len(module_cpu) < int(duration) - 2:
            time.sleep(1.0)
            try:
                module_cpu.append(module.cpu_percent(None))
            except psutil.Error:
                break
            machine_cpu.append(psutil.cpu_percent(None))
        out, _ = master.communicate(timeout=120)
        session = Path(out.strip().splitlines()[-1])
        manifest = json.loads((session / "session.json").read_text())
        files = manifest["trials"][0]["files"]
        return {
            "cameras": cameras,
            "size": f"{width}x{height}",
            "fps": fps,
            "module_cpu_percent": round(statistics.mean(module_cpu), 1),
            "machine_cpu_percent": round(statistics.mean(machine_cpu), 1),
            "frames": sum(f["frames"] for f in files),
            "dropped": sum(f["dropped"] for f in files),
            "exit_status": master.returncode,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", default="1,2,4")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [
        run_one(int(n), args.width, args.height, args.fps, args.duration)
        for n in args.cameras.split(",")
    ]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(
        f"{'cameras':>7} {'size':>9} {'module CPU %':>12} {'machine CPU %':>13} "
        f"{'frames':>7} {'dropped':>7}"
    )
    for r in results:
        print(
            f"{r['cameras']:>7} {r['size']:>9} {r['module_cpu_percent']:>12} "
            f"{r['machine_cpu_percent']:>13} {r['frames']:>7} {r['dropped']:>7}"
        )
    print(f"(module CPU: 100 % = one core; machine: 100 % = all {psutil.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
