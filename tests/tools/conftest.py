"""A real recorded session, shared by the verify tests (recording it takes a few seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.helpers import run_cli


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real session: Ticker (100 Hz CSV), Notes and one simulated camera, one trial."""
    root = tmp_path_factory.mktemp("verify")
    modules = root / "modules"
    shutil.copytree(
        Path(__file__).parents[1] / "fixtures" / "modules" / "ticker", modules / "ticker"
    )
    result = run_cli(
        "record",
        "--modules",
        "ticker,cameras,notes",
        "--duration",
        "1.5",
        "--simulate",
        "--data-dir",
        str(root / "data"),
        "--module-dir",
        str(modules),
        "--set",
        "cameras.synthetic_count=1",
        "--set",
        "cameras.width=640",
        "--set",
        "cameras.height=480",
        env={"XDG_STATE_HOME": str(root / "state"), "XDG_CONFIG_HOME": str(root / "config")},
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.split()[-1])


@pytest.fixture
def session(recorded: Path, tmp_path: Path) -> Path:
    """A private copy of the recorded session, free to damage."""
    copy = tmp_path / recorded.name
    shutil.copytree(recorded, copy)
    return copy
