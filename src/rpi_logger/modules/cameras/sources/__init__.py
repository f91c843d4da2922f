"""Camera backends: ``synthetic`` (design.md: Simulated devices), ``opencv`` (USB/V4L2),
``picamera2`` (CSI).

`backend_class(name)` imports a backend on demand (picamera2 is only loaded when asked for).
"""

from __future__ import annotations

import importlib

from rpi_logger.modules.cameras.frames import CameraDescriptor, FrameSource

_BACKENDS: dict[str, tuple[str, str]] = {
    "synthetic": ("rpi_logger.modules.cameras.sources.synthetic", "SyntheticSource"),
    "opencv": ("rpi_logger.modules.cameras.sources.opencv_source", "OpenCVSource"),
    "picamera2": ("rpi_logger.modules.cameras.sources.picamera2_source", "Picamera2Source"),
}
BACKEND_NAMES: tuple[str, ...] = tuple(_BACKENDS)


def backend_class(name: str) -> type[FrameSource]:
    """The `FrameSource` subclass of a backend, by name."""
    try:
        module, cls = _BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown camera backend {name!r}; expected one of {', '.join(BACKEND_NAMES)}"
        ) from None
    return getattr(importlib.import_module(module), cls)


def list_all_cameras() -> dict[str, tuple[bool, str, list[CameraDescriptor]]]:
    """Per real backend: (available, reason if not, cameras found). Blocking: run on a thread."""
    out: dict[str, tuple[bool, str, list[CameraDescriptor]]] = {}
    for name in ("picamera2", "opencv"):
        cls = backend_class(name)
        ok, why = cls.available()
        out[name] = (ok, why, cls.list_cameras() if ok else [])
    return out


__all__ = ["BACKEND_NAMES", "backend_class", "list_all_cameras"]
