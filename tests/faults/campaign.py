"""Seeded fault injection for `rpi-logger record` (docs/design.md: Command line, Session layout and
manifest, Modules and trials, Integrity).

One case = one headless recording (`record --simulate --modules cameras,eyetracker,audio,notes`,
small video so a case stays cheap) started as a
subprocess in its own process group, and ONE fault injected at a seeded random edge of the
recording: during set-up, just before / after a trial's start or stop, between trials, or during
shutdown. The edges are found from the master's progress on stderr and from `session.json`
(trial start instants are on the host clock, `time.monotonic_ns()`, shared by every process).

After the run, `check()` lists every broken promise: a hang, an orphan process, an unreadable
file, an untruthful manifest, a `verify` failure or traceback, a traceback on the master's
stderr, a wrong exit status. Everything needed to reproduce a case derives from its seed.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import psutil
from tests.helpers import record_command

from rpi_logger.core.supervisor import STARTUP_TIMEOUT_S

MODULES = ("Cameras", "EyeTracker", "Audio", "Notes")
#: Small videos keep a case cheap on a 2-core machine.
RIG_SETTINGS = (
    "cameras.width=640",
    "cameras.height=480",
    "cameras.fps=15",
    "eyetracker.sim_scene_width=640",
    "eyetracker.sim_scene_height=480",
    "eyetracker.sim_scene_fps=15",
)
#: Module faults of seeds kept from before EyeTracker and Audio joined the rig target these.
LEGACY_TARGETS = "cameras-notes"
DURATION_S = 1.5
TRIALS = 2
LEAD_TIME_NS = 200_000_000  # the master's default trial lead time
#: A signal this long before a stop is on its way (a lead time ahead) must cut the trial short;
#: closer to it, the planned stop may win the race (a loaded host delays the signal handler).
SIGNAL_MARGIN_NS = 250_000_000
#: Beyond duration * trials: set-up, stops, shutdown, and a busy machine.
HANG_SLACK_S = 15.0
#: design.md: Modules and trials: a hung module is detected within 2 s; the extra second tolerates
# a loaded CI host.
HUNG_DETECTION_S = 2.0
HUNG_DETECTION_SLACK_S = 1.0
ORPHAN_GRACE_S = 3.0
#: Random cases per run besides the known seeds: about 5 s each, ~2 minutes in all.
DEFAULT_CASES = 14
RUN_MARKER = "RPI_LOGGER_FAULT_RUN"  # env var every process of one case inherits
KNOWN_SEEDS = Path(__file__).with_name("known_seeds.json")
RERUN = "RPI_LOGGER_FAULT_SEED={seed} .venv/bin/python -m pytest tests/faults -k campaign"

_TRIAL_STARTS = re.compile(r"trial (\d+) \(part \d+\) starts at (\d+)")
_SESSION_STARTED = re.compile(r"session (/\S+) started")


class Fault(enum.StrEnum):
    KILL_MODULE = "kill -9 module"
    STOP_MODULE = "SIGSTOP module"
    KILL_MASTER = "kill -9 master"
    SIGINT_MASTER = "SIGINT master"
    SIGTERM_MASTER = "SIGTERM master"
    DOUBLE_SIGINT = "double SIGINT master"

    @property
    def on_module(self) -> bool:
        return self in (Fault.KILL_MODULE, Fault.STOP_MODULE)

    @property
    def graceful_signal(self) -> bool:
        return self in (Fault.SIGINT_MASTER, Fault.SIGTERM_MASTER, Fault.DOUBLE_SIGINT)


class Moment(enum.StrEnum):
    SETUP = "during set-up"
    BEFORE_START = "just before the start of trial"
    AFTER_START = "just after the start of trial"
    BEFORE_STOP = "just before the stop of trial"
    AFTER_STOP = "just after the stop of trial"
    BETWEEN_TRIALS = "between trials, after the stop of trial"
    SHUTDOWN = "during shutdown, after the stop of trial"


@dataclass(frozen=True, slots=True)
class Case:
    """One fault at one moment; every field derives from the seed."""

    seed: int
    fault: Fault
    moment: Moment
    trial: int  # the trial the moment refers to (ignored during set-up)
    offset_ms: int  # distance from the edge (set-up: from the launch or the module's spawn)
    module: str  # target of a module fault
    restart_on_crash: bool
    resume_after_s: float | None  # SIGSTOP: SIGCONT after this long; None: never
    second_signal_after_s: float  # double SIGINT: the gap between the two
    duration_s: float = DURATION_S
    trials: int = TRIALS

    @classmethod
    def from_seed(
        cls,
        seed: int,
        duration_s: float = DURATION_S,
        trials: int = TRIALS,
        targets: str = "all",
    ) -> Case:
        """The case of `seed`. `targets = LEGACY_TARGETS` keeps a module fault on Cameras or
        Notes, as the seed meant when it was kept (known_seeds.json)."""
        rng = random.Random(seed)
        # Every draw happens, in this order, whatever the fault: a seed keeps its meaning.
        fault = rng.choice(list(Fault))
        moments = [m for m in Moment if trials > 1 or m is not Moment.BETWEEN_TRIALS]
        moment = rng.choice(moments)
        last = trials - 1 if moment is Moment.BETWEEN_TRIALS else trials
        trial = rng.randint(1, last)
        edge_offset = rng.randint(10, 150)
        # Set-up: modules spawn ~0.3-0.5 s after launch, the session folder appears ~0.6-0.9 s
        # after that (idle 2-core host); a master fault may also land before the spawn.
        setup_offset = rng.randint(0, 550) if fault.on_module else rng.randint(0, 900)
        if not fault.on_module and setup_offset < 150:
            # Python's own start-up (site.py) runs before any code of ours can catch a signal.
            setup_offset += 150
        module = rng.choice(["Cameras", "Cameras", "Notes"])
        restart_on_crash = rng.random() < 0.5
        resume_after_s = rng.choice([None, round(rng.uniform(0.2, 1.0), 2), 3.0])
        second = round(rng.uniform(0.05, 0.3), 3)
        match moment:
            case Moment.SETUP:
                offset = setup_offset
            case Moment.BETWEEN_TRIALS:
                offset = edge_offset % 100
            case Moment.SHUTDOWN:
                offset = edge_offset - 10
            case _:
                offset = edge_offset
        if moment is Moment.SHUTDOWN:
            trial = trials
        # A draw of its own, after all the others, so the draws above keep their meaning.
        retarget = random.Random(f"{seed}-target")
        if targets != LEGACY_TARGETS and retarget.random() < 0.4:
            module = retarget.choice(["EyeTracker", "Audio"])
        return cls(
            seed,
            fault,
            moment,
            trial,
            offset,
            module,
            restart_on_crash,
            resume_after_s if fault is Fault.STOP_MODULE else None,
            second,
            duration_s,
            trials,
        )

    @property
    def duration_ns(self) -> int:
        return int(self.duration_s * 1e9)

    @property
    def hang_bound_s(self) -> float:
        bound = self.duration_s * self.trials + HANG_SLACK_S
        if self.fault is Fault.STOP_MODULE and self.moment is Moment.SETUP:
            # Before its first message a module may take STARTUP_TIMEOUT_S to import its
            # libraries (numpy, PyAV on a Pi): a stop then is only noticed after that long.
            bound += STARTUP_TIMEOUT_S
        return bound

    def describe(self) -> str:
        target = f" {self.module}" if self.fault.on_module else ""
        if self.moment is Moment.SETUP:
            base = "the module's spawn" if self.fault.on_module else "launch"
            when = f"{self.moment} ({self.offset_ms} ms after {base})"
        else:
            sign = "-" if self.moment in (Moment.BEFORE_START, Moment.BEFORE_STOP) else "+"
            when = f"{self.moment} {self.trial} ({sign}{self.offset_ms} ms)"
        extra = []
        if self.fault.on_module:
            extra.append(f"restart_on_crash={str(self.restart_on_crash).lower()}")
        if self.fault is Fault.STOP_MODULE:
            resume = "never" if self.resume_after_s is None else f"after {self.resume_after_s} s"
            extra.append(f"SIGCONT {resume}")
        if self.fault is Fault.DOUBLE_SIGINT:
            extra.append(f"second SIGINT {self.second_signal_after_s * 1000:.0f} ms later")
        tail = f" [{', '.join(extra)}]" if extra else ""
        return f"seed {self.seed}: {self.fault}{target} {when}{tail}"

    def command(self, data_dir: Path) -> list[str]:
        settings = [*RIG_SETTINGS]
        if self.fault.on_module:
            flag = str(self.restart_on_crash).lower()
            settings += [f"{m.lower()}.restart_on_crash={flag}" for m in MODULES]
        modules = ",".join(m.lower() for m in MODULES)
        args = record_command(data_dir, modules, self.duration_s, self.trials, tuple(settings))
        return args


# -- seeds ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SeedEntry:
    seed: int
    kind: str  # "seed" (random this run), "known" (kept in known_seeds.json), "env"
    note: str = ""
    targets: str = "all"  # which modules a module fault may hit (Case.from_seed)

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.seed}"


def load_known_seeds(path: Path = KNOWN_SEEDS) -> list[SeedEntry]:
    entries = json.loads(path.read_text(encoding="utf-8"))
    return [
        SeedEntry(int(e["seed"]), "known", e.get("defect", ""), e.get("targets", LEGACY_TARGETS))
        for e in entries
    ]


def selected_seeds(env: dict[str, str] | None = None) -> list[SeedEntry]:
    """What this run covers.

    RPI_LOGGER_FAULT_SEED=1,2,3: exactly those seeds. Otherwise the known seeds plus
    RPI_LOGGER_FAULT_CASES (default DEFAULT_CASES) random ones, drawn from
    RPI_LOGGER_FAULT_BASE_SEED when set (a reproducible batch), else fresh each run: the
    campaign explores as CI runs.
    """
    env = dict(os.environ if env is None else env)
    if env.get("RPI_LOGGER_FAULT_SEED"):
        return [
            SeedEntry(int(s), "env") for s in env["RPI_LOGGER_FAULT_SEED"].split(",") if s.strip()
        ]
    count = int(env.get("RPI_LOGGER_FAULT_CASES", str(DEFAULT_CASES)))
    base = env.get("RPI_LOGGER_FAULT_BASE_SEED")
    rng = random.Random(int(base)) if base else random.SystemRandom()
    known = load_known_seeds()
    return known + [SeedEntry(rng.randrange(100_000, 1_000_000), "seed") for _ in range(count)]


# -- watching a run ---------------------------------------------------------------------------
@dataclass(slots=True)
class Tracked:
    proc: psutil.Process
    cmdline: list[str]
    first_seen_ns: int

    @property
    def module(self) -> str | None:
        """The module this process runs (`python -m rpi_logger ... module PATH --supervised`)."""
        if "module" not in self.cmdline or "--supervised" not in self.cmdline:
            return None
        path = self.cmdline[self.cmdline.index("module") + 1]
        name = Path(path).name.lower()
        return next((m for m in MODULES if m.lower() == name), name)


class ProcessTracker(threading.Thread):
    """Collects every process of the master's tree while it lives (modules start their own
    session, so the master's process group does not hold them)."""

    def __init__(self, master_pid: int) -> None:
        super().__init__(daemon=True, name=f"tracker-{master_pid}")
        self.master_pid = master_pid
        self.seen: dict[int, Tracked] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()

    def run(self) -> None:
        try:
            master = psutil.Process(self.master_pid)
        except psutil.NoSuchProcess:
            return
        while not self._done.is_set():
            try:
                children = master.children(recursive=True)
            except psutil.NoSuchProcess:
                return
            for child in children:
                self._add(child)
            time.sleep(0.03)

    def _add(self, proc: psutil.Process) -> None:
        with self._lock:
            if proc.pid in self.seen:
                return
        try:
            cmdline = proc.cmdline()
        except psutil.Error:
            cmdline = []
        with self._lock:
            self.seen.setdefault(proc.pid, Tracked(proc, cmdline, time.monotonic_ns()))

    def stop(self) -> None:
        self._done.set()

    def processes(self) -> list[Tracked]:
        with self._lock:
            return list(self.seen.values())

    def of_module(self, module: str) -> list[Tracked]:
        return sorted(
            (t for t in self.processes() if t.module == module), key=lambda t: t.first_seen_ns
        )

    def live(self, module: str) -> Tracked | None:
        for tracked in reversed(self.of_module(module)):
            if _running(tracked.proc):
                return tracked
        return None


