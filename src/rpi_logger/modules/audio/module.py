"""The Audio module: every selected input captured, during trials written to WAV with per-block
timing on the host clock, and a level meter for the UI.

Auto-detection: with `backend = auto` the module records the inputs PortAudio lists (the default
input when `devices` is empty); with none (or no PortAudio) it says so and offers a simulated
microphone, labelled simulated in its status and in the manifest. `--simulate` or
`backend = simulated` forces it. The input devices found (name, host API, channels, default
rate) are in configure's result and in every status.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from rpi_logger.framework import protocol
from rpi_logger.framework.base import CommandError, ModuleContext
from rpi_logger.framework.devices import DeviceModule
from rpi_logger.framework.lsl_outlets import Outlets
from rpi_logger.io.sinks.wav_sink import SUBTYPES
from rpi_logger.modules.audio import lsl_streams
from rpi_logger.modules.audio.backends import sounddevice_backend as sdb
from rpi_logger.modules.audio.backends.base import AudioInfo, AudioSource
from rpi_logger.modules.audio.backends.simulated import SimulatedAudioSource
from rpi_logger.modules.audio.pipeline import AudioPipeline
from rpi_logger.modules.audio.settings import SETTINGS
from rpi_logger.samples import AudioBlock

log = logging.getLogger("rpi_logger.audio")


def _find_inputs() -> tuple[list[dict[str, Any]], str | None]:
    """PortAudio's input devices (blocking), or why there are none to be had."""
    ok, why = sdb.available()
    if not ok:
        return [], why
    try:
        return sdb.list_input_devices(), None
    except Exception as exc:  # PortAudio enumeration failed: say so, offer the simulation
        return [], f"listing audio devices failed: {exc}"


def _real_sources(
    inputs: list[dict[str, Any]], settings: dict[str, Any]
) -> tuple[list[AudioSource], list[str]]:
    """Sources for the chosen inputs, and what is wrong with the settings (blocking checks)."""
    dtype = SUBTYPES[settings["format"]]
    problems: list[str] = []
    sources: list[AudioSource] = []
    for dev in sdb.select_devices(inputs, settings.get("devices")):
        channels = settings["channels"] or dev["channels"]
        why = sdb.check_settings(dev["index"], settings["sample_rate"], channels, dtype)
        if why:
            problems.append(
                f"{dev['name']}: {settings['sample_rate']} Hz, {channels} channels, "
                f"{settings['format']}: {why}"
            )
            continue
        info = AudioInfo(
            id=dev["id"],
            name=dev["name"],
            backend="sounddevice",
            simulated=False,
            sample_rate=settings["sample_rate"],
            channels=channels,
            dtype=dtype,
            blocksize=settings["blocksize"],
            hostapi=dev["hostapi"],
            device=dev["index"],
        )
        sources.append(sdb.SoundDeviceSource(info, latency=settings["latency"]))
    return sources, problems


def channel_levels(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The meter's last reading, one entry per channel of every input (the page's meters)."""
    out = []
    for device in devices:
        levels = device.get("levels") or {}
        pairs = zip(levels.get("rms_dbfs", []), levels.get("peak_dbfs", []), strict=False)
        for channel, (rms, peak) in enumerate(pairs):
            out.append(
                {"device": device["id"], "channel": channel, "rms_dbfs": rms, "peak_dbfs": peak}
            )
    return out


class AudioModule(DeviceModule[AudioPipeline]):
    settings = SETTINGS

    def __init__(self, context: ModuleContext) -> None:
        super().__init__(context)
        self.config: dict[str, Any] = {}
        self.inputs: list[dict[str, Any]] = []  # every input device PortAudio lists
        self.notes: list[str] = []
        self.lsl = Outlets(context.name, False)  # LSL outlets (lsl = true)

    def _publish(self, key: str, block: AudioBlock) -> None:
        self.lsl.push_chunk(key, lsl_streams.chunk_of(block))

    async def configure(self, settings: dict[str, Any], simulate: bool) -> dict[str, Any]:
        if self.trial is not None:
            raise CommandError("cannot reconfigure audio during a trial", protocol.BAD_STATE)
        backend = "simulated" if simulate else settings["backend"]
        self.notes = []
        sources: list[AudioSource] = []
        # Listed even when simulating: the UI shows what could be recorded.
        self.inputs, why = await asyncio.to_thread(_find_inputs)
        if why:
            self.notes.append(why)
        if backend != "simulated":
            if self.inputs:
                try:
                    sources, problems = await asyncio.to_thread(
                        _real_sources, self.inputs, settings
                    )
                except ValueError as exc:
                    raise CommandError(str(exc), protocol.BAD_ARGS) from None
                if problems:
                    raise CommandError("; ".join(problems), protocol.BAD_ARGS)
            if not sources and backend == "sounddevice":
                raise CommandError(f"no audio input: {'; '.join(self.notes) or 'none found'}")
            if not sources:
                log.warning(
                    "no audio input found (%s); offering a simulated microphone",
                    "; ".join(self.notes) or "PortAudio lists none",
                )
        if not sources:
            channels = settings["channels"] or 1
            sources = [
                SimulatedAudioSource(
                    channels=channels,
                    dtype=SUBTYPES[settings["format"]],
                    blocksize=settings["blocksize"],
                )
            ]
        self.config = settings
        pipelines = [AudioPipeline(s, settings) for s in sources]
        await self.lsl.aclose()
        self.lsl = Outlets(self.context.name, settings.get("lsl", False))
        await self.lsl.open([lsl_streams.outlet_spec(s.info) for s in sources])
        for pipeline in pipelines:
            if pipeline.id in self.lsl:
                pipeline.on_block = functools.partial(self._publish, pipeline.id)
        self.context.simulate = all(s.info.simulated for s in sources)
        self.set_devices(pipelines)  # run() restarts the capture loops with the new inputs
        return {
            "devices": [self._describe(p.source.info) for p in self.devices.values()],
            "inputs": self.inputs,
            "notes": self.notes,
        }

    @staticmethod
    def _describe(info: AudioInfo) -> dict[str, Any]:
        return {
            "id": info.id,
            "name": info.name,
            "backend": info.backend,
            "hostapi": info.hostapi,
            "sample_rate": info.sample_rate,
            "channels": info.channels,
            "simulated": info.simulated,
        }

    async def alongside(self, pipelines: list[AudioPipeline]) -> None:
        """Levels per input, as status events about `level_meter_hz` times a second."""
        rate = self.config.get("level_meter_hz", 10.0)
        if not rate:
            return
        while True:
            await asyncio.sleep(1.0 / rate)
            if any([p.take_levels() is not None for p in pipelines]):
                await self.emit_status()

    def status(self) -> dict[str, Any]:
        devices = self.device_status()
        return {"devices": devices, "inputs": self.inputs, "levels": channel_levels(devices)}
