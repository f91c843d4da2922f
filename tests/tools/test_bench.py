"""`rpi-logger bench` end to end on the tiny rig: real master, HTTP server, module processes.

Timing-free except where blocking mode makes a stall certain: with a simulated storage latency
on every flush, blocking mode puts those sleeps on the loops, so the lag it reports must show
them, while the same latency on writer threads must not reach the loop to the same degree.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from rpi_logger.cli import main

# Compares loop lag with and without blocking sinks: alone on the cores (test.sh).
pytestmark = [pytest.mark.timeout(240), pytest.mark.exclusive]

FLUSH_MS = 60


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "bench.json"
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        status = main(
            [
                "bench", "--rig", "tiny", "--duration", "3", "--json", str(out),
                "--keep", str(tmp / "runs"), "--progress", "never",
                "--sink-latency", f"flush={FLUSH_MS},fsync={FLUSH_MS}",
            ]
        )  # fmt: skip
    assert status == 0
    return json.loads(out.read_text()), text.getvalue()


def test_json_has_every_figure(bench_run: tuple[dict, str]) -> None:
    result, _ = bench_run
    assert result["rig"]["name"] == "tiny"
    assert result["machine"]["cores"] >= 1
    assert result["floor_alone"]["loop_lag_ms"]["samples"] > 100
    assert set(result["modes"]) == {"non_blocking", "blocking"}
    for mode in result["modes"].values():
        assert set(mode["processes"]) == {"master", "Cameras", "Audio", "Notes"}
        for p in mode["processes"].values():
            assert {"p50", "p99", "max"} <= set(p["loop_lag_ms"])
            assert p["cpu_percent"] is not None and p["peak_rss_mb"] > 10
        kinds = {s["kind"] for s in mode["streams"]}
        assert kinds == {"video", "audio"}
        for s in mode["streams"]:
            assert s["written"] > 0 and s["captured"] == s["written"] + s["dropped"]
        notes = mode["notes"]
        assert notes["failed"] == 0 and notes["posted"] >= 5
        assert notes["round_trip_ms"]["count"] == notes["posted"]
        assert mode["floor_during"]["loop_lag_ms"]["samples"] > 100
        assert Path(mode["session"], "session.json").is_file()
    assert {"loop_lag_p99", "loop_lag_max", "note_p99"} <= set(result["ratios"]["rig"])
    assert "nothing_dropped" in result["targets"]


def test_notes_land_in_the_sessions(bench_run: tuple[dict, str]) -> None:
    result, _ = bench_run
    for mode in result["modes"].values():
        notes = Path(mode["session"], "Notes", "notes.csv")
        rows = notes.read_text().splitlines()
        assert sum("bench note" in r for r in rows) == mode["notes"]["posted"]


def test_blocking_mode_puts_the_writes_on_the_loop(bench_run: tuple[dict, str]) -> None:
    result, _ = bench_run
    fast, slow = result["modes"]["non_blocking"], result["modes"]["blocking"]
    # Each flush sleeps FLUSH_MS on whichever thread writes: the loop, in blocking mode.
    assert slow["processes"]["Cameras"]["loop_lag_ms"]["max"] >= FLUSH_MS * 0.9
    assert slow["rig"]["loop_lag_ms"]["max"] > fast["rig"]["loop_lag_ms"]["max"]


def test_table(bench_run: tuple[dict, str]) -> None:
    _, text = bench_run
    assert "rig tiny" in text
    for needle in ("Cameras", "master", "idle floor", "notes via HTTP", "blocking / non-blocking"):
        assert needle in text