class StreamReader(threading.Thread):
    """Reads one pipe of the master to the end, keeping each line with its arrival time."""

    def __init__(self, stream: Any, name: str) -> None:
        super().__init__(daemon=True, name=name)
        self.stream = stream
        self.lines: list[tuple[int, str]] = []

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            self.lines.append((time.monotonic_ns(), raw.decode(errors="replace").rstrip("\n")))

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


@dataclass(slots=True)
class Timeline:
    """What the harness learnt of the run as it went (all instants on the host clock)."""

    launched_ns: int
    session_dir: Path | None = None
    session_seen_ns: int | None = None  # when the harness first saw the session folder
    starts: dict[int, int] = field(default_factory=dict)  # trial -> start mono_ns
    stop_seen_ns: dict[int, int] = field(default_factory=dict)  # trial -> when its stop showed
    manifest_errors: list[str] = field(default_factory=list)

    def read_stderr(self, lines: list[tuple[int, str]]) -> None:
        for _, line in list(lines):
            if (m := _TRIAL_STARTS.search(line)) is not None:
                self.starts.setdefault(int(m.group(1)), int(m.group(2)))
            if self.session_dir is None and (m := _SESSION_STARTED.search(line)) is not None:
                self.session_dir = Path(m.group(1))

    def read_manifest(self, data_dir: Path) -> None:
        if self.session_dir is None:
            found = sorted(data_dir.glob("session_*")) if data_dir.is_dir() else []
            if not found:
                return
            self.session_dir = found[0]
        if self.session_seen_ns is None and self.session_dir.is_dir():
            self.session_seen_ns = time.monotonic_ns()
        path = self.session_dir / "session.json"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        try:
            manifest = json.loads(text)
        except ValueError as exc:
            # session.json is replaced atomically: a reader must never see half of it.
            self.manifest_errors.append(f"{exc} ({len(text)} bytes read)")
            return
        now = time.monotonic_ns()
        for trial in manifest.get("trials", []):
            number = trial.get("number")
            start = (trial.get("start") or {}).get("mono_ns")
            if isinstance(number, int) and isinstance(start, int):
                self.starts[number] = start
                if trial.get("status") != "recording":
                    self.stop_seen_ns.setdefault(number, now)


