"""The master's own settings: `$XDG_CONFIG_HOME/rpi-logger/config.txt` (or `--config`)."""

from __future__ import annotations

import os
from pathlib import Path

from rpi_logger.config import Setting, load_settings

MASTER_SETTINGS = (
    Setting("data_dir", str, "~/rpi-logger-data", "where session folders are created"),
    Setting("module_dirs", str, "", "extra module folders, comma-separated"),
    Setting(
        "lead_time_ms", int, 200, "how far ahead trial starts/stops are scheduled", min=20, max=5000
    ),
    Setting(
        "log_level", str, "INFO", "console log level", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    ),
)


def config_home() -> Path:
    """`$XDG_CONFIG_HOME/rpi-logger` (default `~/.config/rpi-logger`)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rpi-logger"


def default_config_path() -> Path:
    return config_home() / "config.txt"


def load_master_settings(path: Path | None = None) -> dict:
    """Typed master settings; a missing file means all defaults. Raises ConfigError."""
    values = load_settings(path or default_config_path(), MASTER_SETTINGS, missing_ok=True)
    values["data_dir"] = Path(values["data_dir"]).expanduser()
    values["module_dirs"] = [
        Path(p.strip()).expanduser() for p in values["module_dirs"].split(",") if p.strip()
    ]
    return values
