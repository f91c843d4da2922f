"""`rpi-logger verify SESSION_DIR`: check a session against its manifest (design.md: Integrity).

Errors make the session fail verification; warnings (an interrupted trial, a truncated last CSV
line, drops) are reported but are what a crash or a real device legitimately leaves behind.

Verification is total: whatever the manifest or the files hold (wrong types, unknown values,
garbage rows, paths that lead out of the session), the result is a finding naming the file and
what is wrong, never an exception. Paths that leave the session folder (absolute, `..`, a symlink
out) are reported and never opened.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import stat
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from rpi_logger.core.manifest import (
    FILE_STATUSES,
    KINDS,
    MANIFEST,
    MODULE_STATUSES,
    REQUIRED_FIELDS,
    SCHEMA,
    TRIAL_STATUSES,
)
from rpi_logger.tools.verify_audio import check_audio

ERROR, WARNING, INFO = "error", "warning", "info"
NOTES_MODULE = "Notes"


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
    """A CSV read for checking: header, complete rows, and whether the last line was cut.

    `bad_rows` are (line number, field count) of the rows, other than a cut last line, whose
    field count differs from the header's; `error` says why the file could not be read as CSV.
    """

    header: list[str]
    rows: list[list[str]]
    truncated: bool
    bad_rows: list[tuple[int, int]] = field(default_factory=list)
    error: str | None = None

    def column(self, name: str) -> list[str] | None:
        """The column's cells (a row too short for it gives ""), or None without the column."""
        if name not in self.header:
            return None
        i = self.header.index(name)
        return [r[i] if i < len(r) else "" for r in self.rows]


def read_csv_table(path: Path) -> CsvTable:
    """Read a CSV, setting aside a last line cut short by a crash (no newline, too few fields).

    Raises OSError only when the file cannot be read at all.
    """
    raw = path.read_bytes().decode("utf-8", errors="replace")
    truncated = bool(raw) and not raw.endswith("\n")
    try:
        lines = list(csv.reader(raw.splitlines()))
    except csv.Error as exc:
        return CsvTable([], [], truncated, error=f"not readable as CSV: {exc}")
    if not lines:
        return CsvTable([], [], truncated)
    header, rows = lines[0], lines[1:]
    if rows and (truncated or len(rows[-1]) != len(header)):
        truncated = True
        rows = rows[:-1]
    bad = [(n + 2, len(row)) for n, row in enumerate(rows) if len(row) != len(header)]
    return CsvTable(header, rows, truncated, bad)


