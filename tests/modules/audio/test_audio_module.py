"""The Audio module end to end on the simulated microphone: what a researcher gets on disk.

- A 5 s trial recorded with `rpi-logger record`: every burst onset found in the WAV, timed
  through the timing CSV, lies on the whole second it was generated at (the largest error is
  printed; the test fails above 2 ms); the WAV's length is the sum of the CSV's frames and
  `sample_index` has no gap; `verify` passes.
- `kill -9` of the module mid-trial: the WAV opens with soundfile and the stdlib `wave` module
  and holds audio up to within 1 s of the kill; `verify --repair` then extends its header over
  the samples written after the last flush without touching a sample.
- A/V: a synthetic camera and the simulated microphone in one trial: the first kept sample of
  each lies within one sample period after the trial's start.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tests.helpers import run_cli

from rpi_logger.core.master import Master, MasterConfig
from rpi_logger.modules.audio.backends.simulated import burst_onsets
from rpi_logger.tools.verify import verify_session

NS = 1_000_000_000


def _timing(path: Path) -> list[dict[str, str]]:
    text = path.read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(text.splitlines()))


def _sample_time(rows: list[dict[str, str]], i: int, rate: int) -> int:
    """Host time of WAV sample `i`, from the timing row of the block holding it."""
    row = next(r for r in reversed(rows) if int(r["sample_index"]) <= i)
    return int(row["t_mono_ns"]) + (i - int(row["sample_index"])) * NS // rate


def test_five_second_trial_bursts_on_whole_seconds_and_every_sample_accounted(
    tmp_path: Path,
) -> None:
    result = run_cli(
        "record", "--modules", "audio", "--duration", "5", "--simulate",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    session = Path(result.stdout.strip().splitlines()[-1])
    manifest = json.loads((session / "session.json").read_text())
    [trial] = manifest["trials"]
    [entry] = trial["files"]
    assert entry["kind"] == "audio" and entry["simulated"] is True and entry["clock"] == "adc"
    data, rate = sf.read(session / entry["path"], dtype="float32")
    rows = _timing(session / entry["timing"])
    # Sample accounting: the WAV is the sum of the blocks, sample_index has no gap.
    frames = [int(r["frames"]) for r in rows]
    assert len(data) == sum(frames) == entry["samples"]
    assert [int(r["sample_index"]) for r in rows] == list(np.cumsum([0, *frames[:-1]]))
    assert entry["frames"] == len(rows) and entry["dropped"] == 0
    start, stop = trial["start"]["mono_ns"], trial["stop"]["mono_ns"]
    assert abs(len(data) - (stop - start) * rate / NS) <= 1  # every sample of the trial
    # Timing: each onset on its whole second.
    onsets = burst_onsets(data, rate)
    assert len(onsets) >= 4
    errors = [abs(t - round(t / NS) * NS) for t in (_sample_time(rows, i, rate) for i in onsets)]
    print(f"\nlargest burst onset error: {max(errors) / 1e3:.3f} µs over {len(onsets)} bursts")
    assert max(errors) <= 2_000_000
    check = run_cli("verify", str(session))
    assert check.returncode == 0, check.stdout


async def test_kill9_leaves_a_wav_that_plays_to_within_a_second_of_the_kill(
    tmp_path: Path,
) -> None:
    config = MasterConfig(data_dir=tmp_path, simulate=True, state_path=tmp_path / "s.json")
    async with Master(config) as master:
        await master.start_modules(["Audio"])
        session = await master.start_session()
        await master.start_trial()
        await asyncio.sleep(0.2 + 2.3)
        proc = master.modules["Audio"].proc
        assert proc is not None and proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        killed_ns = time.monotonic_ns()
        await asyncio.sleep(0.5)
        trial = await master.stop_trial()
        await master.end_session()
    first = [f for f in trial["files"] if "_part" not in f["path"]]
    [entry] = first
    path = session.directory / entry["path"]
    rows = _timing(session.directory / entry["timing"])
    info = sf.info(path)
    with wave.open(str(path)) as w:  # trusts the header alone, as simple players do
        assert w.getnframes() == info.frames > 0
    data, rate = sf.read(path, dtype="int16")
    assert len(data) == info.frames
    last_t = _sample_time(rows, len(data) - 1, rate)
    assert killed_ns - last_t <= NS, (
        f"audio ends {(killed_ns - last_t) / 1e9:.2f} s before the kill"
    )
    before = path.read_bytes()[44:]
    report = verify_session(session.directory, repair=True)
    assert not [f for f in report.findings if f.level == "error"], report.findings
    after = path.read_bytes()[44:]
    assert after == before  # the repair changed sizes in the header, never a sample
    assert sf.info(path).frames >= info.frames
    again = verify_session(session.directory)
    assert not any("header declares" in f.message for f in again.findings)


async def test_audio_and_video_start_within_one_sample_period_of_the_trial(
    tmp_path: Path,
) -> None:
    config = MasterConfig(
        data_dir=tmp_path,
        simulate=True,
        state_path=tmp_path / "s.json",
        overrides={"Cameras": {"synthetic_count": 1, "width": 640, "height": 480}},
    )
    async with Master(config) as master:
        await master.start_modules(["Cameras", "Audio"])
        session = await master.start_session()
        await master.start_trial()
        await asyncio.sleep(0.2 + 1.5)
        trial = await master.stop_trial()
        await master.end_session()
    start = trial["start"]["mono_ns"]
    by_kind = {f["kind"]: f for f in trial["files"]}
    video, audio = by_kind["video"], by_kind["audio"]
    v0 = int(_timing(session.directory / video["timing"])[0]["t_mono_ns"])
    a0 = int(_timing(session.directory / audio["timing"])[0]["t_mono_ns"])
    assert 0 <= v0 - start < NS / video["fps"]
    assert 0 <= a0 - start < NS / audio["sample_rate"]
    print(f"\nA/V start: video +{(v0 - start) / 1e6:.3f} ms, audio +{(a0 - start) / 1e3:.3f} µs")
    assert verify_session(session.directory).ok


async def test_level_meter_status_events_about_ten_a_second(tmp_path: Path) -> None:
    config = MasterConfig(data_dir=tmp_path, simulate=True, state_path=tmp_path / "s.json")
    events: list[dict] = []
    async with Master(config) as master:
        master.events.add_listener(
            lambda ev: (
                events.append(ev)
                if ev["event"] == "status" and ev.get("module") == "Audio"
                else None
            )
        )
        await master.start_modules(["Audio"])
        await asyncio.sleep(2.5)
    levels = [d["levels"] for ev in events for d in ev["data"].get("devices", []) if d["levels"]]
    assert 10 <= len(levels) <= 40  # about 10 a second (a busy machine may send fewer)
    for reading in levels:
        assert len(reading["rms_dbfs"]) == len(reading["peak_dbfs"]) == 1
    peaks = [r["peak_dbfs"][0] for r in levels]
    rms = [r["rms_dbfs"][0] for r in levels]
    assert max(peaks) == pytest.approx(-6.0, abs=0.3)  # a burst at 0.5 of full scale
    assert min(rms) < -55  # between bursts: the low noise alone
    last = events[-1]["data"]
    assert "inputs" in last  # the input devices PortAudio lists (none here)
    # The whole status each time (the master keeps the last): the loop lag too, and the
    # page's meters, one per channel.
    assert last["loop_lag_ms"] is not None and last["state"] == "idle"
    [meter] = last["levels"]
    assert meter["device"] == last["devices"][0]["id"] and meter["channel"] == 0
    assert meter["rms_dbfs"] == last["devices"][0]["levels"]["rms_dbfs"][0]
