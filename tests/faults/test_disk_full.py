"""A full disk (a small tmpfs) before and during a recording: `record` must stop cleanly.

Expected: no hang, a non-zero exit, a line saying "disk full", no orphan process, no traceback,
and when a session could be created its session.json says "disk full", leaves no trial
"recording", and no module was restarted in a loop. Needs root (mount); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.faults.campaign import (
    MODULES,
    Recording,
    check_session_files,
    run_verify,
    summarize_manifest,
)
from tests.helpers import record_command

from rpi_logger.core.master import MasterConfig

pytestmark = pytest.mark.faults

DURATION_S = 4.0
HANG_BOUND_S = 20.0  # from the moment the disk is full
MiB = 1 << 20


def _min_free_mb() -> float:
    """The free space the master wants before it records (0 when it has no such check)."""
    return float(getattr(MasterConfig(data_dir=Path()), "min_free_mb", 0) or 0)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """mount(size_mb) -> a fresh tmpfs of that size; every one is unmounted afterwards."""
    mounts: list[Path] = []

    def mount(size_mb: int) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        target = tmp_path / f"tmpfs{len(mounts)}"
        target.mkdir()
        try:
            result = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(target)],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except FileNotFoundError:
            pytest.skip("no mount command on this machine")
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (EPERM in a container?): {result.stderr}")
        mounts.append(target)
        return target

    try:
        yield mount
    finally:
        for target in reversed(mounts):
            done = subprocess.run(["umount", str(target)], capture_output=True, timeout=30)
            if done.returncode != 0:
                subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def fill(mount: Path, leave_bytes: int) -> None:
    """Take all but about `leave_bytes` of the file system at once (as another program writing a
    big file would), then top it up chunk by chunk."""
    fd = os.open(mount / "filler.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        st = os.statvfs(mount)
        with contextlib.suppress(OSError):
            os.posix_fallocate(fd, 0, max(1, st.f_bavail * st.f_frsize - leave_bytes))
        chunk = bytes(MiB)
        while True:
            st = os.statvfs(mount)
            free = st.f_bavail * st.f_frsize
            if free <= leave_bytes:
                return
            try:
                os.write(fd, chunk[: min(MiB, free - leave_bytes)])
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    return
                raise
    finally:
        os.close(fd)


def _record(data_dir: Path) -> Recording:
    args = record_command(data_dir, "cameras,notes", DURATION_S)
    return Recording(args, data_dir, hang_bound_s=HANG_BOUND_S + 15)


def _problems(rec: Recording, full_ns: int) -> tuple[list[str], str]:
    """What the run broke, and the context a failure message needs."""
    problems = []
    if rec.timed_out:
        problems.append("hang: still running; " + "; ".join(rec.hang_state))
    elif rec.exit_ns is not None and (rec.exit_ns - full_ns) / 1e9 > HANG_BOUND_S:
        problems.append(f"exited {(rec.exit_ns - full_ns) / 1e9:.1f} s after the disk was full")
    if rec.returncode == 0:
        problems.append("exit status 0 on a full disk")
    elif rec.returncode is not None and rec.returncode < 0:
        problems.append(f"the master died of signal {-rec.returncode}")
    output = (rec.stdout + "\n" + rec.stderr).lower()
    if "disk full" not in output:
        problems.append("no line says 'disk full'")
    if rec.survivors:
        problems.append("orphans: " + "; ".join(rec.survivors))
    if "Traceback" in rec.stderr:
        first = rec.stderr.index("Traceback")
        problems.append(f"traceback on stderr: {rec.stderr[first : first + 600]!r}")
    spawned = {m: sum(t.module == m for t in rec.processes()) for m in MODULES}
    if any(n > 2 for n in spawned.values()):
        problems.append(f"modules started again and again: {spawned} processes")
    session = rec.session_dir()
    manifest = None
    verify_text = "no session"
    if session is not None:
        path = session / "session.json"
        if not path.is_file():
            problems.append(f"session folder {session.name} without session.json")
        else:
            text = path.read_text(encoding="utf-8")
            manifest = json.loads(text)
            if "disk full" not in text:
                problems.append("session.json does not say 'disk full'")
            for trial in manifest.get("trials", []):
                if trial.get("status") == "recording":
                    problems.append(f"trial {trial['number']} left 'recording'")
            for name, module in (manifest.get("modules") or {}).items():
                if (module.get("restarts") or 0) > 1:
                    problems.append(f"{name} restarted {module['restarts']} times")
            report, rc, verify_problems = run_verify(session)
            problems += [p for p in verify_problems if "traceback" in p or "JSON" in p]
            verify_text = f"exit {rc}: " + "; ".join(
                f"{f['level']} {f['where']}: {f['message']}"
                for f in (report or {}).get("findings", [])
                if f.get("level") in ("error", "warning")
            )
        problems += check_session_files(session, manifest, crashed=True)
    context = "\n".join(
        [
            f"exit status {rec.returncode}",
            f"session.json: {summarize_manifest(manifest)}",
            f"verify: {verify_text}",
            "stderr (last 30 lines):",
            *[f"  | {line}" for line in rec.stderr.splitlines()[-30:]],
        ]
    )
    return problems, context


@pytest.mark.timeout(120)
def test_disk_nearly_full_before_the_recording(tmpfs: Callable[[int], Path]) -> None:
    mount = tmpfs(6)
    fill(mount, leave_bytes=256 * 1024)
    rec = _record(mount / "data")
    rec.start()
    full_ns = time.monotonic_ns()
    rec.finish()
    problems, context = _problems(rec, full_ns)
    assert not problems, "\n".join(["disk nearly full before the start:", *problems, context])


@pytest.mark.timeout(120)
def test_disk_fills_during_the_trial(tmpfs: Callable[[int], Path]) -> None:
    # Big enough for the master to agree to record (it wants some free space first), then
    # filled at once mid-trial: the writers meet ENOSPC as with a card filling up.
    mount = tmpfs(int(_min_free_mb()) + 48)
    rec = _record(mount / "data")
    rec.start()
    full_ns = time.monotonic_ns()
    try:
        started = rec.wait_for(
            lambda: (
                1 in rec.timeline.starts
                and time.monotonic_ns() > rec.timeline.starts[1] + 700_000_000
            )
        )
        if started:
            fill(mount, leave_bytes=64 * 1024)
            full_ns = time.monotonic_ns()
    finally:
        rec.finish()
    problems, context = _problems(rec, full_ns)
    if not started:
        problems.insert(0, "trial 1 never started (the disk was still empty)")
    assert not problems, "\n".join(["disk filled during trial 1:", *problems, context])