def _ints(values: list[str]) -> list[int] | None:
    try:
        return [int(v) for v in values]
    except ValueError:
        return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: object, limit: int = 60) -> str:
    """A short repr of a manifest value for a message."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


# ---- the manifest, checked before anything is opened --------------------------------------


@dataclass(frozen=True, slots=True)
class TrialInfo:
    """The parts of a trial entry the checks need, each None when missing or malformed."""

    where: str
    number: int | None
    status: str | None
    start_ns: int | None
    stop_ns: int | None

    @property
    def interrupted(self) -> bool:
        return self.status in ("interrupted", "recording")


@dataclass(slots=True)
class FileContext:
    """One file entry of the manifest, checked and resolved, for the per-kind checks."""

    session_dir: Path
    rel: str  # the manifest's path
    path: Path  # resolved, inside the session folder
    entry: dict[str, Any]  # the raw entry (for extras such as `simulated`)
    kind: str
    start_ns: int | None
    stop_ns: int | None
    interrupted: bool  # the file entry says the module stopped during the trial
    trial_interrupted: bool  # the trial as a whole was interrupted or never stopped
    frames: int | None
    timing_rel: str | None = None
    timing: CsvTable | None = None
    times: list[int] | None = None  # the timing file's t_mono_ns, when they parse
    repair: bool = False  # `verify --repair`: a kind's check may repair what a crash left

    @property
    def simulated(self) -> bool:
        return self.entry.get("simulated") is True


def _stamp_ns(report: Report, where: str, name: str, value: object, required: bool) -> int | None:
    """`value["mono_ns"]` of a start/stop stamp; reports anything else."""
    if value is None:
        if required:
            report.add(ERROR, where, f"no {name} time")
        return None
    mono = value.get("mono_ns") if isinstance(value, dict) else None
    if not _is_int(mono):
        report.add(ERROR, where, f"{name}.mono_ns is not an integer: {_show(value)}")
        return None
    return mono  # type: ignore[return-value]


def _trial_info(report: Report, index: int, trial: object) -> TrialInfo | None:
    if not isinstance(trial, dict):
        report.add(ERROR, MANIFEST, f"trial entry {index + 1} is not an object: {_show(trial)}")
        return None
    number = trial.get("number")
    where = f"trial {number}" if _is_int(number) else f"trial entry {index + 1}"
    if not _is_int(number) or number < 1:  # type: ignore[operator]
        report.add(ERROR, where, f"number is not a positive integer: {_show(number)}")
        number = None
    status = trial.get("status")
    if status not in TRIAL_STATUSES:
        report.add(
            ERROR,
            where,
            f"unknown status {_show(status)} (expected {', '.join(TRIAL_STATUSES)})",
        )
        status = None
    elif status == "interrupted":
        report.add(WARNING, where, "interrupted")
    elif status == "recording":
        report.add(WARNING, where, "never stopped (the master ended during the trial)")
    start = _stamp_ns(report, where, "start", trial.get("start"), required=True)
    stop = _stamp_ns(report, where, "stop", trial.get("stop"), required=status == "complete")
    if start is not None and stop is not None and stop <= start:
        report.add(ERROR, where, f"stops ({stop}) before it starts ({start})")
        stop = None
    return TrialInfo(where, number, status, start, stop)  # type: ignore[arg-type]


def resolve_inside(root: Path, rel: object) -> tuple[Path | None, str | None]:
    """The file a manifest path names, when it lies inside the session folder `root` (resolved).

    Returns (path, None), or (None, why not): not text, absolute, `..`, or a symlink leading
    out. Nothing is opened.
    """
    if not isinstance(rel, str) or not rel.strip():
        return None, f"expected a path relative to the session folder, got {_show(rel)}"
    if "\x00" in rel:
        return None, "the path holds a NUL character"
    pure = PurePosixPath(rel)
    if pure.is_absolute() or PureWindowsPath(rel).is_absolute():
        return None, "absolute path; paths in the manifest are relative to the session folder"
    if ".." in pure.parts:
        return None, "the path leaves the session folder ('..')"
    try:
        real = Path(os.path.realpath(root / pure))
    except (OSError, ValueError) as exc:
        return None, f"the path cannot be resolved: {exc}"
    if real == root or not real.is_relative_to(root):
        return None, "the path leads outside the session folder (through a symbolic link)"
    return real, None


def _file_problem(path: Path) -> str | None:
    """None for a readable regular file, else what it is instead ("missing"...)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    return None


def _empty_or_missing(path: Path, problem: str | None) -> bool:
    if problem == "missing":
        return True
    try:
        return problem is None and os.stat(path).st_size == 0
    except OSError:
        return False


def _count(report: Report, where: str, entry: dict[str, Any], name: str) -> int | None:
    """A manifest count (`frames`, `dropped`): a whole number or null."""
    value = entry.get(name)
    if value is None:
        return None
    if not _is_int(value) or value < 0:
        report.add(ERROR, where, f"{name} is not a whole number or null: {_show(value)}")
        return None
    return value  # type: ignore[no-any-return]


# ---- the files -----------------------------------------------------------------------------


def _check_video(report: Report, ctx: FileContext) -> None:
    from rpi_logger.tools.verify_video import check_video  # PyAV loads only when needed

    check_video(report, ctx)


#: Checks of media files by manifest kind: fn(report, context) -> None.
MEDIA_CHECKS: dict[str, Callable[[Report, FileContext], None]] = {
    "video": _check_video,
    "audio": check_audio,  # soundfile loads only when a WAV is checked
}


