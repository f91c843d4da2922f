"""Persistent master state: which modules are enabled and their settings and UI choices.

Kept as JSON under the user's config folder (`$XDG_CONFIG_HOME/rpi-logger/state.json`), replaced
atomically on every change, and restored when the master starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rpi_logger.core.master_config import config_home
from rpi_logger.io.atomic import atomic_write_text

log = logging.getLogger("rpi_logger.state")
STATE_VERSION = 1


@dataclass(slots=True)
class MasterState:
    enabled: list[str] = field(default_factory=list)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # module -> overrides
    ui: dict[str, dict[str, Any]] = field(default_factory=dict)  # module -> window/UI choices


def default_state_path() -> Path:
    return config_home() / "state.json"


def load_state(path: Path | None = None) -> MasterState:
    """The saved state; a missing or unreadable file gives a fresh state (with a warning)."""
    path = path or default_state_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return MasterState()
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable state file %s: %s", path, exc)
        return MasterState()
    if not isinstance(data, dict):
        log.warning("ignoring state file %s: not a JSON object", path)
        return MasterState()
    enabled = [str(n) for n in data.get("enabled", []) if isinstance(n, str)]
    settings = {k: v for k, v in (data.get("settings") or {}).items() if isinstance(v, dict)}
    ui = {k: v for k, v in (data.get("ui") or {}).items() if isinstance(v, dict)}
    return MasterState(enabled, settings, ui)


def save_state(state: MasterState, path: Path | None = None) -> None:
    path = path or default_state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"version": STATE_VERSION, **asdict(state)}, indent=2))


async def load_state_async(path: Path | None = None) -> MasterState:
    return await asyncio.to_thread(load_state, path)


async def save_state_async(state: MasterState, path: Path | None = None) -> None:
    # Snapshot on the loop: the thread must not read a state that is being changed.
    snapshot = MasterState(
        list(state.enabled),
        json.loads(json.dumps(state.settings)),
        json.loads(json.dumps(state.ui)),
    )
    await asyncio.to_thread(save_state, snapshot, path)