class Recording:
    """One `rpi-logger record` run, watched: its own process group, every process of its tree
    tracked, stderr/stdout read as they come, the manifest polled (never half-written)."""

    def __init__(self, args: list[str], data_dir: Path, hang_bound_s: float) -> None:
        self.args = args
        self.data_dir = data_dir
        self.hang_bound_s = hang_bound_s
        self.token = uuid.uuid4().hex
        self.timeline = Timeline(time.monotonic_ns())
        self.master: subprocess.Popen[bytes] | None = None
        self.tracker: ProcessTracker | None = None
        self.out: StreamReader | None = None
        self.err: StreamReader | None = None
        self.exit_ns: int | None = None
        self.timed_out = False
        self.hang_state: list[str] = []
        self.survivors: list[str] = []

    @property
    def deadline_ns(self) -> int:
        return self.timeline.launched_ns + int(self.hang_bound_s * 1e9)

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env[RUN_MARKER] = self.token
        self.timeline = Timeline(time.monotonic_ns())
        self.master = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self.tracker = ProcessTracker(self.master.pid)
        self.out = StreamReader(self.master.stdout, "stdout")
        self.err = StreamReader(self.master.stderr, "stderr")
        for thread in (self.tracker, self.out, self.err):
            thread.start()

    @property
    def running(self) -> bool:
        return self.master is not None and self.master.poll() is None

    def poll(self) -> None:
        """Learn what the run has shown so far (stderr progress, the manifest)."""
        assert self.err is not None
        self.timeline.read_stderr(self.err.lines)
        self.timeline.read_manifest(self.data_dir)

    def wait_for(self, ready: Any, period_s: float = 0.01) -> bool:
        """Poll until `ready()` is true; False if the master ended or the deadline passed."""
        while self.running and time.monotonic_ns() < self.deadline_ns:
            self.poll()
            if ready():
                return True
            time.sleep(period_s)
        return False

    def finish(self, each: Any = None) -> None:
        """Wait for the master's end (calling `each()` meanwhile); past the deadline, note
        what still runs and kill it. Then find the processes that outlived it."""
        assert self.master is not None and self.tracker is not None
        try:
            while self.running:
                if time.monotonic_ns() >= self.deadline_ns:
                    self.timed_out = True
                    self.hang_state = [_describe(psutil.Process(self.master.pid))] + [
                        _describe(t.proc) for t in self.tracker.processes() if _running(t.proc)
                    ]
                    break
                if each is not None:
                    each()
                self.poll()
                time.sleep(0.01)
        finally:
            if self.master.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.master.pid, signal.SIGKILL)
            self.master.wait()
            self.exit_ns = time.monotonic_ns()
            self.tracker.stop()
            self.tracker.join(1)
            self.survivors = self._survivors()
            for reader in (self.out, self.err):
                assert reader is not None
                reader.join(5)
            self.poll()

    def _survivors(self) -> list[str]:
        """Processes of this run alive ORPHAN_GRACE_S after the master's end (then killed)."""
        assert self.tracker is not None and self.exit_ns is not None
        procs = {t.proc.pid: t.proc for t in self.tracker.processes()}
        procs.update({p.pid: p for p in _marked(self.token)})
        wait_s = max(0.0, ORPHAN_GRACE_S - (time.monotonic_ns() - self.exit_ns) / 1e9)
        _, alive = psutil.wait_procs(list(procs.values()), timeout=wait_s)
        alive = [p for p in alive if _running(p)]
        alive += [p for p in _marked(self.token) if p.pid not in {a.pid for a in alive}]
        report = [_describe(p) for p in alive]
        for proc in alive:  # our own processes: end them, by pid
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGCONT)
                proc.kill()
        return report

    @property
    def returncode(self) -> int | None:
        return None if self.timed_out or self.master is None else self.master.returncode

    @property
    def stdout(self) -> str:
        return self.out.text if self.out is not None else ""

    @property
    def stderr(self) -> str:
        return self.err.text if self.err is not None else ""

    def processes(self) -> list[Tracked]:
        return self.tracker.processes() if self.tracker is not None else []

    def session_dir(self) -> Path | None:
        """The session folder: stdout's last line, else what the run showed, else the data dir."""
        lines = self.stdout.strip().splitlines()
        if lines and Path(lines[-1]).is_dir():
            return Path(lines[-1])
        if self.timeline.session_dir is not None and self.timeline.session_dir.is_dir():
            return self.timeline.session_dir
        found = sorted(self.data_dir.glob("session_*")) if self.data_dir.is_dir() else []
        return found[0] if found else None