def _read_table(report: Report, where: str, path: Path) -> CsvTable | None:
    try:
        table = read_csv_table(path)
    except OSError as exc:
        report.add(ERROR, where, f"cannot be read: {exc.strerror or exc}")
        return None
    if table.error:
        report.add(ERROR, where, table.error)
        return None
    if table.bad_rows:
        line, fields = table.bad_rows[0]
        more = len(table.bad_rows) - 1
        report.add(
            ERROR,
            where,
            f"line {line} has {fields} fields, the header {len(table.header)}"
            + (f" ({more} more rows like it)" if more else ""),
        )
    return table


def _check_gaps(report: Report, rel: str, gaps: object, start_ns: int | None) -> None:
    """List the stretches a device did not deliver (`TrialStream.gap`), relative to the trial."""
    if not isinstance(gaps, list):
        report.add(ERROR, rel, f"gaps is not a list: {_show(gaps)}")
        return
    origin = start_ns or 0
    for gap in gaps:
        begin = gap.get("start_mono_ns") if isinstance(gap, dict) else None
        end = gap.get("end_mono_ns") if isinstance(gap, dict) else None
        if not (_is_int(begin) and _is_int(end) and end >= begin):  # type: ignore[operator]
            report.add(ERROR, rel, f"malformed gap: {_show(gap)}")
            continue
        assert isinstance(gap, dict) and isinstance(begin, int) and isinstance(end, int)
        missing = gap.get("samples_missing")
        reason = gap.get("reason")
        reason = reason[:60] if isinstance(reason, str) and reason else "no data"
        report.add(
            WARNING,
            rel,
            f"gap ({reason}) from "
            f"{(begin - origin) / 1e9:.3f} s to {(end - origin) / 1e9:.3f} s of the trial "
            f"({(end - begin) / 1e9:.3f} s"
            + (f", {missing} samples missing)" if _is_int(missing) else ")"),
        )


def _check_file(
    report: Report,
    root: Path,
    entry: object,
    trial: TrialInfo | None,
    label: str,
    repair: bool = False,
) -> None:
    """Check one file entry; `label` names it in findings while its path is unknown."""
    if not isinstance(entry, dict):
        report.add(ERROR, label, f"file entry is not an object: {_show(entry)}")
        return
    rel = entry.get("path")
    where = rel if isinstance(rel, str) and rel else label
    path, why = resolve_inside(root, rel)
    if path is None:
        report.add(ERROR, where, f"bad path ({why}); not opened")
        return
    assert isinstance(rel, str)
    status = entry.get("status")
    if status is not None and status not in FILE_STATUSES:
        report.add(
            ERROR, rel, f"unknown status {_show(status)} (expected {', '.join(FILE_STATUSES)})"
        )
    interrupted = status in ("interrupted", "recording")
    kind = entry.get("kind")
    if kind not in KINDS:
        report.add(ERROR, rel, f"unknown kind {_show(kind)} (expected {', '.join(KINDS)})")
    frames = _count(report, rel, entry, "frames")
    dropped = _count(report, rel, entry, "dropped")

    problem = _file_problem(path)
    if kind == "video" and frames == 0 and _empty_or_missing(path, problem):
        # A window that held no frame (a stop at the trial's start, a rejoin after the stop):
        # the encoder never wrote a header, so there is nothing to decode, and nothing lost.
        report.add(WARNING, rel, "no frames: the trial's window for this file was empty")
        return
    if problem:
        report.add(WARNING if interrupted and problem == "missing" else ERROR, rel, problem)
        return
    report.checked_files += 1
    if interrupted:
        report.add(WARNING, rel, "interrupted: the module stopped during the trial")
    if dropped:
        report.add(WARNING, rel, f"{dropped} samples dropped")
    start = trial.start_ns if trial else None
    stop = trial.stop_ns if trial else None
    if "gaps" in entry:
        _check_gaps(report, rel, entry["gaps"], start)
    ctx = FileContext(
        session_dir=root,
        rel=rel,
        path=path,
        entry=entry,
        kind=str(kind),
        start_ns=start,
        stop_ns=stop,
        interrupted=interrupted,
        trial_interrupted=bool(trial and trial.interrupted),
        frames=frames,
        repair=repair,
    )

    timing_rel = entry.get("timing")
    if timing_rel is not None:
        ctx.timing_rel = timing_rel if isinstance(timing_rel, str) else None
        timing_where = timing_rel if isinstance(timing_rel, str) and timing_rel else rel
        timing_path, why = resolve_inside(root, timing_rel)
        if timing_path is None:
            report.add(ERROR, timing_where, f"bad timing path ({why}); not opened")
        elif problem := _file_problem(timing_path):
            level = WARNING if interrupted and problem == "missing" else ERROR
            report.add(level, timing_where, f"timing file {problem}")
        else:
            report.checked_files += 1
            ctx.timing = _read_table(report, timing_where, timing_path)
            if ctx.timing is not None:
                if ctx.timing.truncated:
                    report.add(WARNING, timing_where, "last line truncated (cut by a crash)")
                times = check_timestamps(report, timing_where, ctx.timing, start, stop)
                # check_timestamps gives [] (and an error) when the column is unusable.
                if len(times) == len(ctx.timing.rows):
                    ctx.times = times

    if kind == "csv":
        table = _read_table(report, rel, path)
        if table is None:
            return
        if not table.header:
            report.add(WARNING if interrupted else ERROR, rel, "empty file (no header)")
            return
        if table.truncated:
            report.add(WARNING, rel, "last line truncated (cut by a crash)")
        if "t_mono_ns" in table.header:
            check_timestamps(report, rel, table, start, stop)
        if frames is not None and frames != len(table.rows):
            report.add(ERROR, rel, f"manifest says {frames} rows, file has {len(table.rows)}")
    elif isinstance(kind, str) and kind in MEDIA_CHECKS:
        MEDIA_CHECKS[kind](report, ctx)


