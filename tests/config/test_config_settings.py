"""Typed settings loader: values, defaults, optional values and error messages."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rpi_logger.config import ConfigError, Setting, load_settings, load_settings_async

SCHEMA = [
    Setting("fps", int, 30, "frames per second", min=1, max=240),
    Setting("gain", float, 1.0, "analog gain", min=0.5, max=16),
    Setting("record_audio", bool, False, "record audio too"),
    Setting(
        "backend", str, "synthetic", "camera backend", choices=["picamera2", "opencv", "synthetic"]
    ),
    Setting("device", str, None, "device path; empty = auto"),
    Setting("width", int, None, "frame width; empty = sensor default", min=512),
    Setting("label", str, "cam", "free text"),
]


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.txt"
    path.write_text(body, encoding="utf-8")
    return path


def test_typed_values_and_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "# cameras\n"
        "fps = 60  # frames per second\n"
        "gain = 2.5\n"
        "record_audio = YES\n"
        "backend = opencv\n"
        "device =\n"
        'label = "front # left"\n',
    )
    assert load_settings(path, SCHEMA) == {
        "fps": 60,
        "gain": 2.5,
        "record_audio": True,
        "backend": "opencv",
        "device": None,
        "width": None,
        "label": "front # left",
    }


def test_absent_keys_get_defaults_and_missing_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "# nothing set\n")
    defaults = {s.name: s.default for s in SCHEMA}
    assert load_settings(path, SCHEMA) == defaults
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "nope.txt", SCHEMA)
    assert load_settings(tmp_path / "nope.txt", SCHEMA, missing_ok=True) == defaults


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("False", False),
        ("yes", True),
        ("NO", False),
        ("on", True),
        ("Off", False),
        ("1", True),
        ("0", False),
    ],
)
def test_bool_spellings(tmp_path: Path, raw: str, expected: bool) -> None:
    path = _write(tmp_path, f"record_audio = {raw}\n")
    assert load_settings(path, SCHEMA)["record_audio"] is expected


def test_optional_values_bare_empty_is_none_quoted_empty_is_string(tmp_path: Path) -> None:
    path = _write(tmp_path, 'device = ""\nwidth =   # auto\n')
    values = load_settings(path, SCHEMA)
    assert values["device"] == ""
    assert values["width"] is None
    path = _write(tmp_path, "device = /dev/video0\nwidth = 1280\n")
    values = load_settings(path, SCHEMA)
    assert (values["device"], values["width"]) == ("/dev/video0", 1280)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("fps = fast", "config.txt:3: key 'fps' = 'fast': expected an integer between 1 and 240"),
        ("fps = 241", "config.txt:3: key 'fps' = '241': expected an integer between 1 and 240"),
        ("fps = 2.5", "config.txt:3: key 'fps' = '2.5': expected an integer between 1 and 240"),
        ("fps =", "config.txt:3: key 'fps' = '': expected an integer between 1 and 240"),
        ("gain = loud", "config.txt:3: key 'gain' = 'loud': expected a number between 0.5 and 16"),
        ("gain = 0.1", "config.txt:3: key 'gain' = '0.1': expected a number between 0.5 and 16"),
        ("gain = nan", "config.txt:3: key 'gain' = 'nan': expected a number between 0.5 and 16"),
        (
            "record_audio = maybe",
            "config.txt:3: key 'record_audio' = 'maybe': expected a boolean "
            "(true/false, yes/no, on/off, 1/0)",
        ),
        (
            "backend = gstreamer",
            "config.txt:3: key 'backend' = 'gstreamer': expected one of 'picamera2', 'opencv', "
            "'synthetic'",
        ),
        (
            "width = 100",
            "config.txt:3: key 'width' = '100': expected an integer >= 512, or empty for none",
        ),
    ],
)
def test_bad_values_name_file_line_key_value_and_expectation(
    tmp_path: Path, line: str, message: str
) -> None:
    path = _write(tmp_path, f"# header\nlabel = x\n{line}  # comment\nfps = 10\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, SCHEMA)
    assert str(info.value) == f"{tmp_path}/{message}"
    assert info.value.line == 3
    assert isinstance(info.value, ValueError)


def test_parse_error_in_loader_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, 'fps = 30\nlabel = "open\n')
    with pytest.raises(ConfigError, match=r"config\.txt:2: key 'label': unterminated"):
        load_settings(path, SCHEMA)


def test_unknown_key_logs_warning_not_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, "fps = 25\nfsp = 30\n")
    with caplog.at_level(logging.WARNING, logger="rpi_logger.config"):
        values = load_settings(path, SCHEMA)
    assert values["fps"] == 25
    records = [r for r in caplog.records if r.name == "rpi_logger.config"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    msg = records[0].getMessage()
    assert "config.txt:2" in msg
    assert "unknown key 'fsp'" in msg
    assert "did you mean 'fps'" in msg


def test_repeated_key_warns_and_last_wins(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path, "fps = 25\nlabel = a\nfps = 50\nzzz = 1\nzzz = 2\n")
    with caplog.at_level(logging.WARNING, logger="rpi_logger.config"):
        assert load_settings(path, SCHEMA)["fps"] == 50
    messages = [r.getMessage() for r in caplog.records]
    assert f"{path}:3: key 'fps' set again (first at line 1); the last value wins" in messages
    # Unknown keys given twice are named too (besides being unknown).
    assert f"{path}:5: key 'zzz' set again (first at line 4); the last value wins" in messages


async def test_load_settings_async(tmp_path: Path) -> None:
    path = _write(tmp_path, "fps = 12\n")
    values = await load_settings_async(path, SCHEMA)
    assert values["fps"] == 12
    with pytest.raises(ConfigError, match=r"config\.txt:1: key 'fps'"):
        await load_settings_async(_write(tmp_path, "fps = x\n"), SCHEMA)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Setting("fps", int, "30"),  # default of the wrong type
        lambda: Setting("fps", int, 0, min=1),  # default out of its own range
        lambda: Setting("fps", list, []),  # unsupported type
        lambda: Setting("name", str, "x", min=1),  # min on a string
        lambda: Setting("mode", str, "a", choices=["b", "c"]),  # default not a choice
        lambda: Setting("mode", str, None, optional=False),  # None default, not optional
        lambda: Setting("bad key", str, "x", choices=[]),  # empty choices
        lambda: Setting("a=b", str, "x"),  # key that cannot be written
    ],
)
def test_schema_mistakes_fail_early(make: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        make()  # type: ignore[operator]
