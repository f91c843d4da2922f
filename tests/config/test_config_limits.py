"""Config files that are legal but suspicious (a key set twice) or absurd (megabytes)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from rpi_logger.config import (
    MAX_CONFIG_BYTES,
    ConfigDocument,
    ConfigError,
    ConfigTooLargeError,
    Setting,
    format_size,
    load_settings,
    read_config,
    write_config,
)


def test_a_key_set_twice_names_both_lines_and_the_last_value_wins() -> None:
    doc = ConfigDocument.parse("fps = 25\n# note\nlabel = a\nfps = 50\nfps = 60\n", "cfg.txt")
    assert doc.to_dict()["fps"] == "60"
    assert doc.warnings() == [
        "cfg.txt:4: key 'fps' set again (first at line 1); the last value wins",
        "cfg.txt:5: key 'fps' set again (first at line 1); the last value wins",
    ]
    assert ConfigDocument.parse("a = 1\nb = 2\n").warnings() == []


def test_typed_loading_logs_the_repeat(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.txt"
    path.write_text("device = a\ndevice = b\n")
    with caplog.at_level(logging.WARNING, logger="rpi_logger.config"):
        values = load_settings(path, [Setting("device", str, "x")])
    assert values == {"device": "b"}
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}:2: key 'device' set again (first at line 1); the last value wins"
    ]


@pytest.fixture
def huge(tmp_path: Path) -> Path:
    """A 59 MiB config.txt (sparse: the test does not write 59 MiB)."""
    path = tmp_path / "config.txt"
    with path.open("wb") as fh:
        fh.write(b"fps = 30\n")
        fh.truncate(59 * 2**20)
    return path


def test_a_huge_config_is_refused_without_being_read(huge: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(ConfigTooLargeError) as info:
        read_config(huge)
    assert time.monotonic() - t0 < 0.5
    assert str(info.value) == f"{huge} is 59 MiB; the limit is 1 MiB"
    assert isinstance(info.value, ConfigError) and info.value.size == 59 * 2**20
    with pytest.raises(ConfigTooLargeError):
        load_settings(huge, [Setting("fps", int, 30)])
    with pytest.raises(ConfigTooLargeError):
        write_config(huge, {"fps": 10})  # nor rewritten
    assert huge.stat().st_size == 59 * 2**20


def test_a_config_at_the_limit_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "config.txt"
    body = "fps = 30\n"
    path.write_text(body + "#" * (MAX_CONFIG_BYTES - len(body) - 1) + "\n")
    assert path.stat().st_size == MAX_CONFIG_BYTES
    assert read_config(path) == {"fps": "30"}


@pytest.mark.parametrize(
    ("size", "text"),
    [(10, "10 bytes"), (1536, "1.5 KiB"), (2**20, "1 MiB"), (59 * 2**20 + 7, "59 MiB")],
)
def test_sizes_read_well(size: int, text: str) -> None:
    assert format_size(size) == text