def _check_notes(
    report: Report, root: Path, entry: dict[str, Any], trials: list[TrialInfo], label: str
) -> None:
    rel = entry.get("path")
    where = rel if isinstance(rel, str) and rel else label
    path, why = resolve_inside(root, rel)
    if path is None:
        report.add(ERROR, where, f"bad path ({why}); not opened")
        return
    if problem := _file_problem(path):
        report.add(ERROR, where, problem)
        return
    report.checked_files += 1
    table = _read_table(report, where, path)
    if table is None:
        return
    if table.truncated:
        report.add(WARNING, where, "last line truncated (cut by a crash)")
    times = check_timestamps(report, where, table, None, None)
    numbers = table.column("trial") or []
    by_number = {str(t.number): t for t in reversed(trials) if t.number is not None}
    for t, number in zip(times, numbers, strict=False):
        if not number:
            continue
        tr = by_number.get(number)
        if tr is None:
            report.add(ERROR, where, f"note names trial {number}, which does not exist")
            continue
        if tr.start_ns is None:
            continue  # the trial's own error says why
        if t < tr.start_ns or (tr.stop_ns is not None and t >= tr.stop_ns):
            report.add(ERROR, where, f"note at {t} is outside trial {number}")


def _guarded(report: Report, where: str, check: Callable[[], None]) -> None:
    """Run one file's checks; anything unforeseen becomes an error finding, not a crash."""
    try:
        check()
    except Exception as exc:  # last resort: a verifier reports, it never dies on bad data
        report.add(ERROR, where, f"could not be checked: {type(exc).__name__}: {exc}")


def _load_manifest(report: Report, session_dir: Path) -> dict[str, Any] | None:
    manifest_path = session_dir / MANIFEST
    problem = _file_problem(manifest_path)
    if problem == "missing" or not os.path.isdir(session_dir):
        report.add(ERROR, MANIFEST, "missing: not a session folder")
        return None
    if problem:
        report.add(ERROR, MANIFEST, problem)
        return None
    try:
        manifest = json.loads(manifest_path.read_bytes().decode("utf-8"))
    except OSError as exc:
        report.add(ERROR, MANIFEST, f"cannot be read: {exc.strerror or exc}")
        return None
    except UnicodeDecodeError as exc:
        report.add(ERROR, MANIFEST, f"not UTF-8 text: {exc}")
        return None
    except RecursionError:
        report.add(ERROR, MANIFEST, "not a manifest: nested too deeply")
        return None
    except ValueError as exc:  # json.JSONDecodeError, or an integer too long to convert
        report.add(ERROR, MANIFEST, f"not valid JSON: {exc}")
        return None
    if not isinstance(manifest, dict):
        report.add(ERROR, MANIFEST, f"not a manifest: a JSON {type(manifest).__name__}")
        return None
    return manifest


