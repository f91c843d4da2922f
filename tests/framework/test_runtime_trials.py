"""Trial commands under hostile or unlucky arguments: bounds, restarts mid-trial, shutdown
during a pending stop. Each test drives a real module process as the master would."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.framework.test_module_runtime import ModuleUnderTest
from tests.helpers import TICKER

from rpi_logger.framework import protocol

S = 1_000_000_000
# A module that reports the window it was given (start_trial's result) and writes nothing.
PROBE_MAIN = """
from rpi_logger.framework.base import Module


class Probe(Module):
    async def start_trial(self, window):
        return {"start_ns": window.start_ns, "origin_ns": window.origin_ns, "part": window.part}

    async def stop_trial(self, window):
        return []


def create_module(context):
    return Probe(context)
"""


@pytest.fixture
def ticker(tmp_path: Path) -> Iterator[ModuleUnderTest]:
    module = ModuleUnderTest(str(TICKER), "--supervised")
    assert module.request(1, "start_session", {"session_dir": str(tmp_path)})["ok"]
    yield module
    module.close()


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[ModuleUnderTest]:
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "config.txt").write_text("name = Probe\n")
    (folder / "main.py").write_text(PROBE_MAIN)
    module = ModuleUnderTest(str(folder), "--supervised")
    assert module.request(1, "start_session", {"session_dir": str(tmp_path / "s")})["ok"]
    yield module
    module.close()


def _now() -> int:
    return time.monotonic_ns()


def _rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()[1:]]


# -- start_trial bounds ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"trial": -1}, "trial"),
        ({"trial": 0}, "trial"),
        ({"trial": 1_000_000}, "trial"),
        ({"part": -5}, "part"),
        ({"part": 0}, "part"),
        ({"at_mono_ns": "past"}, "past"),
        ({"at_mono_ns": 2**62}, "ahead"),
        ({"trial_start_mono_ns": "after"}, "trial_start_mono_ns"),
        ({"trial_start_mono_ns": -1}, "trial_start_mono_ns"),
    ],
)
def test_start_trial_refuses_absurd_arguments(
    ticker: ModuleUnderTest, tmp_path: Path, args: dict, words: str
) -> None:
    now = _now()
    full = {"at_mono_ns": now + S // 5, "trial": 1, "part": 1, **args}
    if full["at_mono_ns"] == "past":
        full["at_mono_ns"] = now - 5 * S
    if full.get("trial_start_mono_ns") == "after":
        full["trial_start_mono_ns"] = full["at_mono_ns"] + S
    reply = ticker.request(2, "start_trial", full)
    assert reply["ok"] is False and reply["error"]["code"] == protocol.BAD_ARGS
    assert words in reply["error"]["message"]
    assert list((tmp_path / "Ticker").glob("*.csv")) == []  # no file was opened
    # The module is unharmed: a sane trial runs.
    assert ticker.request(3, "status")["result"]["state"] == "session"
    assert ticker.request(4, "start_trial", {"at_mono_ns": _now(), "trial": 1})["ok"]
    assert ticker.request(5, "stop_trial", {"at_mono_ns": _now()})["ok"]
    assert [p.name for p in (tmp_path / "Ticker").glob("*.csv")] == ["trial001_ticker.csv"]


def test_start_trial_tolerates_a_start_slightly_in_the_past(ticker: ModuleUnderTest) -> None:
    """A loaded machine may deliver the command a little after its instant."""
    assert ticker.request(2, "start_trial", {"at_mono_ns": _now() - S // 5, "trial": 1})["ok"]
    assert ticker.request(3, "stop_trial", {"at_mono_ns": _now()})["ok"]


# -- stop_trial bounds and shutdown ---------------------------------------------------------
def test_stop_trial_far_ahead_is_refused_and_nothing_wedges(ticker: ModuleUnderTest) -> None:
    assert ticker.request(2, "start_trial", {"at_mono_ns": _now(), "trial": 1})["ok"]
    reply = ticker.request(3, "stop_trial", {"at_mono_ns": 2**62})
    assert reply["error"]["code"] == protocol.BAD_ARGS and "ahead" in reply["error"]["message"]
    assert ticker.request(4, "status")["result"]["state"] == "recording"
    stop = ticker.request(5, "stop_trial", {"at_mono_ns": _now()})
    assert stop["ok"] and len(stop["result"]["files"]) == 1
    assert ticker.request(6, "quit")["ok"]
    assert ticker.proc.wait(10) == 0


def _quit(m: ModuleUnderTest) -> None:
    m.send_raw(protocol.encode(protocol.command(9, "quit")))


def _sigterm(m: ModuleUnderTest) -> None:
    m.proc.send_signal(signal.SIGTERM)


def _sigint(m: ModuleUnderTest) -> None:
    m.proc.send_signal(signal.SIGINT)


def _eof(m: ModuleUnderTest) -> None:
    assert m.proc.stdin is not None
    m.proc.stdin.close()


@pytest.mark.parametrize("shutdown", [_quit, _sigterm, _sigint, _eof], ids=lambda f: f.__name__)
def test_shutdown_wins_over_a_pending_stop(
    ticker: ModuleUnderTest, tmp_path: Path, shutdown: Callable[[ModuleUnderTest], None]
) -> None:
    assert ticker.request(2, "start_trial", {"at_mono_ns": _now(), "trial": 1})["ok"]
    time.sleep(0.5)
    # A stop an hour ahead (within bounds): the module waits for it...
    ticker.send_raw(
        protocol.encode(protocol.command(3, "stop_trial", {"at_mono_ns": _now() + 3600 * S}))
    )
    time.sleep(0.5)
    assert ticker.request(4, "status")["result"]["state"] == "recording"
    # ...until it is told to go: the trial stops now, files are closed, the process exits.
    shutdown(ticker)
    asked = _now()
    assert ticker.proc.wait(15) == 0
    replies = []
    while not ticker.lines.empty():
        msg = ticker.lines.get()
        if msg.get("id") == 3:
            replies.append(msg)
    assert len(replies) == 1, replies
    [stop] = replies
    assert stop["ok"] is True and [f["path"] for f in stop["result"]["files"]] == [
        "Ticker/trial001_ticker.csv"
    ]
    assert stop["result"]["stop_mono_ns"] <= asked + 5 * S
    text = (tmp_path / "Ticker" / "trial001_ticker.csv").read_text()
    assert text.endswith("\n")
    rows = _rows(tmp_path / "Ticker" / "trial001_ticker.csv")
    assert len(rows) > 50 and int(rows[-1][1]) < stop["result"]["stop_mono_ns"]


@pytest.mark.parametrize("shutdown", [_quit, _sigterm, _eof], ids=lambda f: f.__name__)
def test_shutdown_before_a_distant_start_exits_at_once(
    ticker: ModuleUnderTest, tmp_path: Path, shutdown: Callable[[ModuleUnderTest], None]
) -> None:
    assert ticker.request(2, "start_trial", {"at_mono_ns": _now() + 3600 * S, "trial": 1})["ok"]
    shutdown(ticker)
    assert ticker.proc.wait(15) == 0
    assert _rows(tmp_path / "Ticker" / "trial001_ticker.csv") == []


# -- restart mid-trial: the trial's own timeline ---------------------------------------------
def test_a_restarted_module_gets_the_trials_origin(probe: ModuleUnderTest) -> None:
    origin = _now() - 30 * S
    at = _now() + S // 5
    reply = probe.request(
        2, "start_trial", {"at_mono_ns": at, "trial": 3, "part": 2, "trial_start_mono_ns": origin}
    )
    assert reply["ok"], reply
    assert reply["result"] == {"start_ns": at, "origin_ns": origin, "part": 2}
    assert probe.request(3, "stop_trial", {"at_mono_ns": _now()})["ok"]
    # Without the argument the trial starts where it is first recorded.
    reply = probe.request(4, "start_trial", {"at_mono_ns": at + S, "trial": 4})
    assert reply["result"] == {"start_ns": at + S, "origin_ns": at + S, "part": 1}


def test_stop_between_the_trials_origin_and_the_rejoin_is_a_normal_empty_stop(
    ticker: ModuleUnderTest, tmp_path: Path
) -> None:
    """A module restarted near the trial's end: the stop instant comes before its first
    accepted instant; it closes its (empty) files and answers normally."""
    origin = _now() - 10 * S
    at = _now() + S // 5
    assert ticker.request(
        2, "start_trial", {"at_mono_ns": at, "trial": 1, "part": 2, "trial_start_mono_ns": origin}
    )["ok"]
    stop = ticker.request(3, "stop_trial", {"at_mono_ns": origin + S})
    assert stop["ok"], stop
    assert [f["path"] for f in stop["result"]["files"]] == ["Ticker/trial001_part2_ticker.csv"]
    assert _rows(tmp_path / "Ticker" / "trial001_part2_ticker.csv") == []
    assert ticker.request(4, "status")["result"]["state"] == "session"


def test_stop_before_the_trials_origin_is_refused_without_harm(
    ticker: ModuleUnderTest, tmp_path: Path
) -> None:
    origin = _now() - 10 * S
    assert ticker.request(
        2,
        "start_trial",
        {"at_mono_ns": _now(), "trial": 1, "part": 2, "trial_start_mono_ns": origin},
    )["ok"]
    reply = ticker.request(3, "stop_trial", {"at_mono_ns": origin - S})
    assert reply["error"]["code"] == protocol.BAD_ARGS and "origin" in reply["error"]["message"]
    assert ticker.request(4, "status")["result"]["state"] == "recording"
    time.sleep(0.3)
    stop = ticker.request(5, "stop_trial", {"at_mono_ns": _now()})
    assert stop["ok"] and len(_rows(tmp_path / "Ticker" / "trial001_part2_ticker.csv")) > 10
    assert ticker.request(6, "quit")["ok"]
    assert ticker.proc.wait(10) == 0
