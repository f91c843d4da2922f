"""`rpi-logger verify SESSION_DIR`: check a session against its manifest (SPEC §9).

Errors make the session fail verification; warnings (an interrupted trial, a truncated last CSV
line, drops) are reported but are what a crash or a real device legitimately leaves behind.
"""

from __future__ import annotations

import csv
import itertools
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpi_logger.core.session import MANIFEST, SCHEMA

ERROR, WARNING, INFO = "error", "warning", "info"
REQUIRED_FIELDS = (
    "schema",
    "session_id",
    "simulated",
    "host",
    "software",
    "clock",
    "modules",
    "trials",
    "health",
)


@dataclass(slots=True)
class Finding:
    level: str
    where: str
    message: str


@dataclass(slots=True)
class Report:
    session: Path
    findings: list[Finding] = field(default_factory=list)
    checked_files: int = 0

    @property
    def ok(self) -> bool:
        return not any(f.level == ERROR for f in self.findings)

    def add(self, level: str, where: str | Path, message: str) -> None:
        self.findings.append(Finding(level, str(where), message))

    def as_dict(self) -> dict[str, Any]:
        return {
            "session": str(self.session),
            "ok": self.ok,
            "checked_files": self.checked_files,
            "findings": [
                {"level": f.level, "where": f.where, "message": f.message} for f in self.findings
            ],
        }


@dataclass(slots=True)
class CsvTable:
    """A CSV read for checking: header, complete rows, and whether the last line was cut."""

    header: list[str]
    rows: list[list[str]]
    truncated: bool

    def column(self, name: str) -> list[str] | None:
        if name not in self.header:
            return None
        i = self.header.index(name)
        return [r[i] for r in self.rows]


def read_csv_table(path: Path) -> CsvTable:
    """Read a CSV, setting aside a last line cut short by a crash (no newline, too few fields)."""
    raw = path.read_bytes().decode("utf-8", errors="replace")
    truncated = bool(raw) and not raw.endswith("\n")
    lines = list(csv.reader(raw.splitlines()))
    if not lines:
        return CsvTable([], [], truncated)
    header, rows = lines[0], lines[1:]
    if rows and (truncated or len(rows[-1]) != len(header)):
        truncated = True
        rows = rows[:-1]
    return CsvTable(header, rows, truncated)


def _ints(values: list[str]) -> list[int] | None:
    try:
        return [int(v) for v in values]
    except ValueError:
        return None


def check_timestamps(
    report: Report,
    where: str,
    table: CsvTable,
    start_ns: int | None,
    stop_ns: int | None,
    column: str = "t_mono_ns",
) -> list[int]:
    """Strictly increasing, inside [start, stop); lists gaps. Returns the parsed times."""
    values = table.column(column)
    if values is None:
        report.add(ERROR, where, f"no {column!r} column")
        return []
    times = _ints(values)
    if times is None:
        report.add(ERROR, where, f"{column!r} holds values that are not integers")
        return []
    bad = [i for i in range(1, len(times)) if times[i] <= times[i - 1]]
    if bad:
        report.add(
            ERROR,
            where,
            f"{column} not strictly increasing at {len(bad)} rows (first at data row {bad[0] + 1})",
        )
    if start_ns is not None:
        early = sum(1 for t in times if t < start_ns)
        if early:
            report.add(ERROR, where, f"{early} rows before the trial start")
    if stop_ns is not None:
        late = sum(1 for t in times if t >= stop_ns)
        if late:
            report.add(ERROR, where, f"{late} rows at or after the trial stop")
    if len(times) > 10:
        intervals = [b - a for a, b in itertools.pairwise(times)]
        typical = statistics.median(intervals)
        gaps = [g for g in intervals if typical > 0 and g > 2.5 * typical]
        if gaps:
            report.add(
                INFO,
                where,
                f"{len(gaps)} gaps longer than 2.5x the median interval "
                f"({typical / 1e6:.1f} ms); longest {max(gaps) / 1e6:.1f} ms",
            )
    return times


def _check_video(*args: Any) -> None:
    from rpi_logger.tools.verify_video import check_video  # PyAV loads only when needed

    check_video(*args)


#: Checks for media files by manifest kind: fn(report, session_dir, entry, trial, timing) -> None
MEDIA_CHECKS: dict[str, Callable[..., None]] = {"video": _check_video}


