"""The bench's result as a plain-text table (the README's "Performance" table is this)."""

from __future__ import annotations

from typing import Any

__all__ = ["format_table"]


def _lag(lag: dict[str, Any] | None) -> str:
    if not lag or lag.get("p99") is None:
        return "-"
    return f"{lag['p50']:.1f} / {lag['p99']:.1f} / {lag['max']:.1f}"


def _num(value: Any, fmt: str = "{:.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _rows(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return [line, rule, *body]


def format_table(result: dict[str, Any]) -> str:
    """Processes (loop lag, CPU, memory), streams, notes, the floor, ratios and targets."""
    modes = result["modes"]
    names = list(modes)
    shown = {mode: mode.replace("_", "-") for mode in names}
    m = result["machine"]
    out = [
        f"rig {result['rig']['name']}: {result['rig']['description']}",
        f"{result['duration_s']:g} s per mode; {m['cores']} cores ({m['processor']}), "
        f"{m['system']}; load average {m['load_avg']['before']} before, "
        f"{m['load_avg']['after']} after",
        "",
    ]
    processes = list(next(iter(modes.values()))["processes"]) if modes else []
    header = ["process"]
    for mode in names:
        header += [f"{shown[mode]} lag p50/p99/max ms", "CPU %", "peak RSS MB", "p99/floor"]
    rows = []
    for name in [*processes, "rig"]:
        row = [name]
        for mode in names:
            p = modes[mode]["rig"] if name == "rig" else modes[mode]["processes"].get(name, {})
            row += [
                _lag(p.get("loop_lag_ms")),
                _num(p.get("cpu_percent")),
                _num(p.get("peak_rss_mb")),
                _num(p.get("p99_over_floor"), "{:.1f}x"),
            ]
        rows.append(row)
    floor_row = ["idle floor"]
    for mode in names:
        floor_row += [_lag(modes[mode]["floor_during"]["loop_lag_ms"]), "", "", ""]
    rows.append(floor_row)
    out += _rows(header, rows)
    out.append(
        f"idle floor alone (before the rig): {_lag(result['floor_alone']['loop_lag_ms'])} ms"
    )
    out.append("")
    header = ["stream"] + [f"{shown[mode]} captured/written/dropped" for mode in names]
    streams = (
        {f"{s['module']} {s['stream']}": s for s in next(iter(modes.values()))["streams"]}
        if modes
        else {}
    )
    rows = []
    for key in streams:
        row = [key]
        for mode in names:
            s = next(
                (x for x in modes[mode]["streams"] if f"{x['module']} {x['stream']}" == key), None
            )
            cell = "-" if s is None else f"{s['captured']} / {s['written']} / {s['dropped']}"
            if s is not None and s.get("input_overflows"):
                cell += f" ({s['input_overflows']} input overflows)"
            row.append(cell)
        rows.append(row)
    notes_row = ["notes via HTTP: round trip p50/p99/max ms"]
    for mode in names:
        n = modes[mode]["notes"]
        rt = n["round_trip_ms"]
        cell = _lag(rt) + f" ({n['posted']} posted"
        cell += f", {n['failed']} failed)" if n["failed"] else ")"
        notes_row.append(cell)
    rows.append(notes_row)
    out += _rows(header, rows)
    if "ratios" in result:
        r = result["ratios"]["rig"]
        out.append("")
        out.append(
            f"blocking / non-blocking: loop lag p99 {_num(r['loop_lag_p99'], '{:.1f}x')}, "
            f"max {_num(r['loop_lag_max'], '{:.1f}x')}; note p99 {_num(r['note_p99'], '{:.1f}x')}"
        )
    if result.get("targets"):
        out.append("")
        out.append("targets (non-blocking mode unless named):")
        for name, t in result["targets"].items():
            out.append(f"  {'met ' if t['met'] else 'MISS'}  {name}  (measured {t['value']})")
    return "\n".join(out)
