"""The master's own settings: `$XDG_CONFIG_HOME/rpi-logger/config.txt` (or `--config`), and
the `MasterConfig` a master runs with."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpi_logger.config import ConfigError, Setting, load_settings

MASTER_SETTINGS = (
    Setting("data_dir", str, "~/rpi-logger-data", "where session folders are created"),
    Setting("module_dirs", str, "", "extra module folders, comma-separated"),
    Setting(
        "lead_time_ms", int, 200, "how far ahead trial starts/stops are scheduled", min=20, max=5000
    ),
    Setting(
        "log_level", str, "INFO", "console log level", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    ),
    Setting(
        "min_free_mb",
        float,
        100.0,
        "below this much free space (MB) in the data folder a trial stops cleanly: disk full",
        min=0,
    ),
)


@dataclass(slots=True)
class MasterConfig:
    """How a `Master` runs: where sessions go, which extra modules exist, trial timing."""

    data_dir: Path
    module_dirs: list[Path] = field(default_factory=list)
    lead_time_ms: int = 200
    simulate: bool = False
    log_level: str = "INFO"
    state_path: Path | None = None  # None: the user's config folder
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # module -> settings
    # Below this much free space in the data folder a trial stops cleanly ("disk full"), with
    # room left for the manifest and the files' last flushes.
    min_free_mb: float = 100.0

    @property
    def lead_ns(self) -> int:
        return self.lead_time_ms * 1_000_000


def config_home() -> Path:
    """`$XDG_CONFIG_HOME/rpi-logger` (default `~/.config/rpi-logger`)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rpi-logger"


def default_config_path() -> Path:
    return config_home() / "config.txt"


def check_config_file(path: Path) -> bool:
    """True when `path` is a config file to read, False when it does not exist (defaults).

    Raises ConfigError with one clear line when it is something else (a folder, a device, a
    file that cannot be read).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        raise ConfigError(f"{path}: a folder in this path is a file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path}: is a folder, not a config file")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: is not a regular file")
    return True


def load_master_settings(path: Path | None = None) -> dict:
    """Typed master settings; a missing file means all defaults. Raises ConfigError (also for
    a path that is a folder or cannot be read)."""
    path = Path(path) if path is not None else default_config_path()
    check_config_file(path)
    try:
        values = load_settings(path, MASTER_SETTINGS, missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    values["data_dir"] = Path(values["data_dir"]).expanduser()
    values["module_dirs"] = [
        Path(p.strip()).expanduser() for p in values["module_dirs"].split(",") if p.strip()
    ]
    return values