def _check_modules(report: Report, modules: object) -> None:
    if modules is None:
        return
    if not isinstance(modules, dict):
        report.add(ERROR, MANIFEST, f"modules is not an object: {_show(modules)}")
        return
    for name, module in modules.items():
        where = f"module {name}"
        if not isinstance(module, dict):
            report.add(ERROR, where, f"not an object: {_show(module)}")
            continue
        status = module.get("status")
        if status not in MODULE_STATUSES:
            report.add(
                ERROR,
                where,
                f"unknown status {_show(status)} (expected {', '.join(MODULE_STATUSES)})",
            )
        elif status == "failed":
            report.add(WARNING, where, f"failed: {_show(module.get('error'), 300)}")


def verify_session(session_dir: Path, repair: bool = False) -> Report:
    """Check every file of a session against its manifest. Never raises for bad input.

    With `repair`, a kind's check also repairs what a crash left behind where that is possible
    without touching samples (a WAV header, for one), and says so in an info finding."""
    session_dir = Path(session_dir)
    report = Report(session_dir)
    manifest = _load_manifest(report, session_dir)
    if manifest is None:
        return report
    root = Path(os.path.realpath(session_dir))
    missing = [k for k in REQUIRED_FIELDS if k not in manifest]
    if missing:
        report.add(ERROR, MANIFEST, f"missing fields: {', '.join(missing)}")
    if manifest.get("schema") != SCHEMA:
        report.add(ERROR, MANIFEST, f"unknown schema {_show(manifest.get('schema'))}")
    if "health" in manifest and not isinstance(manifest["health"], dict):
        report.add(ERROR, MANIFEST, f"health is not an object: {_show(manifest['health'])}")
    _check_modules(report, manifest.get("modules"))

    raw_trials = manifest.get("trials")
    trials: list[TrialInfo] = []
    if "trials" in manifest and not isinstance(raw_trials, list):
        report.add(ERROR, MANIFEST, f"trials is not a list: {_show(raw_trials)}")
    elif isinstance(raw_trials, list) and not raw_trials:
        # A session stopped before its first trial (Ctrl-C during set-up) holds no data, which
        # is worth saying but is not damage.
        report.add(WARNING, MANIFEST, "no trials recorded")
    seen: set[int] = set()
    for index, raw in enumerate(raw_trials if isinstance(raw_trials, list) else []):
        trial = _trial_info(report, index, raw)
        if trial is None:
            continue
        if trial.number is not None:
            if trial.number in seen:
                report.add(ERROR, trial.where, "the manifest lists this trial number twice")
            seen.add(trial.number)
        trials.append(trial)
        files = raw.get("files", [])
        if not isinstance(files, list):
            report.add(ERROR, trial.where, f"files is not a list: {_show(files)}")
            continue
        for k, entry in enumerate(files):
            label = f"{trial.where}, file {k + 1}"
            _guarded(
                report,
                label,
                lambda e=entry, t=trial, lb=label: _check_file(report, root, e, t, lb, repair),
            )

    session_files = manifest.get("files", [])
    if not isinstance(session_files, list):
        report.add(ERROR, MANIFEST, f"files is not a list: {_show(session_files)}")
        session_files = []
    for k, entry in enumerate(session_files):
        label = f"session file {k + 1}"
        if isinstance(entry, dict) and entry.get("module") == NOTES_MODULE:
            _guarded(
                report,
                label,
                lambda e=entry, lb=label: _check_notes(report, root, e, trials, lb),
            )
        else:
            _guarded(
                report,
                label,
                lambda e=entry, lb=label: _check_file(report, root, e, None, lb, repair),
            )
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