def _check_file(
    report: Report, session_dir: Path, entry: dict[str, Any], trial: dict[str, Any] | None
) -> None:
    rel = entry.get("path")
    if not rel:
        report.add(ERROR, "session.json", f"file entry without a path: {entry}")
        return
    path = session_dir / rel
    interrupted = entry.get("status") in ("interrupted", "recording")
    if not path.is_file():
        report.add(WARNING if interrupted else ERROR, rel, "missing")
        return
    report.checked_files += 1
    start = trial["start"]["mono_ns"] if trial else None
    stop = (trial.get("stop") or {}).get("mono_ns") if trial else None
    if interrupted:
        report.add(WARNING, rel, "interrupted: the module stopped during the trial")
    if entry.get("dropped"):
        report.add(WARNING, rel, f"{entry['dropped']} samples dropped")

    timing_table = None
    if entry.get("timing"):
        timing = session_dir / entry["timing"]
        if not timing.is_file():
            report.add(WARNING if interrupted else ERROR, entry["timing"], "timing file missing")
        else:
            report.checked_files += 1
            timing_table = read_csv_table(timing)
            if timing_table.truncated:
                report.add(WARNING, entry["timing"], "last line truncated (cut by a crash)")
            check_timestamps(report, entry["timing"], timing_table, start, stop)

    kind = entry.get("kind")
    if kind == "csv":
        table = read_csv_table(path)
        if not table.header:
            report.add(WARNING if interrupted else ERROR, rel, "empty file (no header)")
            return
        if table.truncated:
            report.add(WARNING, rel, "last line truncated (cut by a crash)")
        if "t_mono_ns" in table.header:
            check_timestamps(report, rel, table, start, stop)
        if entry.get("frames") is not None and entry["frames"] != len(table.rows):
            report.add(
                ERROR, rel, f"manifest says {entry['frames']} rows, file has {len(table.rows)}"
            )
    elif kind in MEDIA_CHECKS:
        MEDIA_CHECKS[kind](report, session_dir, entry, trial, timing_table)


def _check_notes(
    report: Report, session_dir: Path, entry: dict[str, Any], trials: list[dict[str, Any]]
) -> None:
    path = session_dir / entry["path"]
    if not path.is_file():
        report.add(ERROR, entry["path"], "missing")
        return
    report.checked_files += 1
    table = read_csv_table(path)
    if table.truncated:
        report.add(WARNING, entry["path"], "last line truncated (cut by a crash)")
    times = check_timestamps(report, entry["path"], table, None, None)
    numbers = table.column("trial") or []
    for t, number in zip(times, numbers, strict=False):
        if not number:
            continue
        match = [tr for tr in trials if str(tr["number"]) == number]
        if not match:
            report.add(ERROR, entry["path"], f"note names trial {number}, which does not exist")
            continue
        tr = match[0]
        stop = (tr.get("stop") or {}).get("mono_ns")
        if t < tr["start"]["mono_ns"] or (stop is not None and t >= stop):
            report.add(ERROR, entry["path"], f"note at {t} is outside trial {number}")


def verify_session(session_dir: Path) -> Report:
    """Check every file of a session against its manifest."""
    session_dir = Path(session_dir)
    report = Report(session_dir)
    manifest_path = session_dir / MANIFEST
    if not manifest_path.is_file():
        report.add(ERROR, MANIFEST, "missing: not a session folder")
        return report
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        report.add(ERROR, MANIFEST, f"not valid JSON: {exc}")
        return report
    missing = [k for k in REQUIRED_FIELDS if k not in manifest]
    if missing:
        report.add(ERROR, MANIFEST, f"missing fields: {', '.join(missing)}")
    if manifest.get("schema") != SCHEMA:
        report.add(ERROR, MANIFEST, f"unknown schema {manifest.get('schema')!r}")
    for name, module in (manifest.get("modules") or {}).items():
        if module.get("status") == "failed":
            report.add(WARNING, f"module {name}", f"failed: {module.get('error')}")
    trials = manifest.get("trials") or []
    for trial in trials:
        where = f"trial {trial.get('number')}"
        if trial.get("status") == "interrupted":
            report.add(WARNING, where, "interrupted")
        elif trial.get("status") == "recording":
            report.add(WARNING, where, "never stopped (the master ended during the trial)")
        for entry in trial.get("files", []):
            _check_file(report, session_dir, entry, trial)
    for entry in manifest.get("files", []):
        if entry.get("module") == "Notes":
            _check_notes(report, session_dir, entry, trials)
        else:
            _check_file(report, session_dir, entry, None)
    return report


def format_report(report: Report) -> str:
    """The human-readable report: one line per finding, then the verdict."""
    lines = [f"{f.level.upper():<7} {f.where}: {f.message}" for f in report.findings]
    verdict = "OK" if report.ok else "FAILED"
    errors = sum(f.level == ERROR for f in report.findings)
    warnings = sum(f.level == WARNING for f in report.findings)
    lines.append(
        f"{verdict}: {report.session.name}: {report.checked_files} files checked, "
        f"{errors} errors, {warnings} warnings"
    )
    return "\n".join(lines)
