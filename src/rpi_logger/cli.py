"""Command line entry point (`rpi-logger`, `python -m rpi_logger`); design.md: Command line."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import math
import os
import signal
import sys
import tempfile
from pathlib import Path

from rpi_logger import __version__
from rpi_logger.config import ConfigError


def _module_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one module")
    return names


def _setting(text: str) -> tuple[str, str, str]:
    target, sep, value = text.partition("=")
    module, dot, key = target.partition(".")
    if not (sep and dot and module.strip() and key.strip()):
        raise argparse.ArgumentTypeError(f"expected MODULE.KEY=VALUE, got {text!r}")
    return module.strip(), key.strip(), value.strip()


def _positive(kind: type) -> object:
    def parse(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    return parse


#: The longest trial `record --duration` accepts: a week, far beyond any real session.
MAX_DURATION_S = 7 * 24 * 3600.0


def _duration(text: str) -> float:
    """Seconds per trial: a finite number greater than 0 and at most MAX_DURATION_S."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0 or value > MAX_DURATION_S:
        raise argparse.ArgumentTypeError(
            f"expected seconds greater than 0 and at most {MAX_DURATION_S:.0f} (7 days), "
            f"got {text!r}"
        )
    return value


class DataDirError(Exception):
    """The data folder cannot hold sessions; the message is one line naming it and why."""


