"""Module discovery: built-in modules plus folders named in the master config.

A module is a folder holding a `config.txt` (with at least `name = ...`, or the folder name is
used) and an entry point `main.py` that defines `create_module(context)`. Discovery never imports
a module's code: the entry point is checked by parsing it, so a broken or slow module cannot
break or stall discovery. Each rejected folder gets a reason.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from rpi_logger.config import ConfigError, read_config

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "modules"
CONFIG_FILE = "config.txt"
ENTRY_FILE = "main.py"
ENTRY_FUNCTION = "create_module"


@dataclass(slots=True)
class ModuleSpec:
    """One discovered folder: a valid module, or a rejected folder with the reason."""

    name: str
    path: Path
    valid: bool
    reason: str | None = None
    builtin: bool = False

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def entry_path(self) -> Path:
        return self.path / ENTRY_FILE

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def validate_module_structure(folder: Path) -> str | None:
    """None when `folder` is a loadable module, else the reason it is not."""
    folder = Path(folder)
    if not folder.is_dir():
        return "not a folder"
    if not (folder / CONFIG_FILE).is_file():
        return f"no {CONFIG_FILE}"
    entry = folder / ENTRY_FILE
    if not entry.is_file():
        return f"no entry point ({ENTRY_FILE})"
    try:
        tree = ast.parse(entry.read_bytes(), filename=str(entry))
    except (SyntaxError, ValueError) as exc:
        return f"entry point does not parse: {exc}"
    if not any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == ENTRY_FUNCTION
        for node in tree.body
    ):
        return f"entry point defines no {ENTRY_FUNCTION}(context)"
    try:
        load_module_config(folder)
    except ConfigError as exc:
        return f"config does not parse: {exc}"
    except OSError as exc:
        return f"config cannot be read: {exc}"
    return None


def load_module_config(folder: Path) -> dict[str, str]:
    """The module's `config.txt` as raw strings (typed loading is the module's job)."""
    return read_config(Path(folder) / CONFIG_FILE)


def module_name(folder: Path, config: dict[str, str] | None = None) -> str:
    """The name a module is known by: its config's `name`, else the folder's name."""
    if config is None:
        try:
            config = load_module_config(folder)
        except (ConfigError, OSError):
            config = {}
    return (config.get("name") or "").strip() or Path(folder).name


def _candidates(directory: Path) -> Iterable[Path]:
    """A directory is a module itself (it has config.txt) or holds module folders."""
    if (directory / CONFIG_FILE).exists():
        yield directory
        return
    if not directory.is_dir():
        yield directory  # reported as "not a folder"
        return
    for child in sorted(directory.iterdir()):
        if child.is_dir() and not child.name.startswith((".", "_")):
            yield child


def discover_modules(
    extra_dirs: Iterable[Path | str] = (), *, include_builtin: bool = True
) -> list[ModuleSpec]:
    """Every candidate folder, valid or not. Built-ins win name clashes; later folders lose."""
    found: list[ModuleSpec] = []
    seen: dict[str, Path] = {}
    sources: list[tuple[Path, bool]] = []
    if include_builtin:
        sources.append((BUILTIN_DIR, True))
    sources += [(Path(d).expanduser().resolve(), False) for d in extra_dirs]
    for directory, builtin in sources:
        for folder in _candidates(directory):
            if builtin and not (folder / CONFIG_FILE).exists():
                continue  # package folders that are not modules (e.g. __pycache__)
            reason = validate_module_structure(folder)
            name = module_name(folder) if reason is None else folder.name
            key = name.lower()
            if reason is None and key in seen:
                reason = f"name clash: {name!r} is already provided by {seen[key]}"
            if reason is None:
                seen[key] = folder
            found.append(ModuleSpec(name, folder, reason is None, reason, builtin))
    return found


async def discover_modules_async(
    extra_dirs: Iterable[Path | str] = (), *, include_builtin: bool = True
) -> list[ModuleSpec]:
    """`discover_modules` on a worker thread: it reads many small files."""
    dirs = list(extra_dirs)
    return await asyncio.to_thread(discover_modules, dirs, include_builtin=include_builtin)


async def validate_module_structure_async(folder: Path) -> str | None:
    return await asyncio.to_thread(validate_module_structure, folder)


async def load_module_config_async(folder: Path) -> dict[str, str]:
    return await asyncio.to_thread(load_module_config, folder)


def find_module(name_or_path: str, extra_dirs: Iterable[Path | str] = ()) -> ModuleSpec:
    """The valid module called `name_or_path` (any case), or the module folder at that path.

    Raises LookupError with the reason when there is none.
    """
    as_path = Path(name_or_path).expanduser()
    if as_path.is_dir() and (as_path / CONFIG_FILE).exists():
        reason = validate_module_structure(as_path)
        if reason:
            raise LookupError(f"{as_path}: {reason}")
        return ModuleSpec(module_name(as_path), as_path.resolve(), True)
    specs = discover_modules(extra_dirs)
    for spec in specs:
        if spec.valid and spec.name.lower() == name_or_path.lower():
            return spec
    names = ", ".join(s.name for s in specs if s.valid)
    raise LookupError(f"no module named {name_or_path!r} (available: {names})")
