"""A module process as the master sees it: protocol robustness, standalone use, shutdown."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tests.helpers import TICKER

from rpi_logger.framework import protocol


class ModuleUnderTest:
    """A module process driven line by line from a test (sync, with a reader thread)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpi_logger", "module", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[dict] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(json.loads(raw))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode(errors="replace"))

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def replies_until(self, msg_id: int, timeout: float = 10) -> list[dict]:
        """Every reply up to and including the one for `msg_id` (events are skipped)."""
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if "event" in msg:
                continue
            out.append(msg)
            if msg.get("id") == msg_id:
                return out

    def request(self, msg_id: int, cmd: str, args: dict | None = None) -> dict:
        self.send_raw(protocol.encode(protocol.command(msg_id, cmd, args)))
        return self.replies_until(msg_id)[-1]

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                return self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


@pytest.fixture(scope="module")
def ticker() -> Iterator[ModuleUnderTest]:
    module = ModuleUnderTest(str(TICKER), "--supervised")
    yield module
    module.close()


_ids = iter(range(10_000_000, 20_000_000))
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
_commands = st.fixed_dictionaries(
    {
        "v": st.sampled_from([1, 1, 1, 2, "1", None]),
        "id": st.integers(-5, 5) | st.text(max_size=3) | st.none(),
        "cmd": st.sampled_from(sorted(protocol.COMMAND_ARGS)) | st.text(max_size=8),
        "args": st.dictionaries(
            st.sampled_from(["at_mono_ns", "trial", "label", "session_dir", "settings", "x"]),
            _json_values,
            max_size=3,
        )
        | _json_values,
    }
).map(json.dumps)
_lines = st.one_of(
    st.text(min_size=1, max_size=200).filter(lambda s: "\n" not in s),
    st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b),
    _json_values.map(json.dumps),
    _commands,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=_lines)
def test_malformed_lines_get_an_error_reply_and_the_module_keeps_serving(
    ticker: ModuleUnderTest, line: str | bytes
) -> None:
    data = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    assume(data.strip())
    try:
        protocol.parse_command(data)
    except protocol.ProtocolError:
        pass
    else:
        assume(False)  # a valid command is not what this test is about
    ticker.send_raw(data + b"\n")
    probe = next(_ids)
    ticker.send_raw(protocol.encode(protocol.command(probe, "status")))
    replies = ticker.replies_until(probe)
    *errors, status = replies
    assert status["ok"] is True and status["result"]["state"] == "idle"
    assert len(errors) == 1, f"{data!r} got {errors}"
    assert errors[0]["ok"] is False and errors[0]["error"]["code"] in {
        protocol.BAD_JSON,
        protocol.BAD_MESSAGE,
        protocol.UNKNOWN_COMMAND,
        protocol.BAD_ARGS,
    }
    assert errors[0]["error"]["message"]


def test_rejected_lines_are_logged_with_a_reason(ticker: ModuleUnderTest) -> None:
    ticker.send_raw(b"{not json\n")
    ticker.request(next(_ids), "status")
    time.sleep(0.2)
    assert any("rejected line" in line and "not JSON" in line for line in ticker.stderr)


def test_lifecycle_order_is_enforced(tmp_path: Path) -> None:
    module = ModuleUnderTest(str(TICKER), "--supervised")
    try:
        reply = module.request(1, "start_trial", {"at_mono_ns": time.monotonic_ns(), "trial": 1})
        assert reply["ok"] is False and reply["error"]["code"] == protocol.BAD_STATE
        assert module.request(2, "start_session", {"session_dir": str(tmp_path)})["ok"]
        assert module.request(3, "end_session")["ok"]
        assert module.request(4, "stop_trial", {"at_mono_ns": 1})["error"]["code"] == "bad_state"
        assert module.request(5, "quit")["ok"]
        assert module.proc.wait(5) == 0
    finally:
        module.close()


def test_standalone_module_takes_typed_shorthand(tmp_path: Path) -> None:
    """`rpi-logger module NAME` without a master: a person types commands."""
    module = ModuleUnderTest(str(TICKER), "--data-dir", str(tmp_path), "--simulate")
    try:
        module.send_raw(b"start_session\n")
        module.send_raw(b"start_trial\n")
        assert module.replies_until(1_000_002)[-1]["ok"]  # shorthand commands get ids from 1e6+1
        time.sleep(0.8)
        module.send_raw(b"stop_trial\n")
        # `quit` would win over the pending stop (the trial would stop at once): let it finish.
        assert module.replies_until(1_000_003)[-1]["ok"]
        module.send_raw(b"end_session\n")
        module.send_raw(b"quit\n")
        assert module.proc.wait(10) == 0
    finally:
        module.close()
    [session] = tmp_path.glob("session_*")
    rows = (session / "Ticker" / "trial001_ticker.csv").read_text().splitlines()
    assert rows[0].startswith("tick,t_mono_ns") and len(rows) > 40


