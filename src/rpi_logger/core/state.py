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


class StateError(OSError):
    """The state file cannot be written (read-only or missing folder, full disk...).

    An OSError, so callers that already handle file errors keep working; the message is one
    line naming the file and the cause.
    """


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
    except OSError as exc:
        log.warning("ignoring unreadable state file %s (%s); using defaults", path, _why(exc))
        return MasterState()
    except (ValueError, RecursionError) as exc:
        log.warning("ignoring state file %s: not valid JSON (%s); using defaults", path, exc)
        return MasterState()
    if not isinstance(data, dict):
        log.warning("ignoring state file %s: not a JSON object; using defaults", path)
        return MasterState()
    names = data.get("enabled")
    enabled = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
    return MasterState(enabled, _table(data.get("settings")), _table(data.get("ui")))


def _table(value: object) -> dict[str, dict[str, Any]]:
    """`{module: {...}}` entries of a loaded state, dropping anything of another shape."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, dict)}


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def save_state(state: MasterState, path: Path | None = None) -> None:
    """Write the state atomically. Raises StateError (logged as one line) when it cannot."""
    path = path or default_state_path()
    text = json.dumps({"version": STATE_VERSION, **asdict(state)}, indent=2)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except OSError as exc:
        message = f"cannot save the module state to {path}: {_why(exc)}"
        log.error("%s", message)
        raise StateError(message) from None


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
