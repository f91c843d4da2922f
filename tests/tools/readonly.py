"""A folder nobody may write in, for tests of clear errors on read-only places."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def read_only_dir(path: Path) -> Iterator[Path]:
    """`path` (created) made read-only for the duration.

    An ordinary user gets mode 0o555. Root ignores modes, so for root a read-only tmpfs is
    mounted there (and unmounted afterwards); the test is skipped when that is not possible.
    """
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root here: {mount.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