def test_standalone_text_commands_take_the_rest_of_the_line(tmp_path: Path) -> None:
    """A command whose one required argument is text (Notes' add_note) takes the typed words."""
    module = ModuleUnderTest("notes", "--data-dir", str(tmp_path))
    try:
        module.send_raw(b"start_session\n")
        assert module.replies_until(1_000_001)[-1]["ok"]
        module.send_raw(b"add_note the driver looks tired\n")
        assert module.replies_until(1_000_002)[-1]["ok"]
        module.send_raw(b"end_session\n")
        module.send_raw(b"quit\n")
        assert module.proc.wait(10) == 0
    finally:
        module.close()
    [session] = tmp_path.glob("session_*")
    assert "the driver looks tired" in (session / "Notes" / "notes.csv").read_text()


def test_sigterm_closes_the_trial_files(tmp_path: Path) -> None:
    module = ModuleUnderTest(str(TICKER), "--supervised")
    try:
        module.request(1, "start_session", {"session_dir": str(tmp_path)})
        module.request(2, "start_trial", {"at_mono_ns": time.monotonic_ns(), "trial": 1})
        time.sleep(0.5)
        module.proc.terminate()
        assert module.proc.wait(3) == 0
    finally:
        module.close()
    text = (tmp_path / "Ticker" / "trial001_ticker.csv").read_text()
    assert text.endswith("\n") and len(text.splitlines()) > 20


@pytest.mark.parametrize("size", [1_100_000, 2_000_000, 5_000_000])
def test_an_overlong_line_gets_exactly_one_reply_and_the_next_line_is_served(
    ticker: ModuleUnderTest, size: int
) -> None:
    ticker.send_raw(b'{"v":1,"id":5,"cmd":"status","args":{"x":"' + b"a" * size + b'"}}\n')
    probe = next(_ids)
    ticker.send_raw(protocol.encode(protocol.command(probe, "status")))
    *errors, status = ticker.replies_until(probe)
    assert status["ok"] is True
    assert len(errors) == 1, errors
    assert errors[0]["ok"] is False and "longer than" in errors[0]["error"]["message"]


@pytest.mark.parametrize(
    "line",
    [
        b'{"v":1,"id":1,"cmd":"status","args":' + b"[" * 100_000,
        b'{"v":1,"id":1,"cmd":"status","args":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"v":1,"id":1,"cmd":"status","args":{"x":' + b"7" * 5000 + b"}}",
    ],
    ids=["unclosed-nesting", "closed-nesting", "5000-digit-int"],
)
def test_hostile_json_gets_one_error_reply_and_the_module_keeps_serving(
    ticker: ModuleUnderTest, line: bytes
) -> None:
    ticker.send_raw(line + b"\n")
    probe = next(_ids)
    ticker.send_raw(protocol.encode(protocol.command(probe, "status")))
    *errors, status = ticker.replies_until(probe)
    assert status["ok"] is True and ticker.proc.poll() is None
    assert len(errors) == 1, errors
    assert errors[0]["error"]["code"] in {protocol.BAD_JSON, protocol.BAD_MESSAGE}


def test_standalone_stdin_file_gets_one_reply_per_line_without_blocking(tmp_path: Path) -> None:
    """Standalone, stdin may be a regular file (read on a thread): a huge line gets one error
    reply and costs no time on the loop; hostile shorthand values are just strings; every line
    after them is served."""
    script = tmp_path / "commands.txt"
    with script.open("wb") as f:
        f.write(b"status x=" + b"a" * 3_000_000 + b"\n")  # far over the line limit
        f.write(b'{"v":1,"id":7,"cmd":"status","args":{"x":"' + b"b" * 900_000 + b'"}}\n')
        f.write(b"status x=" + b"a" * 200_000 + b"\n")  # too long to be typed shorthand
        f.write(b"status x=" + b"[" * 4000 + b"\n")  # shorthand: a value JSON cannot nest
        f.write(b"status x=" + b"1" * 4080 + b"\n")  # shorthand: JSON refuses 4300+ digits
        f.write(b'{"v":1,"id":8,"cmd":"status"}\n')
    started = time.monotonic()
    with script.open("rb") as stdin:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "rpi_logger",
                "module",
                str(TICKER),
                "--data-dir",
                str(tmp_path),
            ],
            stdin=stdin,
            capture_output=True,
            timeout=120,
        )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    replies = [m for m in map(json.loads, proc.stdout.splitlines()) if "event" not in m]
    assert len(replies) == 6, replies  # exactly one per line
    errors = [r for r in replies if not r["ok"]]
    assert sorted(r["id"] for r in replies if r["ok"]) == [7, 8, 1_000_001, 1_000_002]
    assert len(errors) == 2 and any("longer than" in e["error"]["message"] for e in errors)
    # Before the fix the 3 MB line alone held the loop (a pure-Python tokenizer) for 15-30 s.
    assert elapsed < 15, f"took {elapsed:.1f} s"


def test_standalone_stdin_file_quit_wins_over_the_lines_after_it(tmp_path: Path) -> None:
    """A command file with thousands of lines after `quit`: the module still exits."""
    script = tmp_path / "commands.txt"
    script.write_text("quit\n" + "status\n" * 5000)
    with script.open("rb") as stdin:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "rpi_logger",
                "module",
                str(TICKER),
                "--data-dir",
                str(tmp_path),
            ],
            stdin=stdin,
            capture_output=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
