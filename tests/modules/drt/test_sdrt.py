"""sDRT lines to classified stimuli on the host clock, on the simulated sDRT behind a pty."""

from __future__ import annotations

import asyncio

import pytest

from rpi_logger.framework.serial import Line, SerialOptions, SerialSource
from rpi_logger.io.serial.ports import USB_IDS
from rpi_logger.modules.drt.sdrt import SdrtTracker, classify
from rpi_logger.simulation.serial.sdrt import SimulatedSDRT, response_ms


def test_classification_by_us() -> None:
    assert [classify(v) for v in (None, -1, 99, 100, 2500, 2501)] == [
        "miss", "miss", "premature", "hit", "hit", "late",
    ]  # fmt: skip


def test_lines_to_stimuli_with_misses_and_malformed_lines() -> None:
    tracker = SdrtTracker()
    t = 10**12
    assert tracker.line("stm>1", t) is None
    tracker.line("clk>1", t + 300 * 10**6)
    tracker.line("stm>0", t + 300 * 10**6)
    hit = tracker.line("trl>5000,1,300", t + 2500 * 10**6)
    assert hit is not None and (hit.result, hit.rt_ms, hit.clicks) == ("hit", 300, 1)
    tracker.line("stm>1", t + 4 * 10**9)
    miss = tracker.line("trl>9000,2,-1", t + 6 * 10**9)
    assert miss is not None and (miss.result, miss.rt_ms, miss.clicks) == ("miss", None, 0)
    for bad in ("trl>1,2", "\x00garbage", "zzz>1", "trl>a,b,c"):
        assert tracker.line(bad, t) is None
    assert tracker.malformed == 4
    tracker.line("cfg>lowerISI:3000,upperISI:5000,stimDur:1000,intensity:255", t)
    assert tracker.config["stimDur"] == "1000"


@pytest.mark.exclusive  # onsets against the clock: alone on the cores (test.sh)
async def test_onsets_mapped_to_the_host_schedule() -> None:
    """Two stimuli in real time (about 11 s; the 45 s run belongs to the module's test)."""
    async with SimulatedSDRT() as sim:
        source = SerialSource("sdrt", SerialOptions(usb_ids=[USB_IDS["sDRT"]], lister=sim.ports))
        mapped, arrival = SdrtTracker(), SdrtTracker(mapped=False)
        got = []
        async with source, asyncio.timeout(20):
            source_iter = aiter(source)
            await anext(source_iter)  # connected
            source.send(b"exp_start\n\r")
            async for ev in source_iter:
                if isinstance(ev, Line):
                    a = arrival.line(ev.text, ev.t_mono_ns)
                    m = mapped.line(ev.text, ev.t_mono_ns)
                    if m is not None:
                        got.append((m, a))
                        if len(got) == 2:
                            break
    # Live, a stimulus is mapped with the pairs so far; at the trial's end, with all of them.
    for k, (m, a) in enumerate(got, start=1):
        m = mapped.remap(m)
        true = sim.onsets[k - 1]
        assert true % 10**9 == 0 if k == 1 else True  # the first onset on a whole second
        # Four pairs only: each is as good as its own line's latency (0.5-3 ms, more when a
        # busy host reads late). The 2 ms target needs a trial's worth of pairs
        # (tests/io/test_clock_fit.py, test_drt_module.py).
        assert abs(m.t_mono_ns - true) <= 10_000_000, (k, m.t_mono_ns - true)
        assert a.t_mono_ns - true >= 500_000  # arrival times are always late
        assert abs(m.rt_ms - response_ms(k)) <= 1 and m.result == "hit"
