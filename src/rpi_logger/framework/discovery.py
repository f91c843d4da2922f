"""Module discovery: built-in modules plus folders named in the master config.

A module is a folder holding a `config.txt` (with `name = ...`, or the folder name is used when
there is no `name` line; an empty name is rejected) and an entry point `main.py` that defines
`create_module(context)`. Discovery never imports a module's code: the entry point is checked by
parsing it, so a broken or slow module cannot break or stall discovery. Each rejected folder is
kept, with the reason, so that whoever asks for it by name can be told why it is unusable.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rpi_logger.config import (
    MAX_CONFIG_BYTES,
    ConfigError,
    ConfigTooLargeError,
    default_manager,
    format_size,
)

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "modules"
CONFIG_FILE = "config.txt"
ENTRY_FILE = "main.py"
ENTRY_FUNCTION = "create_module"


@dataclass(slots=True)
class ModuleSpec:
    """One discovered folder: a valid module, or a rejected folder with the reason.

    A rejected folder is named by its config's `name` when that could be read, else by the
    folder's name. `warnings` are legal but suspicious things in its config (a key set twice).
    """

    name: str
    path: Path
    valid: bool
    reason: str | None = None
    builtin: bool = False
    warnings: list[str] = field(default_factory=list)

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


def _check_entry_point(folder: Path) -> str | None:
    entry = folder / ENTRY_FILE
    if not entry.is_file():
        return f"no entry point ({ENTRY_FILE})"
    try:
        tree = ast.parse(entry.read_bytes(), filename=str(entry))
    except (SyntaxError, ValueError) as exc:
        return f"entry point does not parse: {exc}"
    except OSError as exc:
        return f"entry point cannot be read: {exc.strerror or exc}"
    if not any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == ENTRY_FUNCTION
        for node in tree.body
    ):
        return f"entry point defines no {ENTRY_FUNCTION}(context)"
    return None


@dataclass(slots=True)
class _Inspection:
    """What one look at a folder found: the reason it is unusable (None if usable), the config
    (when it could be read) and the config's warnings."""

    reason: str | None
    config: dict[str, str] | None = None
    warnings: list[str] = field(default_factory=list)


def _inspect(folder: Path) -> _Inspection:
    folder = Path(folder)
    config_path = folder / CONFIG_FILE
    try:
        if not folder.is_dir():
            return _Inspection("not a folder")
        if not config_path.is_file():
            return _Inspection(f"no {CONFIG_FILE}")
    except OSError as exc:
        return _Inspection(f"cannot be read: {exc.strerror or exc}")
    try:
        doc = default_manager.read_document(config_path)
    except ConfigTooLargeError as exc:
        reason = (
            f"{CONFIG_FILE} is {format_size(exc.size)}; "
            f"the limit is {format_size(MAX_CONFIG_BYTES)}"
        )
        return _Inspection(reason)
    except ConfigError as exc:
        return _Inspection(f"config does not parse: {exc}")
    except OSError as exc:
        return _Inspection(f"config cannot be read: {exc.strerror or exc}")
    config = doc.to_dict()
    reason = None
    if "name" in config and not config["name"].strip():
        reason = f"name is empty (in {CONFIG_FILE}; remove the line to use the folder's name)"
    return _Inspection(reason or _check_entry_point(folder), config, doc.warnings())


def validate_module_structure(folder: Path) -> str | None:
    """None when `folder` is a loadable module, else the reason it is not."""
    return _inspect(folder).reason


def load_module_config(folder: Path) -> dict[str, str]:
    """The module's `config.txt` as raw strings (typed loading is the module's job)."""
    return default_manager.read_config(Path(folder) / CONFIG_FILE)


def module_name(folder: Path, config: dict[str, str] | None = None) -> str:
    """The name a module is known by: its config's `name`, else the folder's name."""
    if config is None:
        try:
            config = load_module_config(folder)
        except (ConfigError, OSError):
            config = {}
    return (config.get("name") or "").strip() or Path(folder).name


def _candidates(directory: Path) -> Iterable[tuple[Path, str | None]]:
    """A directory is a module itself (it has config.txt) or holds module folders.

    Yields (folder, None), or (directory, reason) when the directory cannot be looked into.
    """
    try:
        if (directory / CONFIG_FILE).exists():
            yield directory, None
            return
        if not directory.is_dir():
            yield directory, None  # reported as "not a folder"
            return
        children = sorted(directory.iterdir())
    except OSError as exc:
        yield directory, f"cannot be read: {exc.strerror or exc}"
        return
    for child in children:
        try:
            if child.is_dir() and not child.name.startswith((".", "_")):
                yield child, None
        except OSError as exc:
            yield child, f"cannot be read: {exc.strerror or exc}"


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
        for folder, unreadable in _candidates(directory):
            if builtin and not (folder / CONFIG_FILE).exists():
                continue  # package folders that are not modules (e.g. __pycache__)
            found_ = _Inspection(unreadable) if unreadable else _inspect(folder)
            reason = found_.reason
            name = module_name(folder, found_.config or {})
            key = name.lower()
            if reason is None and key in seen:
                reason = f"name clash: {name!r} is already provided by {seen[key]}"
            if reason is None:
                seen[key] = folder
            found.append(ModuleSpec(name, folder, reason is None, reason, builtin, found_.warnings))
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
    try:
        is_module_folder = as_path.is_dir() and (as_path / CONFIG_FILE).exists()
    except (OSError, ValueError):  # e.g. a name too long to be a path: it is a module name
        is_module_folder = False
    if is_module_folder:
        found = _inspect(as_path)
        if found.reason:
            raise LookupError(f"{as_path}: {found.reason}")
        return ModuleSpec(
            module_name(as_path, found.config), as_path.resolve(), True, warnings=found.warnings
        )
    specs = discover_modules(extra_dirs)
    spec = lookup(specs, name_or_path)
    if spec is None:
        names = ", ".join(s.name for s in specs if s.valid)
        raise LookupError(f"no module named {name_or_path!r} (available: {names})")
    if not spec.valid:
        raise LookupError(f"module {spec.name!r} is rejected: {spec.reason}")
    return spec


def lookup(specs: Iterable[ModuleSpec], name: str) -> ModuleSpec | None:
    """The spec the user means by `name` (any case): the valid module of that name, else a
    rejected folder of that name (config name or folder name), so that the caller can say why
    it cannot be used; None when nothing is called that."""
    specs = list(specs)
    wanted = name.strip().lower()
    for spec in specs:
        if spec.valid and spec.name.lower() == wanted:
            return spec
    for spec in specs:
        if not spec.valid and wanted in (spec.name.lower(), spec.path.name.lower()):
            return spec
    return None