@dataclass(slots=True)
class Injection:
    """What the harness did, and when."""

    at_ns: int | None = None  # the fault's instant (None: the master ended before its moment)
    done_ns: int | None = None  # right after the signal was sent
    pid: int | None = None
    session_existed: bool = False
    second_ns: int | None = None  # double SIGINT
    resumed_ns: int | None = None  # SIGSTOP then SIGCONT
    victim_gone_ns: int | None = None  # SIGSTOP: when the stopped process was gone
    note: str = ""


@dataclass(slots=True)
class Outcome:
    """Everything a case left behind, for `check()`."""

    case: Case
    timeline: Timeline
    injection: Injection
    returncode: int | None
    exit_ns: int | None
    timed_out: bool
    hang_state: list[str]
    stdout: str
    stderr: str
    processes: list[Tracked]
    survivors: list[str]
    session_dir: Path | None


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _marked(token: str) -> list[psutil.Process]:
    """Every live process of one run, found by the env marker it inherited."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(RUN_MARKER) == token and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} [{proc.status()}] {' '.join(proc.cmdline())[:160]}"
    except psutil.Error:
        return f"pid {proc.pid} (gone)"


class FaultRun:
    """Drives one case: launch, wait for the moment, inject, follow up, wait for the end."""

    def __init__(self, case: Case, workdir: Path) -> None:
        self.case = case
        self.rec = Recording(case.command(workdir / "data"), workdir / "data", case.hang_bound_s)
        self.injection = Injection()
        self.victim: psutil.Process | None = None

    def execute(self) -> Outcome:
        rec = self.rec
        rec.start()
        try:
            if not rec.wait_for(self._inject_if_due, period_s=0.005):
                self.injection.note = "not injected: the master ended before the moment came"
        finally:
            rec.finish(each=self._follow_up)
        self._watch_victim(final=True)
        return Outcome(
            case=self.case,
            timeline=rec.timeline,
            injection=self.injection,
            returncode=rec.returncode,
            exit_ns=None if rec.timed_out else rec.exit_ns,
            timed_out=rec.timed_out,
            hang_state=rec.hang_state,
            stdout=rec.stdout,
            stderr=rec.stderr,
            processes=rec.processes(),
            survivors=rec.survivors,
            session_dir=rec.session_dir(),
        )

    def _due_ns(self) -> int | None:
        """The fault's instant, once the run has shown enough to know it."""
        case, tl, off = self.case, self.rec.timeline, self.case.offset_ms * 1_000_000
        start = tl.starts.get(case.trial)
        match case.moment:
            case Moment.SETUP:
                if case.fault.on_module:
                    assert self.rec.tracker is not None
                    spawned = self.rec.tracker.of_module(case.module)
                    return spawned[0].first_seen_ns + off if spawned else None
                return tl.launched_ns + off
            case Moment.BEFORE_START:
                return None if start is None else start - off
            case Moment.AFTER_START:
                return None if start is None else start + off
            case Moment.BEFORE_STOP:
                return None if start is None else start + case.duration_ns - off
            case Moment.AFTER_STOP:
                return None if start is None else start + case.duration_ns + off
            case Moment.BETWEEN_TRIALS | Moment.SHUTDOWN:
                seen = tl.stop_seen_ns.get(case.trial)
                return None if seen is None else seen + off

    def _inject_if_due(self) -> bool:
        due = self._due_ns()
        now = time.monotonic_ns()
        if due is None or now < due - 15_000_000:
            return False
        time.sleep(max(0, due - now) / 1e9)
        return self._inject()

    def _inject(self) -> bool:
        """Send the fault; False when its target is not there yet (a module being respawned)."""
        case, inj, rec = self.case, self.injection, self.rec
        assert rec.master is not None and rec.tracker is not None
        if case.fault.on_module:
            target = rec.tracker.live(case.module)
            if target is None:
                return False
            sig = signal.SIGKILL if case.fault is Fault.KILL_MODULE else signal.SIGSTOP
            inj.at_ns = time.monotonic_ns()
            try:
                target.proc.send_signal(sig)
            except psutil.NoSuchProcess:
                return False
            inj.pid, self.victim = target.proc.pid, target.proc
        else:
            sig = {
                Fault.KILL_MASTER: signal.SIGKILL,
                Fault.SIGTERM_MASTER: signal.SIGTERM,
            }.get(case.fault, signal.SIGINT)
            inj.at_ns = time.monotonic_ns()
            try:
                if sig is signal.SIGINT:
                    os.killpg(rec.master.pid, sig)  # as Ctrl-C in a terminal does
                else:
                    os.kill(rec.master.pid, sig)
            except ProcessLookupError:
                inj.at_ns = None
                return False
            inj.pid = rec.master.pid
        inj.done_ns = time.monotonic_ns()
        inj.session_existed = rec.data_dir.is_dir() and any(rec.data_dir.glob("session_*"))
        return True

    def _follow_up(self) -> None:
        """Second SIGINT, SIGCONT, watch a stopped module die."""
        case, inj, rec = self.case, self.injection, self.rec
        if inj.at_ns is None:
            return
        since_s = (time.monotonic_ns() - inj.at_ns) / 1e9
        if (
            case.fault is Fault.DOUBLE_SIGINT
            and inj.second_ns is None
            and since_s >= case.second_signal_after_s
        ):
            assert rec.master is not None
            inj.second_ns = time.monotonic_ns()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(rec.master.pid, signal.SIGINT)
        self._watch_victim()

    def _watch_victim(self, final: bool = False) -> None:
        """SIGSTOP cases: note when the stopped module is gone; SIGCONT it when planned.

        Once resumed, the module is a live one again: its later exit is not the master's kill.
        """
        inj, victim = self.injection, self.victim
        if self.case.fault is not Fault.STOP_MODULE or victim is None or inj.at_ns is None:
            return
        if inj.resumed_ns is not None or inj.victim_gone_ns is not None:
            return
        if not _running(victim):
            inj.victim_gone_ns = time.monotonic_ns()
            return
        resume = self.case.resume_after_s
        since_s = (time.monotonic_ns() - inj.at_ns) / 1e9
        if not final and resume is not None and since_s >= resume:
            inj.resumed_ns = time.monotonic_ns()
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.send_signal(signal.SIGCONT)


