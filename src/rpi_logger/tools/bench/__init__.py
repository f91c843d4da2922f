"""`rpi-logger bench`: the non-blocking promise measured beside naive code (design.md §10).

    rpi-logger bench [--duration 60] [--rig full] [--json PATH] [--keep DIR]

The idle floor alone, then the rig through the real master, HTTP server and module processes in
non-blocking mode, then again with the sinks in blocking mode; a table at the end, everything in
`--json`. How each figure is measured: docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rpi_logger.tools.bench.report import format_table
from rpi_logger.tools.bench.rigs import RIGS
from rpi_logger.tools.bench.runner import MODES, BenchError, run_bench

__all__ = ["add_arguments", "run"]


def _modes(text: str) -> tuple[str, ...]:
    names = tuple(n.strip().replace("-", "_") for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in MODES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(MODES)}; got {text!r}")
    return names


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected 1 to 3600 seconds, got {text}")
    return value


def _latency(text: str) -> str:
    """`flush=MS,fsync=MS`, checked here so a typo fails before anything starts."""
    values = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        try:
            values[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or key.strip() not in ("flush", "fsync") or values[key.strip()] < 0:
            raise argparse.ArgumentTypeError(f"expected e.g. flush=5,fsync=50 (ms), got {text!r}")
    if not values:
        raise argparse.ArgumentTypeError(f"expected e.g. flush=5,fsync=50 (ms), got {text!r}")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `bench` subcommand's options."""
    parser.add_argument(
        "--duration",
        type=_seconds,
        default=60.0,
        metavar="S",
        help="seconds per phase: the floor alone, each mode (60)",
    )
    parser.add_argument("--rig", choices=list(RIGS), default="full", help="what records (full)")
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="write every figure here"
    )
    parser.add_argument(
        "--modes",
        type=_modes,
        default=tuple(MODES),
        help="comma-separated: non-blocking,blocking (both)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the sessions and logs in this folder",
    )
    parser.add_argument(
        "--sink-latency",
        type=_latency,
        default=None,
        metavar="flush=MS,fsync=MS",
        help="add a simulated storage latency to every flush/fsync (as on an SD card)",
    )
    parser.add_argument(
        "--progress",
        choices=["auto", "always", "never"],
        default="auto",
        help="progress bar on stderr (auto: only on a terminal)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the bench, print the table; 0 when it ran to its end (targets met or not)."""
    from tqdm import tqdm

    rig = RIGS[args.rig]
    if args.json is not None and not args.json.parent.is_dir():
        print(f"rpi-logger bench: no folder {args.json.parent} for --json", file=sys.stderr)
        return 2
    total = args.duration * (1 + len(args.modes))
    disable = {"auto": None, "always": False, "never": True}[args.progress]
    bar = tqdm(
        total=round(total), unit="s", file=sys.stderr, disable=disable, bar_format=(
            "{desc}: {bar} {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]"
        ),
    )  # fmt: skip
    offsets: dict[str, float] = {}

    def tick(what: str, done: float) -> None:
        base = offsets.setdefault(what, args.duration * len(offsets))
        bar.set_description_str(what, refresh=False)
        bar.n = min(total, base + done)
        bar.refresh()

    try:
        result = run_bench(
            rig,
            args.duration,
            modes=args.modes,
            keep=args.keep,
            sink_latency=args.sink_latency,
            tick=tick,
        )
    except BenchError as exc:
        bar.close()
        print(f"rpi-logger bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.close()
        print("rpi-logger bench: interrupted", file=sys.stderr)
        return 130
    bar.close()
    result["command"] = " ".join(["rpi-logger", *sys.argv[1:]])
    print(format_table(result))
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        except OSError as exc:
            print(f"rpi-logger bench: cannot write {args.json}: {exc.strerror}", file=sys.stderr)
            return 1
    return 0
