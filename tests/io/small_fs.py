"""A real, tiny file system for disk-full tests: a tmpfs of a few MB mounted for one test.

Mounting needs root (or CAP_SYS_ADMIN); where that is not permitted the test is skipped with
the reason. `fill()` then takes every free byte, so the next write that needs a new page fails
with ENOSPC exactly as on a full SD card.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """Mount a tmpfs of `size` on `path` (created) for the duration of the block."""
    if not sys.platform.startswith("linux"):
        pytest.skip("disk-full tests mount a tmpfs: Linux only")
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs for the disk-full test: {exc}")
    if done.returncode != 0:
        pytest.skip(
            "mounting a tmpfs is not permitted here (needs root): "
            f"{(done.stderr or done.stdout).strip() or done.returncode}"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


def fill(path: Path, name: str = "filler") -> int:
    """Take every free byte of the file system holding `path`; returns the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with open(path / name, "wb", buffering=0) as f:
        while True:
            try:
                n = f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
                continue
            written += n or 0
    assert shutil.disk_usage(path).free < 8192, "file system not full"
    return written


def free_up(path: Path, name: str = "filler") -> None:
    """Give the space taken by `fill` back."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path / name)