def run_case(case: Case, workdir: Path) -> Outcome:
    workdir.mkdir(parents=True, exist_ok=True)
    return FaultRun(case, workdir).execute()


# -- checks -----------------------------------------------------------------------------------
@dataclass(slots=True)
class Verdict:
    outcome: Outcome
    problems: list[str]
    manifest: dict[str, Any] | None
    verify: dict[str, Any] | None
    verify_rc: int | None

    def report(self) -> str:
        o, case = self.outcome, self.outcome.case
        lines = [case.describe(), f"  {where(o)}"]
        if o.timed_out:
            lines.append(f"  master still running after {case.hang_bound_s:.0f} s (killed)")
        else:
            lines.append(
                f"  master exit status {o.returncode}, "
                f"{((o.exit_ns or 0) - o.timeline.launched_ns) / 1e9:.1f} s after launch"
            )
        lines.append("problems:")
        lines += [f"  - {p}" for p in self.problems]
        lines.append(f"session.json: {summarize_manifest(self.manifest)}")
        if self.verify is not None:
            findings = [
                f"{f['level']} {f['where']}: {f['message']}"
                for f in self.verify.get("findings", [])
                if f.get("level") in ("error", "warning")
            ]
            lines.append(f"verify: exit {self.verify_rc}, ok={self.verify.get('ok')}")
            lines += [f"  {f}" for f in findings[:12]]
        lines.append("master stderr (last 30 lines):")
        lines += [f"  | {line}" for line in o.stderr.splitlines()[-30:]]
        lines.append(f"rerun: {RERUN.format(seed=case.seed)}")
        return "\n".join(lines)


