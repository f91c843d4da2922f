"""The master's saved state (core/state.py) when its folder or file is unusable."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest
from tests.tools.readonly import read_only_dir

from rpi_logger.core.state import (
    MasterState,
    StateError,
    load_state,
    save_state,
    save_state_async,
)


def _unwritable_below_a_file(tmp_path: Path, stack: contextlib.ExitStack) -> Path:
    (tmp_path / "config").write_text("not a folder")
    return tmp_path / "config" / "rpi-logger" / "state.json"


def _unwritable_read_only(tmp_path: Path, stack: contextlib.ExitStack) -> Path:
    return stack.enter_context(read_only_dir(tmp_path / "ro")) / "state.json"


@pytest.mark.parametrize("make", [_unwritable_below_a_file, _unwritable_read_only])
def test_saving_to_an_unwritable_place_is_one_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, make: object
) -> None:
    with contextlib.ExitStack() as stack:
        path = make(tmp_path, stack)  # type: ignore[operator]
        with caplog.at_level(logging.ERROR, logger="rpi_logger.state"):
            with pytest.raises(StateError) as info:
                save_state(MasterState(enabled=["Notes"]), path)
    message = str(info.value)
    assert message.startswith(f"cannot save the module state to {path}: ")
    assert "\n" not in message
    assert isinstance(info.value, OSError)  # callers handling file errors still catch it
    assert [r.getMessage() for r in caplog.records] == [message]


async def test_saving_async_raises_the_same_error(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("not a folder")
    with pytest.raises(StateError, match="cannot save the module state"):
        await save_state_async(MasterState(), tmp_path / "config" / "state.json")


@pytest.mark.parametrize(
    "content",
    [
        b'{"enabled": 5}',
        b'{"enabled": "Notes", "settings": [1, 2], "ui": "big"}',
        b'{"settings": {"Notes": 3}, "ui": {"Cameras": null}}',
        b"[" * 100_000 + b"]" * 100_000,  # nested beyond the JSON parser's recursion limit
        b'\xff\xfe{"enabled": []}',  # not UTF-8
        b"[1, 2]",
    ],
)
def test_a_malformed_state_file_falls_back_to_defaults(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="rpi_logger.state"):
        state = load_state(path)
    assert isinstance(state.enabled, list) and all(isinstance(n, str) for n in state.enabled)
    assert all(isinstance(v, dict) for v in (*state.settings.values(), *state.ui.values()))


def test_a_state_path_that_is_a_folder_falls_back_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="rpi_logger.state"):
        assert load_state(tmp_path) == MasterState()
    assert any("using defaults" in r.getMessage() for r in caplog.records)


def test_a_good_state_round_trips(tmp_path: Path) -> None:
    state = MasterState(["Notes"], {"Notes": {"a": 1}}, {"Notes": {"open": True}})
    save_state(state, tmp_path / "deep" / "state.json")
    assert load_state(tmp_path / "deep" / "state.json") == state
