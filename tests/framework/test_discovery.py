"""Module discovery: built-ins, extra folders, and a reason for every rejected folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.helpers import make_ticker, run_cli

from rpi_logger.core.session import sanitize_label
from rpi_logger.framework.discovery import (
    discover_modules,
    discover_modules_async,
    find_module,
    lookup,
    validate_module_structure,
)


@pytest.fixture
def extra(tmp_path: Path) -> Path:
    root = tmp_path / "extra"
    root.mkdir()
    make_ticker(root, "Ticker")
    (root / "no_entry").mkdir()
    (root / "no_entry" / "config.txt").write_text("name = NoEntry\n")
    bad = make_ticker(root, "BadConfig")
    (bad / "config.txt").write_text('name = "BadConfig\n')
    clash = make_ticker(root, "Clash")
    (clash / "config.txt").write_text("name = notes\n")
    broken = make_ticker(root, "Broken")
    (broken / "main.py").write_text("def create_module(context:\n")
    empty = make_ticker(root, "Empty")
    (empty / "main.py").write_text("def something_else(): pass\n")
    (root / "just_files").mkdir()
    return root


def test_each_folder_is_valid_or_has_a_reason(extra: Path) -> None:
    specs = {s.path.name: s for s in discover_modules([extra])}
    assert specs["notes"].valid and specs["notes"].builtin
    assert specs["cameras"].valid
    assert specs["ticker"].valid and specs["ticker"].name == "Ticker"
    assert specs["no_entry"].reason == "no entry point (main.py)"
    assert "config does not parse" in (specs["badconfig"].reason or "")
    assert "name clash" in (specs["clash"].reason or "") and "notes" in specs["clash"].reason
    assert "entry point does not parse" in (specs["broken"].reason or "")
    assert specs["empty"].reason == "entry point defines no create_module(context)"
    assert specs["just_files"].reason == "no config.txt"


async def test_async_discovery_matches(extra: Path) -> None:
    sync = [s.as_dict() for s in discover_modules([extra])]
    assert [s.as_dict() for s in await discover_modules_async([extra])] == sync


def test_a_module_folder_can_be_named_directly(extra: Path) -> None:
    assert find_module(str(extra / "ticker")).name == "Ticker"
    assert find_module("TICKER", [extra]).path == (extra / "ticker").resolve()
    with pytest.raises(LookupError, match="no module named 'nope'"):
        find_module("nope", [extra])
    assert validate_module_structure(extra / "missing") == "not a folder"


def test_modules_command_json(extra: Path) -> None:
    result = run_cli("modules", "--json", "--module-dir", str(extra))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {"name", "path", "valid", "reason"} <= set(rows[0])
    by_path = {Path(r["path"]).name: r for r in rows}
    assert by_path["ticker"]["valid"] is True and by_path["ticker"]["reason"] is None
    assert by_path["no_entry"]["valid"] is False
    text = run_cli("modules", "--module-dir", str(extra)).stdout
    assert "rejected: no entry point (main.py)" in text


def test_master_config_names_extra_folders(extra: Path, _isolated_config: Path) -> None:
    (_isolated_config / "rpi-logger").mkdir(parents=True)
    (_isolated_config / "rpi-logger" / "config.txt").write_text(f"module_dirs = {extra}\n")
    rows = json.loads(run_cli("modules", "--json").stdout)
    assert any(r["name"] == "Ticker" and r["valid"] for r in rows)


@pytest.mark.parametrize("line", ["name =", 'name = ""', "name =    # to be decided"])
def test_an_empty_name_is_rejected_with_a_reason(tmp_path: Path, line: str) -> None:
    folder = make_ticker(tmp_path, "Ticker")
    config = folder / "config.txt"
    config.write_text(config.read_text() + line + "\n")  # after `name = Ticker`: the last wins
    [spec] = discover_modules([tmp_path], include_builtin=False)
    assert not spec.valid
    assert spec.reason == "name is empty (in config.txt; remove the line to use the folder's name)"
    text = run_cli("modules", "--module-dir", str(tmp_path)).stdout
    assert "rejected: name is empty" in text


def test_a_huge_config_is_rejected_with_its_size(tmp_path: Path) -> None:
    folder = make_ticker(tmp_path, "Ticker")
    with (folder / "config.txt").open("a") as fh:  # valid lines, just far too many
        for i in range(2 * 2**20 // 16):
            fh.write(f"# padding {i:05d}\n")
    [spec] = discover_modules([tmp_path], include_builtin=False)
    assert not spec.valid
    assert spec.reason is not None
    assert spec.reason.startswith("config.txt is 2 MiB; the limit is 1 MiB")


def test_a_key_set_twice_is_a_warning_of_the_module(tmp_path: Path) -> None:
    folder = make_ticker(tmp_path, "Ticker", rate_hz=50)
    config = folder / "config.txt"
    config.write_text(config.read_text() + "rate_hz = 60\n")
    lines = config.read_text().splitlines()
    first = 1 + next(i for i, ln in enumerate(lines) if ln.startswith("rate_hz"))
    second = 1 + max(i for i, ln in enumerate(lines) if ln.startswith("rate_hz"))
    expected = (
        f"{config}:{second}: key 'rate_hz' set again (first at line {first}); the last value wins"
    )
    [spec] = discover_modules([tmp_path], include_builtin=False)
    assert spec.valid and spec.warnings == [expected]
    result = run_cli("modules", "--module-dir", str(tmp_path))
    assert f"warning: {expected}" in result.stdout
    rows = json.loads(run_cli("modules", "--json", "--module-dir", str(tmp_path)).stdout)
    assert next(r for r in rows if r["name"] == "Ticker")["warnings"] == [expected]


def test_a_rejected_module_keeps_its_reason_for_lookups(tmp_path: Path) -> None:
    broken = make_ticker(tmp_path, "Cameras2")
    (broken / "config.txt").write_text('name = "Cameras2\n')  # does not parse
    named = make_ticker(tmp_path, "FrontCam")
    (named / "main.py").write_text("def other(): pass\n")  # config fine, entry point not
    specs = discover_modules([tmp_path])
    spec = lookup(specs, "CAMERAS2")  # by folder name: the config has no readable name
    assert spec is not None and not spec.valid
    assert spec.reason is not None and spec.reason.startswith("config does not parse: ")
    front = lookup(specs, "frontcam")  # by the name its config gives
    assert front is not None and front.name == "FrontCam"
    assert front.reason == "entry point defines no create_module(context)"
    assert lookup(specs, "notes") is not None and lookup(specs, "notes").valid  # type: ignore[union-attr]
    assert lookup(specs, "nothing") is None
    with pytest.raises(LookupError, match=r"module 'FrontCam' is rejected: entry point defines"):
        find_module("FrontCam", [tmp_path])


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("pilot 01", "pilot_01"),
        ("../../etc/passwd", "etc_passwd"),
        ("..", None),
        ("Fahrt Über Brücke", "Fahrt_Uber_Brucke"),
        ("a/b\\c:d*e?", "a_b_c_d_e"),
        ("", None),
        (None, None),
    ],
)
def test_labels_are_safe_folder_names(label: str | None, expected: str | None) -> None:
    assert sanitize_label(label) == expected


def test_a_folder_that_cannot_be_looked_into_is_a_reason(tmp_path: Path) -> None:
    too_long = tmp_path / ("m" * 300)  # longer than any file name may be
    [spec] = discover_modules([too_long], include_builtin=False)
    assert not spec.valid and spec.reason == "cannot be read: File name too long"
    result = run_cli("modules", "--module-dir", str(too_long))
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "rejected: cannot be read: File name too long" in result.stdout
    with pytest.raises(LookupError, match="no module named"):
        find_module("m" * 300)