def where(o: Outcome) -> str:
    """The fault's real instant, relative to the nearest trial edge."""
    inj, at = o.injection, o.injection.at_ns
    if at is None:
        return inj.note or "not injected"
    edges: list[tuple[str, int]] = [("launch", o.timeline.launched_ns)]
    for module in MODULES:
        spawned = [t.first_seen_ns for t in o.processes if t.module == module]
        edges += [(f"{module}'s spawn", min(spawned))] if spawned else []
    if o.timeline.session_seen_ns is not None:
        edges.append(("the session folder's creation", o.timeline.session_seen_ns))
    for number, start in sorted(o.timeline.starts.items()):
        edges += [(f"start of trial {number}", start)]
        edges += [(f"planned stop of trial {number}", start + o.case.duration_ns)]
    name, edge = min(edges, key=lambda e: abs(at - e[1]))
    ms = (at - edge) / 1e6
    session = "session folder existed" if inj.session_existed else "no session folder yet"
    return f"injected at {name} {ms:+.0f} ms (pid {inj.pid}; {session})"


def summarize_manifest(manifest: dict[str, Any] | None) -> str:
    if manifest is None:
        return "none"
    trials = []
    for t in manifest.get("trials", []):
        files = ", ".join(
            f"{f.get('module')}:{Path(str(f.get('path'))).name}={f.get('status')}"
            for f in t.get("files", [])
        )
        trials.append(f"trial {t.get('number')} {t.get('status')} [{files}]")
    modules = ", ".join(
        f"{n}={m.get('status')}/restarts={m.get('restarts')}"
        for n, m in (manifest.get("modules") or {}).items()
    )
    ended = bool(manifest.get("ended"))
    return f"{'; '.join(trials) or 'no trials'}; modules {modules}; ended={ended}"


def check(outcome: Outcome) -> Verdict:
    """Every broken promise of one run, each a readable line."""
    o, case, inj = outcome, outcome.case, outcome.injection
    problems: list[str] = []
    if o.timed_out:
        problems.append(
            f"hang: the master did not exit within {case.hang_bound_s:.0f} s; still running: "
            + "; ".join(o.hang_state)
        )
    if o.survivors:
        alive = "; ".join(o.survivors)
        problems.append(f"orphans: alive {ORPHAN_GRACE_S:.0f} s after the master ended: {alive}")
    if "Traceback" in o.stderr:
        first = o.stderr.index("Traceback")
        problems.append(f"traceback on the master's stderr: {o.stderr[first : first + 600]!r}")
    for error in o.timeline.manifest_errors[:3]:
        problems.append(f"session.json read half-written during the run: {error}")
    problems += _check_hung_detection(o)

    manifest = None
    killed_master = case.fault is Fault.KILL_MASTER and inj.at_ns is not None
    if o.session_dir is not None:
        path = o.session_dir / "session.json"
        if path.is_file():
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                problems.append(f"session.json does not parse: {exc}")
        elif not killed_master:
            problems.append(f"session folder {o.session_dir.name} has no session.json")
        problems += check_session_files(o.session_dir, manifest, _kill9(o))
    if manifest is not None:
        problems += _check_manifest(o, manifest)
        if not killed_master and not o.timed_out:
            last = o.stdout.strip().splitlines()[-1:] or [""]
            if Path(last[0]) != o.session_dir:
                problems.append(
                    f"stdout's last line is {last[0]!r}, not the session folder "
                    f"{o.session_dir} (design.md: Command line)"
                )
    problems += _check_exit(o, manifest)
    verify, verify_rc = None, None
    if manifest is not None and o.session_dir is not None:
        verify, verify_rc, verify_problems = run_verify(o.session_dir)
        problems += verify_problems
    return Verdict(outcome, problems, manifest, verify, verify_rc)


def _check_hung_detection(o: Outcome) -> list[str]:
    """A stopped module must be found hung and killed by the master (design.md: Modules and trials:
    within 2 s)."""
    inj, case = o.injection, o.case
    if case.fault is not Fault.STOP_MODULE or inj.at_ns is None:
        return []
    limit = HUNG_DETECTION_S + HUNG_DETECTION_SLACK_S
    if case.moment is Moment.SETUP and not inj.session_existed:
        limit += STARTUP_TIMEOUT_S  # it may not have sent its first message yet
    if inj.resumed_ns is not None and (inj.resumed_ns - inj.at_ns) / 1e9 < limit:
        return []  # resumed before the master had to notice
    if inj.victim_gone_ns is None:
        resumed = "" if inj.resumed_ns is None else " (the harness resumed it itself)"
        victim = f"the stopped {case.module} (pid {inj.pid})"
        return [f"{victim} was never killed by the master{resumed}"]
    gone_s = (inj.victim_gone_ns - inj.at_ns) / 1e9
    if gone_s > limit:
        return [
            f"the stopped {case.module} (pid {inj.pid}) was killed {gone_s:.1f} s after SIGSTOP "
            f"(limit {limit:.1f} s)"
        ]
    return []


