"""Expected failures of the command line: one clear line and a non-zero exit, no traceback."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers import make_ticker, run_cli
from tests.tools.readonly import read_only_dir

from rpi_logger import cli


def _record(
    tmp_path: Path, *args: str, data: Path | None = None, modules: str = "notes"
) -> subprocess.CompletedProcess:
    return run_cli(
        "record",
        "--modules",
        modules,
        "--simulate",
        "--data-dir",
        str(data or tmp_path / "data"),
        *args,
        timeout=60,
    )


@pytest.mark.parametrize("duration", ["nan", "NaN", "inf", "-inf", "1e300", "0", "-1", "604801"])
def test_a_duration_that_is_not_a_sane_number_of_seconds_is_refused(
    tmp_path: Path, duration: str
) -> None:
    result = _record(tmp_path, f"--duration={duration}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        "error: argument --duration: expected seconds greater than 0 and at most 604800 "
        f"(7 days), got '{duration}'"
    ) in result.stderr.splitlines()[-1]
    assert not (tmp_path / "data").exists()  # refused before anything was made


def test_a_duration_of_seven_days_is_accepted_by_the_parser() -> None:
    args = cli.build_parser().parse_args(["record", "--modules", "notes", "--duration", "604800"])
    assert args.duration == 604800.0


def _data_dir_is_a_file(tmp_path: Path, stack: contextlib.ExitStack) -> tuple[Path, str]:
    target = tmp_path / "afile"
    target.write_text("x")
    return target, f"{target}: is a file, not a folder"


def _data_dir_below_a_file(tmp_path: Path, stack: contextlib.ExitStack) -> tuple[Path, str]:
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "afile" / "sessions"
    return target, f"{target}: a part of this path is a file, not a folder"


def _data_dir_read_only(tmp_path: Path, stack: contextlib.ExitStack) -> tuple[Path, str]:
    target = stack.enter_context(read_only_dir(tmp_path / "ro"))
    return target, f"{target}: cannot write in this folder: "


def _data_dir_below_read_only(tmp_path: Path, stack: contextlib.ExitStack) -> tuple[Path, str]:
    folder = stack.enter_context(read_only_dir(tmp_path / "ro"))
    target = folder / "sessions"
    return target, f"{target}: cannot create the folder: "


@pytest.mark.parametrize(
    "make",
    [_data_dir_is_a_file, _data_dir_below_a_file, _data_dir_read_only, _data_dir_below_read_only],
)
def test_an_unusable_data_dir_is_one_line_before_any_module_starts(
    tmp_path: Path, make: object
) -> None:
    with contextlib.ExitStack() as stack:
        target, reason = make(tmp_path, stack)  # type: ignore[operator]
        result = _record(tmp_path, "--duration", "1", data=target)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    # Nothing else: no module was started, so no module logged anything.
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"rpi-logger record: data folder {reason}"), line
    assert result.stdout == ""


def test_config_naming_a_folder_is_one_line(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path), "modules")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line == f"rpi-logger: config error: {tmp_path}: is a folder, not a config file"


def test_a_missing_config_named_explicitly_says_defaults_are_used(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    result = run_cli("--config", str(missing), "modules")
    assert result.returncode == 0
    assert result.stderr.strip().splitlines() == [
        f"rpi-logger: config file {missing} not found; using defaults"
    ]
    assert "Notes" in result.stdout
    # The default config file is optional: its absence is not worth a line.
    quiet = run_cli("modules")
    assert quiet.returncode == 0 and "defaults" not in quiet.stderr


def test_a_huge_master_config_is_refused_quickly(tmp_path: Path) -> None:
    big = tmp_path / "config.txt"
    text = "".join(f"k{i:08d} = {'v' * 51}\n" for i in range(3 * 2**20 // 64))  # valid lines
    big.write_text(text)
    assert big.stat().st_size == 3 * 2**20
    result = run_cli("--config", str(big), "modules", timeout=20)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line == f"rpi-logger: config error: {big} is 3 MiB; the limit is 1 MiB"


@pytest.mark.parametrize("args", [["modules", "--json"], ["modules"], ["--help"]])
def test_a_closed_stdout_is_not_a_traceback(args: list[str]) -> None:
    """`rpi-logger modules --json | head -1`: the reader leaves before we are done."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rpi_logger", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the process writes a byte: its first write fails
    err = proc.stderr.read().decode()
    assert err == ""  # no BrokenPipeError, no "Exception ignored"
    # 128 + SIGPIPE; argparse's --help swallows the error itself and exits 0, also quietly.
    assert proc.wait(timeout=60) == (0 if args == ["--help"] else 141)


def test_an_unforeseen_file_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        raise PermissionError(13, "Permission denied", "/somewhere/file")

    monkeypatch.setattr(cli, "cmd_verify", broken)
    assert cli.main(["verify", "/somewhere"]) == 1
    err = capsys.readouterr().err
    assert err == "rpi-logger: [Errno 13] Permission denied: '/somewhere/file'\n"


def test_recording_a_rejected_module_says_why(tmp_path: Path) -> None:
    folder = make_ticker(tmp_path / "mods", "Ticker")
    config = folder / "config.txt"
    config.write_text('name = "Ticker\n')  # an unterminated quote: the config does not parse
    mods = str(tmp_path / "mods")
    result = _record(tmp_path, "--duration", "1", "--module-dir", mods, modules="notes,TICKER")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line == (
        f"rpi-logger record: module 'ticker' is rejected: config does not parse: "
        f"{config}:1: key 'name': unterminated \" quote"
    )
    assert not (tmp_path / "data").exists()
