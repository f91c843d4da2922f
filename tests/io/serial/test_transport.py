"""The serial transport on a simulated sDRT behind a pty: commands, lines, unplug, noise."""

from __future__ import annotations

import asyncio
import time

from rpi_logger.framework.serial import Line, Link, SerialOptions, SerialSource
from rpi_logger.io.serial.ports import USB_IDS, PortInfo, kind_of, match_ports
from rpi_logger.simulation.serial.sdrt import SimulatedSDRT


def options(sim: SimulatedSDRT, **kw: object) -> SerialOptions:
    base = dict(usb_ids=[USB_IDS["sDRT"]], lister=sim.ports, reconnect_interval_s=0.1)
    base.update(kw)
    return SerialOptions(**base)  # type: ignore[arg-type]


async def next_event(events: asyncio.Queue, kind: type, timeout: float = 5.0, pred=None):
    async with asyncio.timeout(timeout):
        while True:
            ev = await events.get()
            if isinstance(ev, kind) and (pred is None or pred(ev)):
                return ev


async def pump(source: SerialSource, events: asyncio.Queue) -> None:
    async with source:
        async for ev in source:
            events.put_nowait(ev)


def test_ports_matched_by_usb_id_or_configured_path() -> None:
    ports = [PortInfo("/dev/ttyACM0", 0x239A, 0x801E), PortInfo("/dev/ttyUSB0", 1, 2)]
    assert match_ports(ports, usb_ids=[USB_IDS["sDRT"]]) == ports[:1]
    assert match_ports(ports, path="/dev/serial0") == [PortInfo("/dev/serial0")]
    assert kind_of(ports[0]) == "sDRT" and ports[0].usb_id == "239A:801E"


async def test_settings_round_trip_and_stimulus_lines() -> None:
    async with SimulatedSDRT() as sim:
        source = SerialSource("sdrt", options(sim, command_gap_s=0.02))
        events: asyncio.Queue = asyncio.Queue()
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(pump(source, events))
            link = await next_event(events, Link)
            assert link.connected and link.port == sim.path
            assert source.send(b"set_stimDur 500\n\r")
            assert source.send(b"get_config\n\r")
            cfg = await next_event(events, Line, pred=lambda ev: ev.text.startswith("cfg>"))
            assert "stimDur:500" in cfg.text
            assert 0 < time.monotonic_ns() - cfg.t_mono_ns < 5e9
            source.send(b"stim_on\n\r")
            assert (await next_event(events, Line)).text == "stm>1"
            task.cancel()
        assert sim.commands == ["set_stimDur 500", "get_config", "stim_on"]


async def test_unplug_reconnects_and_says_when_the_last_line_came() -> None:
    async with SimulatedSDRT() as sim:
        source = SerialSource("sdrt", options(sim))
        events: asyncio.Queue = asyncio.Queue()
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(pump(source, events))
            first = await next_event(events, Link)
            source.send(b"get_config\n\r")
            before = await next_event(events, Line)
            sim.unplug(1.0)
            lost = await next_event(events, Link)
            assert not lost.connected and lost.last_line_ns == before.t_mono_ns
            back = await next_event(events, Link)
            assert back.connected and back.t_mono_ns - lost.t_mono_ns > 0.5e9
            source.send(b"get_config\n\r")
            after = await next_event(events, Line)
            assert after.text.startswith("cfg>") and after.sequence == before.sequence + 1
            assert source.serial_stats.disconnects == 1 and first.port
            task.cancel()


async def test_a_silent_link_is_lost_and_probed_first() -> None:
    async with SimulatedSDRT() as sim:
        # With a probe the quiet device answers and stays connected; without, it is lost.
        probed = SerialSource("p", options(sim, silent_timeout_s=0.6, probe=b"get_config\n\r"))
        events: asyncio.Queue = asyncio.Queue()
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(pump(probed, events))
            await next_event(events, Link)
            await next_event(events, Line, pred=lambda ev: ev.text.startswith("cfg>"))
            await asyncio.sleep(1.0)
            assert probed.connected and probed.serial_stats.disconnects == 0
            task.cancel()
        silent = SerialSource("s", options(sim, silent_timeout_s=0.4))
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(pump(silent, events))
            lost = await next_event(events, Link, pred=lambda ev: not ev.connected)
            assert "silent" in lost.reason
            task.cancel()


async def test_malformed_input_is_counted_never_fatal() -> None:
    async with SimulatedSDRT() as sim:
        source = SerialSource("sdrt", options(sim, max_line=64))
        events: asyncio.Queue = asyncio.Queue()
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(pump(source, events))
            await next_event(events, Link)
            sim.send_raw(b"\xff\xfe\x00\x81garbage\r\n")  # binary noise
            sim.send_raw(b"x" * 500)  # a flood without a terminator
            sim.send_raw(b"\r\nstm>1\r\n")
            line = await next_event(events, Line, pred=lambda ev: ev.text == "stm>1")
            stats = source.serial_stats
            assert stats.malformed >= 2 and stats.truncated >= 1 and line.sequence >= 1
            assert source.connected
            task.cancel()