def _kill9(o: Outcome) -> bool:
    """Whether some process was SIGKILLed (by us, or by the master after a SIGSTOP)."""
    inj, fault = o.injection, o.case.fault
    if inj.at_ns is None:
        return False
    if fault in (Fault.KILL_MASTER, Fault.KILL_MODULE):
        return True
    return fault is Fault.STOP_MODULE and inj.victim_gone_ns is not None


def _entries(manifest: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Manifest file entries by relative path."""
    found: dict[str, dict[str, Any]] = {}
    if manifest is None:
        return found
    for trial in manifest.get("trials", []):
        for entry in trial.get("files", []):
            found[str(entry.get("path"))] = entry
    for entry in manifest.get("files", []):
        found[str(entry.get("path"))] = entry
    return found


def check_session_files(
    session_dir: Path, manifest: dict[str, Any] | None, crashed: bool
) -> list[str]:
    """Every CSV parses, every MP4 decodes to its end. `crashed` (something was SIGKILLed, or
    a write failed) allows a cut last CSV line and a cut end of a video not listed complete."""
    problems = []
    entries = _entries(manifest)
    for path in sorted(session_dir.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(session_dir))
        entry = entries.get(rel)
        unfinished = entry is None or entry.get("status") in ("interrupted", "recording")
        if path.suffix == ".csv":
            problems += _check_csv(path, rel, crashed)
        elif path.suffix == ".mp4":
            if entry is not None and entry.get("frames") == 0 and path.stat().st_size == 0:
                continue  # a window that held no frame (a stop at the start): nothing to decode
            problems += _check_mp4(path, rel, may_be_cut=crashed and unfinished)
        elif path.suffix == ".wav":
            problems += _check_wav(path, rel)
    return problems


def _check_wav(path: Path, rel: str) -> list[str]:
    """A WAV opens and reads to its end whatever happened: its header is kept valid as it is
    written (design: Audio), so even a kill -9 leaves one ordinary tools play."""
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as wav:
            wav.read(dtype="int16")
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        return [f"{rel}: soundfile cannot read it: {exc}"]
    return []


def _check_csv(path: Path, rel: str, crashed: bool) -> list[str]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [f"{rel}: not UTF-8 ({exc})"]
    if not text:
        return [] if crashed else [f"{rel}: empty (no header) without any kill -9"]
    cut = not text.endswith("\n")
    if cut and not crashed:
        return [f"{rel}: last line cut short ({text[-60:]!r}) without any kill -9"]
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        return [f"{rel}: csv cannot parse it: {exc}"]
    header, body = rows[0], rows[1:]
    bad = [i for i, r in enumerate(body, start=2) if len(r) != len(header)]
    if cut and bad[-1:] == [len(body) + 1]:
        bad.pop()  # a last line cut by kill -9 is allowed (design.md: Principles, 3)
    if bad:
        return [f"{rel}: {len(bad)} rows with a wrong field count (first at line {bad[0]})"]
    return []


def _check_mp4(path: Path, rel: str, may_be_cut: bool) -> list[str]:
    if path.stat().st_size == 0:
        return [] if may_be_cut else [f"{rel}: a 0-byte .mp4 (PyAV cannot open it)"]
    frames = 0
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(video=0):
                frames += len(packet.decode())
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        if may_be_cut:
            return []
        return [f"{rel}: decodes {frames} frames, then fails: {exc}"]
    return []


def _trial_windows(case: Case, manifest: dict[str, Any]) -> dict[int, tuple[int, int, int]]:
    """trial -> (start, recorded or planned stop, planned stop)."""
    windows = {}
    for trial in manifest.get("trials", []):
        start = trial["start"]["mono_ns"]
        planned = start + case.duration_ns
        stop = (trial.get("stop") or {}).get("mono_ns") or planned
        windows[trial["number"]] = (start, stop, planned)
    return windows


def _module_downtime(o: Outcome) -> tuple[int, int] | None:
    """When the faulted module was not recording: from the fault to its respawn (if any)."""
    inj, case = o.injection, o.case
    if not case.fault.on_module or inj.done_ns is None:
        return None
    if case.fault is Fault.STOP_MODULE and inj.victim_gone_ns is None:
        return None  # resumed before the master saw it hung: a stall, not an interruption
    respawned = [
        t.first_seen_ns
        for t in o.processes
        if t.module == case.module and t.proc.pid != inj.pid and t.first_seen_ns > inj.at_ns
    ]
    return inj.done_ns, min(respawned, default=2**63)


def _must_be_interrupted(o: Outcome, manifest: dict[str, Any]) -> dict[int, str]:
    """Trials the fault cut into: trial -> why."""
    inj, case = o.injection, o.case
    must: dict[int, str] = {}
    down = _module_downtime(o)
    for number, (start, stop, planned) in _trial_windows(case, manifest).items():
        if down is not None and down[0] < stop and down[1] > start:
            must[number] = f"{case.module} was down from {(down[0] - start) / 1e9:+.2f} s"
        if (
            case.fault.graceful_signal
            and inj.at_ns is not None
            and start <= inj.at_ns < planned - LEAD_TIME_NS - SIGNAL_MARGIN_NS
        ):
            must[number] = f"the master was signalled {(inj.at_ns - start) / 1e9:.2f} s in"
    return must


def _check_manifest(o: Outcome, manifest: dict[str, Any]) -> list[str]:
    case, inj = o.case, o.injection
    problems = []
    killed_master = case.fault is Fault.KILL_MASTER and inj.at_ns is not None
    trials = manifest.get("trials", [])
    for trial in trials:
        if trial.get("status") == "recording" and not killed_master:
            problems.append(f"trial {trial['number']} left 'recording' after a {case.fault}")
    windows = _trial_windows(case, manifest)
    for number, why in _must_be_interrupted(o, manifest).items():
        trial = next(t for t in trials if t["number"] == number)
        start, stop, planned = windows[number]
        if trial["status"] != "complete":
            continue
        if case.fault.graceful_signal and stop < planned:
            continue  # ended early on the signal, and its stop says so truthfully
        problems.append(
            f"trial {number} is 'complete' but the fault cut into it ({why}); "
            f"stop recorded {(stop - start) / 1e9:.3f} s after start"
        )
    for trial in trials:
        if trial.get("status") != "complete":
            continue
        for entry in trial.get("files", []):
            if entry.get("status") not in (None, "complete"):
                problems.append(
                    f"trial {trial['number']} is 'complete' but {entry.get('path')} is "
                    f"{entry.get('status')!r}"
                )
        present = {e.get("module") for e in trial.get("files", [])}
        for module in ("Cameras", "EyeTracker", "Audio"):  # each records files every trial
            if module not in present:
                problems.append(f"trial {trial['number']} is 'complete' without any {module} file")
    if case.fault.graceful_signal and inj.at_ns is not None:
        late = [n for n, w in windows.items() if w[0] > inj.at_ns + LEAD_TIME_NS + 500_000_000]
        if late:
            problems.append(f"trial(s) {late} started after the {case.fault}")
    if len(trials) > case.trials:
        problems.append(f"{len(trials)} trials recorded, {case.trials} asked")
    modules = manifest.get("modules") or {}
    for name, module in modules.items():
        restarts = module.get("restarts") or 0
        if restarts > 1:
            problems.append(f"{name} restarted {restarts} times after one fault (a loop)")
        if restarts and case.fault.on_module and not case.restart_on_crash:
            problems.append(
                f"{name} was restarted {restarts} time(s) although the run set "
                f"{name.lower()}.restart_on_crash=false"
            )
    return problems


def _check_exit(o: Outcome, manifest: dict[str, Any] | None) -> list[str]:
    """0 only when every module recorded every trial and the fault interrupted nothing."""
    case, inj, rc = o.case, o.injection, o.returncode
    if rc is None or (case.fault is Fault.KILL_MASTER and inj.at_ns is not None):
        return []
    problems = []
    if rc == 0:
        trials = (manifest or {}).get("trials", [])
        if manifest is None:
            problems.append("exit status 0 without a session")
        elif len(trials) != case.trials or any(t.get("status") != "complete" for t in trials):
            states = [t.get("status") for t in trials]
            problems.append(f"exit status 0 but the trials are {states}, {case.trials} asked")
        if manifest is not None and (cut := _must_be_interrupted(o, manifest)):
            problems.append(f"exit status 0 although the fault cut into trial(s) {sorted(cut)}")
        if case.fault.graceful_signal and inj.at_ns is not None and manifest is not None:
            windows = _trial_windows(case, manifest)
            last_planned = max((w[2] for w in windows.values()), default=None)
            if len(windows) < case.trials or (
                last_planned is not None
                and inj.at_ns < last_planned - LEAD_TIME_NS - SIGNAL_MARGIN_NS
            ):
                problems.append(f"exit status 0 after a {case.fault} that cut the session short")
    elif inj.at_ns is None:
        problems.append(f"exit status {rc}, but no fault was injected (a clean run)")
    elif rc < 0 and -rc not in _signals_sent(case):
        problems.append(f"the master died of signal {-rc}, which the harness did not send")
    return problems


def _signals_sent(case: Case) -> set[int]:
    """Signals sent to the master: dying of one of them is a non-zero exit like 130 is."""
    match case.fault:
        case Fault.SIGINT_MASTER | Fault.DOUBLE_SIGINT:
            return {signal.SIGINT}
        case Fault.SIGTERM_MASTER:
            return {signal.SIGTERM}
        case _:
            return set()


def run_verify(session: Path) -> tuple[dict[str, Any] | None, int, list[str]]:
    result = subprocess.run(
        [sys.executable, "-m", "rpi_logger", "verify", str(session), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    problems = []
    if "Traceback" in result.stderr or "Traceback" in result.stdout:
        text = result.stderr if "Traceback" in result.stderr else result.stdout
        problems.append(f"verify printed a traceback: {text[text.index('Traceback') :][:600]!r}")
    try:
        report = json.loads(result.stdout)
    except ValueError:
        problems.append(f"verify --json printed no JSON (exit {result.returncode})")
        return None, result.returncode, problems
    if result.returncode != 0:
        errors = [
            f"{f['where']}: {f['message']}"
            for f in report.get("findings", [])
            if f.get("level") == "error"
        ]
        problems.append(f"verify exit {result.returncode}: " + "; ".join(errors[:6]))
    return report, result.returncode, problems
