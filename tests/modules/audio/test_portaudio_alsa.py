"""The sounddevice backend through a real PortAudio stream, without a sound card.

An ALSA configuration written by the test (design.md §11) makes a capture device of a raw file:
`type file` with `infile` over a `null` slave, behind `plug`. PortAudio opens it like any card,
its callback gets the file's samples with ADC times on CLOCK_MONOTONIC, and the module records
them. The null slave is not paced (it delivers far faster than real time), so this checks the
real code path and the data, not timing (the simulated microphone's tests do that): every block
in the WAV holds exactly the file's samples at the device position its row names, on every
channel, and everything the fast device sent that could not be kept is counted.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
FILE_FRAMES = 48_000

pytestmark = pytest.mark.skipif(not ALSA_CONF.exists(), reason="no ALSA library configuration")


def _pattern() -> np.ndarray:
    """One second of stereo int16 where each frame says where it is in the file."""
    k = np.arange(FILE_FRAMES)
    return np.stack([k % 30_000, -(k % 20_000) - 1], axis=1).astype("<i2")


@pytest.fixture
def alsa_env(tmp_path: Path) -> dict[str, str]:
    raw = tmp_path / "in.raw"
    raw.write_bytes(_pattern().tobytes())
    conf = tmp_path / "asoundrc"
    conf.write_text(
        f"""pcm.!default {{ type plug slave.pcm "filecap" }}
pcm.filecap {{
  type file
  slave.pcm "null"
  file "/dev/null"
  infile "{raw}"
  format "raw"
}}
"""
    )
    return {"ALSA_CONFIG_PATH": f"{ALSA_CONF}:{conf}", "HOME": str(tmp_path)}


def test_input_devices_are_listed_with_host_api_channels_and_rate(
    alsa_env: dict[str, str],
) -> None:
    code = (
        "import json; from rpi_logger.modules.audio.backends import sounddevice_backend as s;"
        "print(json.dumps(s.list_input_devices()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **alsa_env}
    )
    assert done.returncode == 0, done.stderr
    devices = {d["name"]: d for d in json.loads(done.stdout)}
    cap = devices["filecap"]
    assert cap["hostapi"] == "ALSA" and cap["channels"] > 2 and cap["default_samplerate"] > 0
    assert cap["id"] == "filecap"


#: Runs one input's real pipeline (SoundDeviceSource -> TrialStream -> WavSink) on `filecap`
#: for half a second of host time and prints the file's manifest record. A script rather than
#: a module process: the unpaced device floods the process, which would starve the heartbeats
#: a supervised module must send (a real card delivers in real time).
_SCRIPT = """
import asyncio, json, sys, time
from pathlib import Path
import numpy as np
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.modules.audio.backends import sounddevice_backend as sdb
from rpi_logger.modules.audio.backends.base import AudioInfo
from rpi_logger.modules.audio.pipeline import AudioPipeline

async def main(folder):
    [dev] = sdb.select_devices(sdb.list_input_devices(), "filecap")
    info = AudioInfo(dev["id"], dev["name"], "sounddevice", False, 48000, 2, "int16", 4800,
                     dev["hostapi"], dev["index"])
    # The first blocks straight from the source (the hand-off holds them all): the file's
    # first pass, before the device's ring buffer wraps over a file at its end.
    first = []
    async with sdb.SoundDeviceSource(info) as source:
        async for block in source:
            first.append(block)
            if len(first) == 6:
                break
    np.save(Path(folder).parent / "first.npy", np.concatenate([b.data for b in first]))
    firsts = [[b.device_sample_index, b.frames, b.t_device_ns] for b in first]
    pipeline = AudioPipeline(sdb.SoundDeviceSource(info), {"queue_blocks": 1000})
    async with asyncio.TaskGroup() as tg:
        capture = tg.create_task(pipeline.capture())
        await pipeline.wait_open()
        window = TrialWindow(1, time.monotonic_ns() + 50_000_000)
        await pipeline.start_trial(window, Path(folder))
        await asyncio.sleep(0.5)
        window.stop_ns = time.monotonic_ns()
        record = await pipeline.stop_trial()
        capture.cancel()
    print(json.dumps({"path": str(record.path), "timing": str(record.timing), "first": firsts,
                      "start": window.start_ns, "stop": window.stop_ns,
                      "frames": record.frames, "dropped": record.dropped, **record.extra}))

asyncio.run(main(sys.argv[1]))
"""


def test_real_portaudio_stream_records_the_devices_samples(
    tmp_path: Path, alsa_env: dict[str, str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "Audio")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **alsa_env},
    )
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(entry["path"]).name == "trial001_filecap.wav"
    assert entry["clock"] == "adc" and entry["channels"] == 2 and entry["hostapi"] == "ALSA"
    data, rate = sf.read(entry["path"], dtype="int16", always_2d=True)
    assert rate == 48_000 and data.shape[1] == 2
    with open(entry["timing"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows, "no block recorded"
    assert len(data) == sum(int(r["frames"]) for r in rows) == entry["samples"]
    for a, b in itertools.pairwise(rows):
        assert int(b["sample_index"]) == int(a["sample_index"]) + int(a["frames"])
    for row in rows:
        assert row["t_device_ns"]  # PortAudio gave an ADC time
        assert entry["start"] <= int(row["t_mono_ns"]) < entry["stop"]
    # The samples: the first blocks the source delivered are the file's, on both channels, back
    # to back. The device counts from its first callback; ALSA may read a period before that:
    # one constant offset, found from the first frame (each frame of the pattern is unique).
    pattern = _pattern()
    first = np.load(tmp_path / "first.npy")
    [pos] = np.flatnonzero((pattern == first[0]).all(axis=1))
    k0 = entry["first"][0][0]
    assert [k for k, _, _ in entry["first"]] == [k0 + 4800 * j for j in range(6)]
    np.testing.assert_array_equal(first, pattern[pos : pos + len(first)])
    assert all(t for _, _, t in entry["first"])
    # A device that outruns real time: what was not kept is counted, by cause.
    assert entry["dropped"] == sum(entry["dropped_by_cause"].values())
