"""Module process entry: `rpi-logger module NAME|PATH [--data-dir D] [--simulate] [--supervised]`.

Finds the module folder, imports its `main.py`, asks `create_module(context)` for the module and
runs it under `ModuleRuntime`. Without `--supervised` it is the standalone debugging mode: type
commands on stdin, JSON or shorthand (`start_session`, `start_trial label=x`, `stop_trial`,
`status`, `quit`).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

from rpi_logger.config import ConfigError, load_settings_async
from rpi_logger.framework.discovery import BUILTIN_DIR, find_module
from rpi_logger.logging_setup import default_log_file, setup_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("module", help="module name (any case) or path of a module folder")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where standalone sessions go (default: current folder)",
    )
    parser.add_argument("--simulate", action="store_true", help="use simulated devices")
    parser.add_argument(
        "--supervised",
        action="store_true",
        help="run under the master (strict protocol, no shorthand)",
    )
    parser.add_argument(
        "--master-configures",
        action="store_true",
        help="wait for the master's configure instead of configuring from config.txt at start",
    )
    parser.add_argument(
        "--debug-loop",
        action="store_true",
        help="asyncio debug mode: name slow callbacks in the log",
    )


def load_entry(path: Path) -> object:
    """Import a module folder's main.py (built-ins as package modules, so imports work)."""
    path = path.resolve()
    if path.parent == BUILTIN_DIR:
        return importlib.import_module(f"rpi_logger.modules.{path.name}.main")
    unique = f"rpi_logger_ext_{path.name}_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(unique, path / "main.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path / 'main.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    spec.loader.exec_module(module)
    return module


def run(args: argparse.Namespace) -> int:
    # Imported here: `rpi-logger --help` must not pay for the runtime's imports.
    from rpi_logger.framework.base import COMMON_SETTINGS, Module, ModuleContext
    from rpi_logger.framework.runtime import run_module

    try:
        spec = find_module(args.module, args.module_dir)
    except LookupError as exc:
        print(f"rpi-logger module: {exc}", file=sys.stderr)
        return 2
    # Supervised, the master keeps our lines in its log; standalone, we keep our own file.
    log_file = None if args.supervised else default_log_file(f"module-{spec.name}")
    setup_logging(spec.name, args.log_level, log_file, relay=args.supervised)
    entry = load_entry(spec.path)
    context = ModuleContext(
        name=spec.name,
        module_dir=spec.path,
        simulate=args.simulate,
        supervised=args.supervised,
        data_dir=args.data_dir,
    )
    module: Module = entry.create_module(context)  # type: ignore[attr-defined]
    schema = [*COMMON_SETTINGS, *module.settings]

    async def settings() -> dict:
        return await load_settings_async(spec.config_path, schema)

    try:
        return run_module(
            module,
            settings,
            debug=args.debug_loop,
            configure_at_start=not args.master_configures,
        )
    except ConfigError as exc:
        print(f"rpi-logger module {spec.name}: {exc}", file=sys.stderr)
        return 2
