"""The sounddevice backend: one PortAudio input stream per device, every channel kept.

PortAudio calls `AudioSource._callback` on its own thread with each block and its ADC time;
this file opens and closes the stream and lists the input devices. `sounddevice` is imported
only here and only when used, so a host without PortAudio still runs the simulated backend
(`available` says why the real one cannot).
"""

from __future__ import annotations

import re
from typing import Any

from rpi_logger.modules.audio.backends.base import AudioError, AudioInfo, AudioSource


def _sd() -> Any:
    import sounddevice  # raises OSError when the PortAudio library is missing

    return sounddevice


def available() -> tuple[bool, str]:
    """Whether PortAudio can be used here, and if not, why (one line)."""
    try:
        _sd()
    except (OSError, ImportError) as exc:
        return False, f"PortAudio not available: {exc}"
    return True, ""


def device_id(name: str) -> str:
    """A folder-safe id for a device name ("USB Audio: - (hw:1,0)" -> "usb_audio_hw_1_0")."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "input"


def list_input_devices() -> list[dict[str, Any]]:
    """Every input device: index, id, name, host API, channels, default rate, default.
    Blocking (PortAudio enumerates hardware): run it on a thread."""
    sd = _sd()
    hostapis = sd.query_hostapis()
    try:
        default_in = sd.default.device[0]
        if default_in is None or default_in < 0:
            default_in = sd.query_devices(kind="input")["index"]
    except Exception:  # no default input: PortAudio raises when there is none
        default_in = -1
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for dev in sd.query_devices():
        if dev["max_input_channels"] <= 0:
            continue
        ident = device_id(dev["name"])
        seen[ident] = seen.get(ident, 0) + 1
        if seen[ident] > 1:
            ident = f"{ident}_{seen[ident]}"
        out.append(
            {
                "index": dev["index"],
                "id": ident,
                "name": dev["name"],
                "hostapi": hostapis[dev["hostapi"]]["name"],
                "channels": dev["max_input_channels"],
                "default_samplerate": dev["default_samplerate"],
                "default": dev["index"] == default_in,
            }
        )
    return out


def select_devices(inputs: list[dict[str, Any]], wanted: str | None) -> list[dict[str, Any]]:
    """The inputs a ``devices`` setting names: indexes, ids, exact names or a unique part of a
    name; empty: the default input. Raises ValueError naming what matched nothing or too much."""
    items = [w.strip() for w in (wanted or "").split(",") if w.strip()]
    if not items:
        return [d for d in inputs if d["default"]][:1] or inputs[:1]
    chosen: list[dict[str, Any]] = []
    for item in items:
        if item.isdigit():
            hits = [d for d in inputs if d["index"] == int(item)]
        else:
            low = item.lower()
            hits = [d for d in inputs if low in (d["id"], d["name"].lower())]
            hits = hits or [d for d in inputs if low in d["name"].lower()]
        if len(hits) != 1:
            names = ", ".join(f"{d['index']}: {d['name']}" for d in inputs) or "none"
            what = "matches no input device" if not hits else "matches several input devices"
            raise ValueError(f"audio device {item!r} {what} (inputs: {names})")
        if hits[0] not in chosen:
            chosen.append(hits[0])
    return chosen


def check_settings(index: int, sample_rate: int, channels: int, dtype: str) -> str | None:
    """None when the device takes these settings, else PortAudio's reason. Blocking."""
    try:
        _sd().check_input_settings(
            device=index, samplerate=sample_rate, channels=channels, dtype=dtype
        )
    except Exception as exc:  # PortAudioError or ValueError, with PortAudio's message
        return str(exc)
    return None


class SoundDeviceSource(AudioSource):
    """A PortAudio input stream (see the module docstring)."""

    backend = "sounddevice"

    def __init__(self, info: AudioInfo, latency: str = "low", queue_size: int = 64) -> None:
        super().__init__(info, queue_size)
        self.latency = latency
        self._stream: Any = None

    def _stream_time(self) -> float:
        return float(self._stream.time) if self._stream is not None else 0.0

    def _device_open(self) -> AudioInfo:
        sd = _sd()
        info = self.info
        try:
            self._stream = sd.InputStream(
                device=info.device,
                samplerate=info.sample_rate,
                channels=info.channels,
                dtype=info.dtype,
                blocksize=info.blocksize,
                latency=self.latency,
                callback=self._callback,
            )
            self.clock.measure(self._stream_time)  # before the first callback needs it
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioError(f"audio device {info.name!r}: {exc}") from None
        self.clock.measure(self._stream_time)
        return info

    def _check_alive(self) -> None:
        stream = self._stream
        if stream is not None and not stream.active and not self._stop.is_set():
            raise AudioError(f"audio device {self.info.name!r} stopped (unplugged?)")

    def _device_close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
            finally:
                stream.close()
