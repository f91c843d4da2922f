"""``config.txt`` handling: parsing, layout-preserving atomic writes and typed settings.

The file format and its quoting rules are documented in :mod:`rpi_logger.config.parser`; the
locking and atomic-write design in :mod:`rpi_logger.config.manager`; typed settings in
:mod:`rpi_logger.config.settings`.

The module-level functions use one shared :class:`ConfigManager` (``default_manager``).
"""

from __future__ import annotations

from collections.abc import Mapping

from .manager import ConfigManager, StrPath, default_manager, lock_path_for, to_config_value
from .parser import (
    MAX_CONFIG_BYTES,
    ConfigDocument,
    ConfigEntry,
    ConfigError,
    ConfigTooLargeError,
    duplicate_warnings,
    format_size,
    format_value,
    parse_config,
)
from .settings import Setting, load_settings, load_settings_async, validate_entries

__all__ = [
    "MAX_CONFIG_BYTES",
    "ConfigDocument",
    "ConfigEntry",
    "ConfigError",
    "ConfigManager",
    "ConfigTooLargeError",
    "Setting",
    "default_manager",
    "duplicate_warnings",
    "format_size",
    "format_value",
    "load_settings",
    "load_settings_async",
    "lock_path_for",
    "parse_config",
    "read_config",
    "read_config_async",
    "read_entries",
    "to_config_value",
    "validate_entries",
    "write_config",
    "write_config_async",
]


def read_config(path: StrPath) -> dict[str, str]:
    """``default_manager.read_config``: ``{key: value}`` of ``path``."""
    return default_manager.read_config(path)


def read_entries(path: StrPath) -> list[ConfigEntry]:
    """``default_manager.read_entries``: entries of ``path`` with line numbers."""
    return default_manager.read_entries(path)


def write_config(path: StrPath, updates: Mapping[str, object]) -> None:
    """``default_manager.write_config``: update ``path`` in place, atomically and serialized.

    Safe on the event loop's thread: costs a read of a small file, a write and 2 fsyncs, plus
    waiting for writers of the same file queued before it.
    """
    default_manager.write_config(path, updates)


async def read_config_async(path: StrPath) -> dict[str, str]:
    """``default_manager.read_config_async``: read in a worker thread."""
    return await default_manager.read_config_async(path)


async def write_config_async(path: StrPath, updates: Mapping[str, object]) -> None:
    """``default_manager.write_config_async``: whole locked update in one worker thread."""
    await default_manager.write_config_async(path, updates)
