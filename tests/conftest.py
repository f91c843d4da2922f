"""Shared fixtures: simulated module folders and helpers to run the CLI as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers import make_ticker


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config and state homes: no test touches the user's files."""
    home = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    return home


@pytest.fixture
def module_dir(tmp_path: Path) -> Path:
    """A module folder holding two Ticker modules: `Ticker` and `TickerB`."""
    root = tmp_path / "modules"
    root.mkdir()
    make_ticker(root, "Ticker")
    make_ticker(root, "TickerB")
    return root
