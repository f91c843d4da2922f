"""Typed settings: a module declares its settings and gets checked, typed values.

Example::

    SCHEMA = [
        Setting("fps", int, 30, "frames per second", min=1, max=240),
        Setting("backend", str, "synthetic", "camera backend",
                choices=["picamera2", "opencv", "synthetic"]),
        Setting("device", str, None, "device path; empty for auto-detect"),
    ]
    values = load_settings(module_dir / "config.txt", SCHEMA)

Optional values: a setting whose default is ``None`` is optional (or pass ``optional=True``).
For an optional setting a bare empty value (``device =``) means ``None``; a quoted empty value
(``device = ""``) is the empty string for ``str`` settings. Writing ``None`` with
``write_config`` produces the bare form.

Booleans accept ``true/false``, ``yes/no``, ``on/off``, ``1/0`` in any case. Integers are decimal
(``-12``, ``+3``); floats are finite decimals (``0.5``, ``1e-3``, ``7``).
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .manager import ConfigManager, StrPath, default_manager
from .parser import ConfigEntry, ConfigError, duplicate_warnings, validate_key

__all__ = ["Setting", "load_settings", "load_settings_async", "validate_entries"]

logger = logging.getLogger("rpi_logger.config")

_TYPES = (str, int, float, bool)
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")


def _fmt(x: object) -> str:
    return repr(x) if isinstance(x, str) else str(x)


@dataclass(frozen=True)
class Setting:
    """One declared setting.

    ``type`` is ``str``, ``int``, ``float`` or ``bool``; ``min``/``max`` (inclusive) apply to
    numbers; ``choices`` restricts the value to a set. ``optional`` defaults to
    ``default is None``; an optional setting reads a bare empty value as ``None``.
    """

    name: str
    type: type
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: Sequence[Any] | None = None
    optional: bool | None = field(default=None)

    def __post_init__(self) -> None:
        # Schema mistakes are programming errors: fail at import time, not at recording time.
        validate_key(self.name)
        if self.type not in _TYPES:
            raise TypeError(f"setting {self.name!r}: type must be str, int, float or bool")
        if self.optional is None:
            object.__setattr__(self, "optional", self.default is None)
        if (self.min is not None or self.max is not None) and self.type not in (int, float):
            raise TypeError(f"setting {self.name!r}: min/max only apply to int and float")
        if self.choices is not None:
            choices = tuple(self.choices)
            if not choices:
                raise ValueError(f"setting {self.name!r}: choices must not be empty")
            for c in choices:
                if not self._is_type(c):
                    raise TypeError(
                        f"setting {self.name!r}: choice {c!r} is not {self.type.__name__}"
                    )
            object.__setattr__(self, "choices", choices)
        if self.default is None:
            if not self.optional:
                raise ValueError(f"setting {self.name!r}: default None requires optional=True")
        elif not self._is_type(self.default):
            raise TypeError(
                f"setting {self.name!r}: default {self.default!r} is not {self.type.__name__}"
            )
        elif not self._in_range(self.default):
            raise ValueError(
                f"setting {self.name!r}: default {self.default!r} violates its own "
                f"constraint ({self.expected()})"
            )

    def _is_type(self, value: object) -> bool:
        if self.type is float:
            return isinstance(value, int | float) and not isinstance(value, bool)
        if self.type is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, self.type)

    def _in_range(self, value: Any) -> bool:
        if self.min is not None and value < self.min:
            return False
        if self.max is not None and value > self.max:
            return False
        return self.choices is None or value in self.choices

    def expected(self) -> str:
        """Human description of an acceptable value, e.g. 'an integer between 1 and 240'."""
        if self.choices is not None:
            text = "one of " + ", ".join(_fmt(c) for c in self.choices)
        else:
            text = {
                str: "a string",
                int: "an integer",
                float: "a number",
                bool: "a boolean (true/false, yes/no, on/off, 1/0)",
            }[self.type]
            if self.min is not None and self.max is not None:
                text += f" between {_fmt(self.min)} and {_fmt(self.max)}"
            elif self.min is not None:
                text += f" >= {_fmt(self.min)}"
            elif self.max is not None:
                text += f" <= {_fmt(self.max)}"
        if self.optional:
            text += ", or empty for none"
        return text

    def parse(self, raw: str | None, quoted: bool = False) -> Any:
        """Convert config text to a typed value; raise ValueError(expected()) if invalid.

        ``raw=None`` or a bare (unquoted) empty string means "unset" for optional settings.
        """
        if raw is None or (raw == "" and not quoted):
            if self.optional:
                return None
            if raw is None:
                raise ValueError(self.expected())
        value: Any
        text = raw.strip()
        if self.type is str:
            value = raw
        elif self.type is int:
            if not _INT_RE.match(text):
                raise ValueError(self.expected())
            value = int(text)
        elif self.type is float:
            if not _FLOAT_RE.match(text):
                raise ValueError(self.expected())
            value = float(text)
            if not math.isfinite(value):  # "1e999"
                raise ValueError(self.expected())
        else:
            low = text.lower()
            if low in _TRUE:
                value = True
            elif low in _FALSE:
                value = False
            else:
                raise ValueError(self.expected())
        if not self._in_range(value):
            raise ValueError(self.expected())
        return value


def validate_entries(
    entries: Sequence[ConfigEntry], schema: Sequence[Setting], source: str = "<string>"
) -> dict[str, Any]:
    """Typed values for ``schema`` from parsed entries; defaults fill absent keys.

    Raises ConfigError naming ``source``, line, key, value and expectation for the first bad
    value. Unknown keys are logged as warnings on ``rpi_logger.config``; for a repeated key the
    last line wins, with a warning naming both lines.
    """
    by_name = {s.name: s for s in schema}
    if len(by_name) != len(schema):
        raise ValueError("schema declares the same setting twice")
    values: dict[str, Any] = {s.name: s.default for s in schema}
    for message in duplicate_warnings(entries, source):
        logger.warning("%s", message)
    for entry in entries:
        setting = by_name.get(entry.key)
        if setting is None:
            hint = difflib.get_close_matches(entry.key, by_name, n=1)
            logger.warning(
                "%s:%d: unknown key %r ignored%s",
                source,
                entry.line,
                entry.key,
                f" (did you mean {hint[0]!r}?)" if hint else "",
            )
            continue
        try:
            values[entry.key] = setting.parse(entry.value, entry.quoted)
        except ValueError as exc:
            raise ConfigError(
                f"{source}:{entry.line}: key {entry.key!r} = {entry.value!r}: expected {exc}",
                source=source,
                line=entry.line,
            ) from None
    return values


def load_settings(
    path: StrPath,
    schema: Sequence[Setting],
    *,
    missing_ok: bool = False,
    manager: ConfigManager | None = None,
) -> dict[str, Any]:
    """Read ``path`` and return ``{name: typed value}`` for every setting in ``schema``.

    Absent keys get their defaults; ``missing_ok=True`` treats a missing file as empty.
    Raises ConfigError (a ValueError) for parse errors and bad values.
    """
    mgr = manager or default_manager
    try:
        entries = mgr.read_entries(path)
    except FileNotFoundError:
        if not missing_ok:
            raise
        entries = []
    return validate_entries(entries, schema, os.fspath(path))


async def load_settings_async(
    path: StrPath,
    schema: Sequence[Setting],
    *,
    missing_ok: bool = False,
    manager: ConfigManager | None = None,
) -> dict[str, Any]:
    """Like :func:`load_settings`, with the file read in a worker thread."""
    return await asyncio.to_thread(
        load_settings, path, schema, missing_ok=missing_ok, manager=manager
    )
