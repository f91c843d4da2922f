"""A mode's figures from what the run left: the manifest (per-trial loop lag of every process,
frames and samples per file), the driver's CPU and memory, the note round trips, the floor."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["mode_figures", "percentiles", "ratios"]


def percentiles(values: list[float]) -> dict[str, Any]:
    """p50/p99 (nearest rank) and max of `values` in ms, with their count."""
    if not values:
        return {"p50": None, "p99": None, "max": None, "count": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {
        "p50": round(rank(0.50), 2),
        "p99": round(rank(0.99), 2),
        "max": round(ordered[-1], 2),
        "count": len(ordered),
    }


def _stream(entry: dict[str, Any]) -> dict[str, Any]:
    """One file's counts: captured = written + dropped (frames, rows or audio blocks)."""
    written = entry.get("frames") or 0
    dropped = entry.get("dropped") or 0
    out = {
        "module": entry["module"],
        "stream": f"{entry.get('device')}/{entry.get('stream') or entry['kind']}",
        "kind": entry["kind"],
        "captured": written + dropped,
        "written": written,
        "dropped": dropped,
        "dropped_by_cause": {k: v for k, v in (entry.get("dropped_by_cause") or {}).items() if v},
    }
    if entry["kind"] == "audio":
        out["input_overflows"] = entry.get("input_overflows", 0)
    return out


def mode_figures(
    session: Path,
    usage: dict[str, Any],
    notes_ms: list[float],
    note_failures: list[str],
    floor: dict[str, Any],
) -> dict[str, Any]:
    """Everything measured in one mode (see docs/performance.md for each figure)."""
    manifest = json.loads((session / "session.json").read_text())
    [trial] = manifest["trials"]
    floor_p99 = floor["p99"] or 0.0
    processes: dict[str, Any] = {}
    for name, health in trial["health"].items():
        lag = health["loop_lag_ms"]
        use = usage.get(name, {})
        processes[name] = {
            "loop_lag_ms": lag,
            "cpu_percent": use.get("cpu_percent"),
            "peak_rss_mb": use.get("peak_rss_mb"),
            # Against a floor of at least 0.1 ms: a sub-timer floor makes ratios of noise.
            "p99_over_floor": round(lag["p99"] / max(floor_p99, 0.1), 2),
        }
    streams = [_stream(e) for e in trial["files"] if e.get("module") != "Notes"]
    lags = [p["loop_lag_ms"] for p in processes.values()]
    cpu = [p["cpu_percent"] for p in processes.values() if p["cpu_percent"] is not None]
    rss = [p["peak_rss_mb"] for p in processes.values() if p["peak_rss_mb"] is not None]
    return {
        "trial_status": trial["status"],
        "processes": processes,
        "rig": {
            # The rig is as responsive as its worst process.
            "loop_lag_ms": {key: max(lag[key] for lag in lags) for key in ("p50", "p99", "max")},
            "cpu_percent": round(sum(cpu), 1),
            "peak_rss_mb": round(sum(rss), 1),
            "p99_over_floor": max(p["p99_over_floor"] for p in processes.values()),
            "frames_dropped": sum(s["dropped"] for s in streams if s["kind"] == "video"),
            "samples_dropped": sum(s["dropped"] for s in streams if s["kind"] == "csv"),
            "audio_blocks_dropped": sum(s["dropped"] for s in streams if s["kind"] == "audio"),
            "audio_input_overflows": sum(s.get("input_overflows", 0) for s in streams),
        },
        "streams": streams,
        "notes": {
            "posted": len(notes_ms) + len(note_failures),
            "failed": len(note_failures),
            "failures": note_failures[:5],
            "round_trip_ms": percentiles(notes_ms),
            "round_trips_ms": [round(ms, 2) for ms in notes_ms],  # in posting order
        },
        "floor_during": {"loop_lag_ms": floor},
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return round(a / max(b, 0.1), 1)  # a floor of 0.1 ms: see p99_over_floor


def ratios(fast: dict[str, Any], slow: dict[str, Any]) -> dict[str, Any]:
    """Blocking / non-blocking: loop lag p99 and max per process and for the rig; note p99."""
    per_process = {
        name: {
            "loop_lag_p99": _ratio(
                slow["processes"][name]["loop_lag_ms"]["p99"], p["loop_lag_ms"]["p99"]
            ),
            "loop_lag_max": _ratio(
                slow["processes"][name]["loop_lag_ms"]["max"], p["loop_lag_ms"]["max"]
            ),
        }
        for name, p in fast["processes"].items()
        if name in slow["processes"]
    }
    return {
        "rig": {
            "loop_lag_p99": _ratio(
                slow["rig"]["loop_lag_ms"]["p99"], fast["rig"]["loop_lag_ms"]["p99"]
            ),
            "loop_lag_max": _ratio(
                slow["rig"]["loop_lag_ms"]["max"], fast["rig"]["loop_lag_ms"]["max"]
            ),
            "note_p99": _ratio(
                slow["notes"]["round_trip_ms"]["p99"], fast["notes"]["round_trip_ms"]["p99"]
            ),
        },
        "processes": per_process,
    }
