"""Helpers for tests: simulated module folders and running the CLI as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
TICKER = FIXTURES / "modules" / "ticker"


def make_ticker(folder: Path, name: str = "Ticker", **settings: object) -> Path:
    """A copy of the Ticker test module under `folder/<name>`, with config overrides."""
    target = folder / name.lower()
    shutil.copytree(TICKER, target, ignore=shutil.ignore_patterns("__pycache__"))
    values = {"name": name, **settings}
    config = target / "config.txt"
    kept = [
        line
        for line in config.read_text().splitlines()
        if line.partition("=")[0].strip() not in values
    ]
    config.write_text("\n".join([*kept, *(f"{k} = {v}" for k, v in values.items())]) + "\n")
    return target


def record_command(
    data: Path, modules: str, duration: float, trials: int = 1, sets: tuple[str, ...] = ()
) -> list[str]:
    """The whole command line of `rpi-logger record --simulate` (for `run_cli`, drop the first
    three items)."""
    args = [
        sys.executable, "-m", "rpi_logger", "record", "--simulate",
        "--modules", modules, "--duration", f"{duration:g}", "--trials", str(trials),
        "--data-dir", str(data),
    ]  # fmt: skip
    for setting in sets:
        args += ["--set", setting]
    return args


def run_cli(*args: str, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess:
    """`python -m rpi_logger ARGS` in a subprocess, as a user would run it."""
    env = dict(os.environ)
    env.update(kwargs.pop("env", {}))  # type: ignore[arg-type]
    return subprocess.run(
        [sys.executable, "-m", "rpi_logger", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )  # type: ignore[call-overload]