def check_data_dir(path: Path) -> None:
    """Make sure sessions can be written under `path`: create it, create and remove a probe file.

    Raises DataDirError naming the folder and the cause. A full disk is not an error here (the
    master checks free space itself, with a clearer message).
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DataDirError(f"{path}: is a file, not a folder") from None
    except NotADirectoryError:
        raise DataDirError(f"{path}: a part of this path is a file, not a folder") from None
    except OSError as exc:
        raise DataDirError(f"{path}: cannot create the folder: {_why(exc)}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".rpi-logger-probe-", dir=path)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return
        raise DataDirError(f"{path}: cannot write in this folder: {_why(exc)}") from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError as exc:
        raise DataDirError(f"{path}: cannot remove files in this folder: {_why(exc)}") from None


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 0 and 65535, got {value}")
    return value


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on (default 127.0.0.1; any other needs the token)",
    )
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help="port (default 8080)")
    parser.add_argument("--data-dir", type=Path, default=None, help="where sessions go")
    parser.add_argument("--simulate", action="store_true", help="simulated devices only")
    parser.add_argument(
        "--set",
        action="append",
        type=_setting,
        default=[],
        metavar="MODULE.KEY=VALUE",
        help="override a module setting for this run, e.g. cameras.fps=15",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpi-logger", description="Synchronized multi-sensor data logger."
    )
    parser.add_argument("--version", action="version", version=f"rpi-logger {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="master config file (default: $XDG_CONFIG_HOME/rpi-logger/config.txt)",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="console log level",
    )
    sub = parser.add_subparsers(dest="command")
    # Options shared by the commands that look for modules.
    finding = argparse.ArgumentParser(add_help=False)
    finding.add_argument(
        "--module-dir",
        action="append",
        type=Path,
        default=[],
        help="extra folder holding module folders (repeatable)",
    )

    rec = sub.add_parser("record", parents=[finding], help="record one session headless, then exit")
    rec.add_argument(
        "--modules",
        type=_module_list,
        required=True,
        help="comma-separated module names, e.g. cameras,notes",
    )
    rec.add_argument(
        "--duration",
        type=_duration,
        required=True,
        help="seconds per trial (greater than 0, at most 7 days)",
    )
    rec.add_argument("--trials", type=_positive(int), default=1, help="number of trials (1)")
    rec.add_argument("--label", default=None, help="session label (part of the folder name)")
    rec.add_argument("--data-dir", type=Path, default=None, help="where the session goes")
    rec.add_argument("--simulate", action="store_true", help="simulated devices only")
    rec.add_argument(
        "--set",
        action="append",
        type=_setting,
        default=[],
        metavar="MODULE.KEY=VALUE",
        help="override a module setting for this run, e.g. cameras.encoder=ffmpeg",
    )

    srv = sub.add_parser(
        "serve", parents=[finding], help="the master with the web UI and HTTP API (the default)"
    )
    add_serve_arguments(srv)

    nte = sub.add_parser("note", help="add a note to a running master (through its HTTP API)")
    nte.add_argument("text", help="the note's text")
    nte.add_argument("--url", default=None, help=f"the master's address (default {DEFAULT_URL})")
    nte.add_argument(
        "--token",
        default=None,
        help="the master's token (default: $RPI_LOGGER_TOKEN, else the token file the master "
        "made in the config folder)",
    )

    mods = sub.add_parser(
        "modules", parents=[finding], help="list discovered modules and why any were rejected"
    )
    mods.add_argument("--json", action="store_true", help="a JSON array, one object per folder")

    ver = sub.add_parser("verify", help="check a session folder against its manifest")
    ver.add_argument("session", type=Path, help="the session folder")
    ver.add_argument("--json", action="store_true", help="the report as JSON")
    ver.add_argument(
        "--repair",
        action="store_true",
        help="also repair what a crash left behind (a WAV header), never touching samples",
    )

    from rpi_logger.framework import entry

    mod = sub.add_parser(
        "module", parents=[finding], help="run one module process (standalone for debugging)"
    )
    entry.add_arguments(mod)

    try:
        from rpi_logger.tools import remux
    except ImportError:  # pragma: no cover - remux lands with the video pipeline
        remux = None
    if remux is not None:
        rmx = sub.add_parser("remux", help="rewrite a video's timestamps from its timing CSV")
        remux.add_arguments(rmx)

    from rpi_logger.tools import bench

    bch = sub.add_parser(
        "bench", help="the simulated rig, non-blocking and blocking, measured side by side"
    )
    bench.add_arguments(bch)

    ovl = sub.add_parser(
        "overlay", help="gaze-overlay copies of the eye tracker's scene videos, made afterwards"
    )
    ovl.add_argument("session", type=Path, help="the session folder")
    ovl.add_argument("--force", action="store_true", help="replace overlay videos that exist")

    from rpi_logger.tools import export_xdf

    exp = sub.add_parser(
        "export", help="every stream of a session in one XDF file (pyxdf reads it)"
    )
    export_xdf.add_arguments(exp)
    return parser


def _master_settings(args: argparse.Namespace) -> dict:
    from rpi_logger.core.master_config import check_config_file, load_master_settings

    if args.config is not None and not check_config_file(args.config):
        print(f"rpi-logger: config file {args.config} not found; using defaults", file=sys.stderr)
    settings = load_master_settings(args.config)
    if args.log_level:
        settings["log_level"] = args.log_level
    return settings


def cmd_modules(args: argparse.Namespace) -> int:
    from rpi_logger.framework.discovery import discover_modules

    settings = _master_settings(args)
    specs = discover_modules([*settings["module_dirs"], *args.module_dir])
    if args.json:
        rows = [
            {
                "name": s.name,
                "path": str(s.path),
                "valid": s.valid,
                "reason": s.reason,
                "warnings": s.warnings,
            }
            for s in specs
        ]
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(s.name) for s in specs), default=4)
    for s in specs:
        verdict = "ok" if s.valid else f"rejected: {s.reason}"
        print(f"{s.name:<{width}}  {verdict:<10}  {s.path}")
        for warning in s.warnings:
            print(f"{'':<{width}}  warning: {warning}")
    return 0


def _rejected_modules(names: list[str], module_dirs: list[Path]) -> list[str]:
    """Why each asked-for module that discovery rejected cannot be used (before any starts).

    Same words as the master's own lookup: `module 'X' is rejected: <reason>`. Names nothing
    knows are left to the master, which lists the available modules.
    """
    from rpi_logger.framework.discovery import discover_modules, lookup

    specs = discover_modules(module_dirs)
    problems = []
    for name in names:
        spec = lookup(specs, name)
        if spec is not None and not spec.valid:
            problems.append(f"module {spec.name!r} is rejected: {spec.reason}")
    return problems


def cmd_record(args: argparse.Namespace) -> int:
    from rpi_logger.core.master import MasterConfig
    from rpi_logger.core.recorder import RecordPlan, record
    from rpi_logger.logging_setup import default_log_file, setup_logging

    settings = _master_settings(args)
    module_dirs = [*settings["module_dirs"], *args.module_dir]
    rejected = _rejected_modules(args.modules, module_dirs)
    if rejected:
        for line in rejected:
            print(f"rpi-logger record: {line}", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir or settings["data_dir"]).expanduser()
    try:
        check_data_dir(data_dir)  # before any module starts
    except DataDirError as exc:
        print(f"rpi-logger record: data folder {exc}", file=sys.stderr)
        return 2
    # Module processes log through the master, so this one rotating file holds every process.
    setup_logging("master", settings["log_level"], default_log_file())
    plan = RecordPlan(args.modules, args.duration, args.trials, args.label, args.set)
    config = MasterConfig(
        data_dir=data_dir,
        module_dirs=module_dirs,
        lead_time_ms=settings["lead_time_ms"],
        simulate=args.simulate,
        log_level=settings["log_level"],
        min_free_mb=settings["min_free_mb"],
    )
    try:
        return asyncio.run(record(plan, config))
    finally:
        # The session is closed by now: a late Ctrl-C (or SIGTERM) while the interpreter exits
        # (joining the log thread) must not end in a traceback or a signal death.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def cmd_serve(args: argparse.Namespace) -> int:
    from rpi_logger.core.master import MasterConfig
    from rpi_logger.logging_setup import default_log_file, setup_logging
    from rpi_logger.web.server import serve_forever

    settings = _master_settings(args)
    data_dir = Path(args.data_dir or settings["data_dir"]).expanduser()
    try:
        check_data_dir(data_dir)
    except DataDirError as exc:
        print(f"rpi-logger serve: data folder {exc}", file=sys.stderr)
        return 2
    setup_logging("master", settings["log_level"], default_log_file())
    overrides: dict[str, dict[str, str]] = {}
    for module, key, value in args.set:
        overrides.setdefault(module, {})[key] = value
    config = MasterConfig(
        data_dir=data_dir,
        module_dirs=[*settings["module_dirs"], *args.module_dir],
        lead_time_ms=settings["lead_time_ms"],
        simulate=args.simulate,
        log_level=settings["log_level"],
        min_free_mb=settings["min_free_mb"],
        overrides=overrides,
    )
    try:
        return asyncio.run(serve_forever(config, args.host, args.port))
    except OSError as exc:
        print(f"rpi-logger serve: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def cmd_note(args: argparse.Namespace) -> int:
    """POST the note to the master's API, with the token given, or in $RPI_LOGGER_TOKEN, or in
    the token file the master made (a master on another machine: pass its token)."""
    import urllib.error
    import urllib.request

    from rpi_logger.web.security import read_token, token_path

    url = (args.url or DEFAULT_URL).rstrip("/") + "/api/v1/notes"
    headers = {"Content-Type": "application/json"}
    token = args.token or os.environ.get("RPI_LOGGER_TOKEN") or read_token(token_path())
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url, data=json.dumps({"text": args.text}).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            note = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except ValueError:
            detail = exc.reason
        print(f"rpi-logger note: {detail}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        print(f"rpi-logger note: no master at {args.url or DEFAULT_URL}: {why}", file=sys.stderr)
        return 1
    trial = f" (trial {note['trial']})" if note.get("trial") else ""
    print(f"note {note['note_index']} saved at {note['wall_iso']}{trial}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from rpi_logger.tools.verify import format_report, verify_session

    report = verify_session(args.session, repair=args.repair)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(format_report(report))
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        try:
            return _main(argv)
        finally:
            # Inside the try (also after --help's SystemExit): a closed pipe shows up here.
            sys.stdout.flush()
    except KeyboardInterrupt:  # Ctrl-C before a command installed its own handling
        print("rpi-logger: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`rpi-logger modules --json | head -1`). As the Python docs
        # recommend: point stdout at devnull so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by a closed pipe


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # No command: the logger itself, with its defaults (`serve`).
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "serve"])
    try:
        match args.command:
            case "modules":
                return cmd_modules(args)
            case "record":
                return cmd_record(args)
            case "serve":
                return cmd_serve(args)
            case "note":
                return cmd_note(args)
            case "verify":
                return cmd_verify(args)
            case "module":
                from rpi_logger.framework import entry

                settings = _master_settings(args)
                args.log_level = settings["log_level"]
                args.module_dir = [*settings["module_dirs"], *args.module_dir]
                return entry.run(args)
            case "bench":
                from rpi_logger.tools import bench

                return bench.run(args)
            case "remux":
                from rpi_logger.tools import remux

                return remux.run(args)
            case "overlay":
                from rpi_logger.tools import overlay  # type: ignore[attr-defined]

                return overlay.run(args)
            case "export":
                from rpi_logger.tools import export_xdf

                return export_xdf.main(args)
    except ConfigError as exc:
        print(f"rpi-logger: config error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise
    except OSError as exc:
        # Last resort for file errors no command foresaw: one line, never a traceback.
        print(f"rpi-logger: {exc}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command}")
    return 2
