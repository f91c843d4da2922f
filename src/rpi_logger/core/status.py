"""The master's status at a glance: session, trial, modules and the machine, as JSON data.

`StatusProbe.snapshot(master)` is what the UI shows and the API returns. Figures that touch the
file system or /proc (CPU, memory, temperature, free space) are read together on one worker
thread; the rest comes from what the master already holds. The data rate is the fall of free
space over time (smoothed), so the time left covers everything being written.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from rpi_logger.core.master import Master

THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
RATE_SMOOTHING = 0.3  # weight of the newest rate reading


def _temperature_c() -> float | None:
    try:
        return round(int(THERMAL.read_text().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None


def _machine(process: psutil.Process, where: Path) -> dict[str, Any]:
    """Blocking reads (/proc, /sys, statvfs): run on a worker thread."""
    from rpi_logger.core.master import free_mb

    try:
        free = free_mb(where)
    except OSError:
        free = None
    return {
        "cpu_percent": psutil.cpu_percent(None),
        "master_cpu_percent": process.cpu_percent(None),
        "memory_percent": psutil.virtual_memory().percent,
        "master_rss_mb": round(process.memory_info().rss / 1e6, 1),
        "temperature_c": _temperature_c(),
        "disk_free_mb": None if free is None else round(free, 1),
    }


def _drops(data: dict[str, Any]) -> dict[str, int]:
    """Every `dropped*` counter of a module's status (nested device lists included), summed by
    cause: the cause is the key without its `dropped_` prefix and `_total` suffix."""
    out: dict[str, int] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k.startswith("dropped") and isinstance(v, int) and not isinstance(v, bool):
                    cause = k.removeprefix("dropped").strip("_").removesuffix("_total") or "total"
                    out[cause] = out.get(cause, 0) + v
                else:
                    walk(v)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(data)
    return out


def _summary(data: dict[str, Any]) -> list[str]:
    """A module's own lines for its card (the DRT's hit rate, the goggles' lens...), bounded."""
    lines = data.get("summary")
    if not isinstance(lines, list):
        return []
    return [str(line)[:160] for line in lines[:8]]


def _rates(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per device: its id and fps or sample rate, from a module's status."""
    rows = []
    for key in ("cameras", "devices", "streams"):
        for dev in data.get(key) or []:
            if isinstance(dev, dict):
                rate = dev.get("fps", dev.get("sample_rate", dev.get("rate_hz")))
                if rate is None:  # a device without a rate (a DRT box): nothing to show
                    continue
                rows.append({"id": str(dev.get("id", dev.get("name", "?"))), "rate": rate})
    return rows


class StatusProbe:
    """Keeps the previous free-space reading to derive the data rate."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._last: tuple[float, float] | None = None  # (monotonic s, free MB)
        self.rate_mb_s: float | None = None

    async def snapshot(self, master: Master) -> dict[str, Any]:
        session = master.session
        where = session.directory if session else master.config.data_dir
        machine = await asyncio.to_thread(_machine, self._process, where)
        self._update_rate(machine["disk_free_mb"], recording=bool(session and session.current))
        free = machine["disk_free_mb"]
        left = None
        if free is not None and self.rate_mb_s and self.rate_mb_s > 0.01:
            left = max(0.0, (free - master.config.min_free_mb) / self.rate_mb_s)
        trial = session.current if session else None
        return {
            "session": None
            if session is None
            else {
                "id": session.directory.name,
                "label": session.manifest.label,
                "simulated": session.manifest.simulated,
                "trials": len(session.trials),
                "started_mono_ns": session.started.t_mono_ns,
            },
            "trial": None
            if trial is None
            else {
                "number": trial.number,
                "label": trial.label,
                "start_mono_ns": trial.start.t_mono_ns,
                "elapsed_s": max(0.0, (time.monotonic_ns() - trial.start.t_mono_ns) / 1e9),
            },
            "now_mono_ns": time.monotonic_ns(),
            "halted": master.halt_reason,
            "simulate": master.config.simulate,
            "modules": [self.module_json(e) for e in master.modules.values()],
            "loop_lag_ms": master.monitor.snapshot(),
            **machine,
            "min_free_mb": master.config.min_free_mb,
            "data_rate_mb_s": None if self.rate_mb_s is None else round(self.rate_mb_s, 3),
            "time_left_s": None if left is None else round(left),
        }

    def _update_rate(self, free: float | None, recording: bool) -> None:
        now = time.monotonic()
        if free is None or not recording:
            self._last = None if free is None else (now, free)
            if not recording:
                self.rate_mb_s = None
            return
        if self._last is not None and now > self._last[0]:
            rate = max(0.0, (self._last[1] - free) / (now - self._last[0]))
            prev = self.rate_mb_s
            self.rate_mb_s = rate if prev is None else prev + RATE_SMOOTHING * (rate - prev)
        self._last = (now, free)

    @staticmethod
    def module_json(entry: Any) -> dict[str, Any]:
        """One module's card: state, simulated or not, devices, rates, drops, lag, levels."""
        data = entry.last_status or {}
        return {
            "name": entry.name,
            "status": entry.status,
            "error": entry.error,
            "state": data.get("state"),
            "simulated": bool(data.get("simulated"))
            or any(isinstance(d, dict) and d.get("simulated") for d in entry.devices),
            "devices": list(entry.devices),
            "rates": _rates(data),
            "drops": _drops(data),
            "loop_lag_ms": data.get("loop_lag_ms"),
            "levels": data.get("levels"),
            "summary": _summary(data),
            "restarts": entry.restarts,
        }
