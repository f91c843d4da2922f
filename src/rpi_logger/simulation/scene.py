"""The simulated camera picture: a scrolling background with the two barcodes of design.md:
Simulated devices, rendered as a function of the capture slot and capture time.

Used by the synthetic camera (Cameras) and the simulated Neon's scene camera (EyeTracker), so
both are checked by the same barcode reader. Cost per frame is one copy of a pre-rendered,
horizontally scrolling background (each frame needs its own buffer: consumers such as an encoder
queue keep frames for a while) plus writing 32 x 512 barcode pixels.
"""

from __future__ import annotations

import numpy as np

from rpi_logger.simulation.barcode import BARCODE_WIDTH, draw_barcodes, ms_of

PIXEL_FORMATS = ("rgb24", "yuv420p")
_SCROLL_PERIOD = 256  # background repeats every 256 px horizontally, so a scroll is a slice
_SCROLL_STEP = 4  # px per frame (even: keeps yuv420p chroma aligned)


def render_background_rgb(width: int, height: int) -> np.ndarray:
    """A colourful, horizontally periodic picture of width ``width + _SCROLL_PERIOD``."""
    w = width + _SCROLL_PERIOD
    x = np.arange(w, dtype=np.float32)[None, :]
    y = np.arange(height, dtype=np.float32)[:, None]
    phase = 2 * np.pi * x / _SCROLL_PERIOD
    r = 127.5 + 100 * np.sin(phase + y / 40.0)
    g = 127.5 + 100 * np.sin(2 * phase + 2.0) * np.cos(y / 90.0)
    b = np.broadcast_to(40 + 175 * (y / max(1, height - 1)), (height, w))
    img = np.stack([r, g, b], axis=2)
    # Vertical bars every 64 px give the encoder sharp, moving edges to track.
    img[:, (np.arange(w) % 64) < 6, :] = 235
    return np.clip(img, 0, 255).astype(np.uint8)


def rgb_to_yuv420p_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 video-range conversion, done once at start-up."""
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u = u.reshape(u.shape[0] // 2, 2, u.shape[1] // 2, 2).mean(axis=(1, 3))
    v = v.reshape(v.shape[0] // 2, 2, v.shape[1] // 2, 2).mean(axis=(1, 3))

    def u8(a: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)

    return u8(y), u8(u), u8(v)


def check_size(width: int, height: int, pixel_format: str, what: str = "simulated camera") -> None:
    """Raise ValueError (one line, naming `what`) for a size the picture cannot have."""
    if width < BARCODE_WIDTH:
        raise ValueError(f"{what} width must be at least {BARCODE_WIDTH}, got {width}")
    if height < 32:
        raise ValueError(f"{what} height must be at least 32, got {height}")
    if pixel_format not in PIXEL_FORMATS:
        raise ValueError(f"pixel_format must be one of {PIXEL_FORMATS}, got {pixel_format!r}")
    if pixel_format == "yuv420p" and (width % 2 or height % 2):
        raise ValueError("yuv420p needs an even width and height")


class SceneRenderer:
    """Frames of one simulated camera: `render(counter, t_mono_ns)` gives a fresh buffer
    (``(H, W, 3)`` rgb24 or packed ``(H * 3 // 2, W)`` yuv420p) with both barcodes."""

    def __init__(self, width: int, height: int, pixel_format: str = "rgb24") -> None:
        check_size(width, height, pixel_format)
        self.width = width
        self.height = height
        self.pixel_format = pixel_format
        self._bg_rgb: np.ndarray | None = None
        self._bg_yuv: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def prepare(self) -> None:
        """Pre-render the background (tens of ms at 720p): call it on the device thread."""
        if self._bg_rgb is None and self._bg_yuv is None:
            rgb = render_background_rgb(self.width, self.height)
            if self.pixel_format == "yuv420p":
                self._bg_yuv = rgb_to_yuv420p_planes(rgb)
            else:
                self._bg_rgb = rgb

    def render(self, counter: int, t_mono_ns: int) -> np.ndarray:
        """The image of capture slot ``counter`` taken at ``t_mono_ns`` (a fresh buffer)."""
        self.prepare()
        w, h = self.width, self.height
        off = (counter * _SCROLL_STEP) % _SCROLL_PERIOD
        if self._bg_yuv is not None:
            y, u, v = self._bg_yuv
            img = np.empty((h * 3 // 2, w), dtype=np.uint8)
            img[:h] = y[:, off : off + w]
            chroma = img[h:].reshape(-1)
            cw, ch, c_off = w // 2, h // 2, off // 2
            chroma[: ch * cw].reshape(ch, cw)[:] = u[:, c_off : c_off + cw]
            chroma[ch * cw :].reshape(ch, cw)[:] = v[:, c_off : c_off + cw]
            draw_barcodes(img, counter, ms_of(t_mono_ns), "yuv420p")
            return img
        assert self._bg_rgb is not None
        img = np.empty((h, w, 3), dtype=np.uint8)
        img[:] = self._bg_rgb[:, off : off + w]
        draw_barcodes(img, counter, ms_of(t_mono_ns))
        return img
