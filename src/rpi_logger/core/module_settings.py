"""A module's typed settings as the master sees them: schema, current values, validated writes.

The master never imports a module's code (discovery only parses it), so the schema is asked of
a short-lived child process (`python -m rpi_logger.core.module_settings FOLDER`), once per
module folder and run. Writes are checked against that schema with the same rules config.txt
reading uses, then go to the module's own `config.txt` through `ConfigManager` (comments and
layout kept), so the next start reads them like any hand edit.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from rpi_logger.config import ConfigError, Setting, default_manager, load_settings

SCHEMA_TIMEOUT_S = 30.0


class SettingsError(Exception):
    """Invalid settings, or a module whose schema cannot be read; one line saying why."""


def setting_json(s: Setting) -> dict[str, Any]:
    """One setting's declaration as JSON data."""
    return {
        "name": s.name,
        "type": s.type.__name__,
        "default": s.default,
        "help": s.help,
        "min": s.min,
        "max": s.max,
        "choices": list(s.choices) if s.choices is not None else None,
        "optional": bool(s.optional),
    }


def setting_from_json(d: dict[str, Any]) -> Setting:
    types = {"str": str, "int": int, "float": float, "bool": bool}
    return Setting(
        d["name"],
        types[d["type"]],
        d["default"],
        d.get("help", ""),
        d.get("min"),
        d.get("max"),
        d.get("choices"),
        d.get("optional"),
    )


class ModuleSettings:
    """Schemas (cached per folder) and config.txt reads and writes for every module."""

    def __init__(self) -> None:
        self._schemas: dict[Path, list[Setting]] = {}
        self._lock = asyncio.Lock()

    async def schema(self, folder: Path) -> list[Setting]:
        """The module's settings, common ones first (a child process imports it once)."""
        async with self._lock:
            if folder not in self._schemas:
                self._schemas[folder] = await _ask_schema(folder)
            return self._schemas[folder]

    async def read(self, folder: Path) -> dict[str, Any]:
        """Typed values of the module's config.txt (defaults where a key is absent)."""
        schema = await self.schema(folder)
        try:
            return await asyncio.to_thread(load_settings, folder / "config.txt", schema)
        except (ConfigError, OSError) as exc:
            raise SettingsError(str(exc)) from None

    async def write(self, folder: Path, updates: dict[str, Any]) -> dict[str, Any]:
        """Check `updates` against the schema, write them to config.txt; returns them typed.

        Raises SettingsError naming the first bad key and what it expects; nothing is written
        unless every value is valid.
        """
        by_name = {s.name: s for s in await self.schema(folder)}
        typed: dict[str, Any] = {}
        for key, value in updates.items():
            setting = by_name.get(key)
            if setting is None or key == "name":
                known = ", ".join(sorted(k for k in by_name if k != "name"))
                raise SettingsError(f"unknown setting {key!r} (known: {known})")
            if isinstance(value, bool) and setting.type is not bool:
                raise SettingsError(f"setting {key!r} = {value!r}: expected {setting.expected()}")
            text = ("true" if value else "false") if isinstance(value, bool) else value
            try:
                typed[key] = setting.parse(None if text is None else str(text))
            except ValueError as exc:
                raise SettingsError(f"setting {key!r} = {value!r}: expected {exc}") from None
        try:
            await default_manager.write_config_async(folder / "config.txt", typed)
        except (ConfigError, OSError) as exc:
            raise SettingsError(f"cannot write {folder / 'config.txt'}: {exc}") from None
        return typed


async def _ask_schema(folder: Path) -> list[Setting]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rpi_logger.core.module_settings",
        str(folder),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(SCHEMA_TIMEOUT_S):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        why = f"settings not listed within {SCHEMA_TIMEOUT_S:g} s"
        raise SettingsError(f"{folder}: {why}") from None
    if proc.returncode != 0:
        why = err.decode(errors="replace").strip().splitlines()
        raise SettingsError(f"{folder}: cannot list its settings: {why[-1] if why else '?'}")
    return [setting_from_json(d) for d in json.loads(out)]


def _print_schema(folder: Path) -> None:
    from rpi_logger.framework.base import COMMON_SETTINGS, ModuleContext
    from rpi_logger.framework.discovery import module_name
    from rpi_logger.framework.entry import load_entry

    entry = load_entry(folder)
    module = entry.create_module(ModuleContext(name=module_name(folder), module_dir=folder))  # type: ignore[attr-defined]
    print(json.dumps([setting_json(s) for s in (*COMMON_SETTINGS, *module.settings)]))


if __name__ == "__main__":
    _print_schema(Path(sys.argv[1]))
