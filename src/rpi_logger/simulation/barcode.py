"""The simulated camera's barcodes (design.md: Simulated devices): write them into a frame, read
them back.

Two rows of 32 cells, each cell 16x16 pixels, in the top-left corner, most significant bit first,
white = 1, black = 0. Row 0 (y 0-15) holds the source's frame counter, row 1 (y 16-31) holds
``(t_mono_ns // 1_000_000) % 2**32``, the capture time in whole milliseconds. A checker
(`rpi-logger verify`, the tests) recovers both from a decoded video frame with `decode_barcodes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CELLS = 32
CELL_PX = 16
BARCODE_WIDTH = CELLS * CELL_PX  # 512: the minimum frame width
BARCODE_HEIGHT = 2 * CELL_PX  # 32
MOD = 2**32

_SHIFTS = np.arange(CELLS - 1, -1, -1, dtype=np.uint64)
# Cell centres, and a half-width of the averaged patch: the 8x8 middle of each 16x16 cell keeps
# clear of the ringing H.264 puts along cell edges.
_CENTRES = np.arange(CELLS) * CELL_PX + CELL_PX // 2
_HALF = 4


def ms_of(t_mono_ns: int) -> int:
    """The value row 1 carries for a capture time."""
    return (t_mono_ns // 1_000_000) % MOD


def row_pixels(value: int, white: int = 255, black: int = 0) -> np.ndarray:
    """One barcode row as a ``(BARCODE_WIDTH,)`` uint8 line (to be repeated over 16 rows)."""
    bits = (np.uint64(value % MOD) >> _SHIFTS) & np.uint64(1)
    levels = np.where(bits.astype(bool), np.uint8(white), np.uint8(black)).astype(np.uint8)
    return np.repeat(levels, CELL_PX)


def draw_barcodes(image: np.ndarray, counter: int, ms: int, pixel_format: str = "rgb24") -> None:
    """Write both barcodes into ``image`` in place (32 rows x 512 columns, nothing else).

    rgb24: cells are 255 / 0 on all channels. yuv420p: luma is 235 / 16 (video range, which
    decodes to RGB 255 / 0) and the chroma under the barcodes is neutral.
    """
    if pixel_format == "yuv420p":
        y0 = row_pixels(counter, 235, 16)
        y1 = row_pixels(ms, 235, 16)
        height = image.shape[0] * 2 // 3
        width = image.shape[1]
        image[0:CELL_PX, 0:BARCODE_WIDTH] = y0
        image[CELL_PX:BARCODE_HEIGHT, 0:BARCODE_WIDTH] = y1
        # Chroma planes follow the luma plane; each is (H/2, W/2) laid out row after row.
        chroma = image[height:].reshape(-1)
        cw, ch = width // 2, height // 2
        for plane in range(2):
            p = chroma[plane * ch * cw : (plane + 1) * ch * cw].reshape(ch, cw)
            p[0 : BARCODE_HEIGHT // 2, 0 : BARCODE_WIDTH // 2] = 128
        return
    r0 = row_pixels(counter)
    r1 = row_pixels(ms)
    if image.ndim == 3:
        image[0:CELL_PX, 0:BARCODE_WIDTH, :] = r0[None, :, None]
        image[CELL_PX:BARCODE_HEIGHT, 0:BARCODE_WIDTH, :] = r1[None, :, None]
    else:
        image[0:CELL_PX, 0:BARCODE_WIDTH] = r0
        image[CELL_PX:BARCODE_HEIGHT, 0:BARCODE_WIDTH] = r1


def _read_row(luma: np.ndarray, row: int, threshold: float) -> int:
    cy = row * CELL_PX + CELL_PX // 2
    band = luma[cy - _HALF : cy + _HALF, :BARCODE_WIDTH].astype(np.float32)
    # Mean over each cell's central 8x8 patch: one reshape, no per-pixel Python.
    lo, hi = CELL_PX // 2 - _HALF, CELL_PX // 2 + _HALF
    cells = band.reshape(2 * _HALF, CELLS, CELL_PX)[:, :, lo:hi]
    means = cells.mean(axis=(0, 2))
    value = 0
    for bit in means > threshold:
        value = (value << 1) | int(bit)
    return value


def decode_barcodes(image: np.ndarray, threshold: float = 128.0) -> tuple[int, int]:
    """Read ``(counter, ms)`` from a frame.

    Accepts an RGB/BGR ``(H, W, 3)`` array, a grey or luma ``(H, W)`` array, or a packed yuv420p
    buffer ``(H * 3 // 2, W)`` (its first rows are the luma plane). Robust to H.264 compression.
    """
    if image.ndim == 3:
        corner = image[:BARCODE_HEIGHT, :BARCODE_WIDTH, :3].astype(np.float32).mean(axis=2)
    elif image.ndim == 2:
        corner = image[:BARCODE_HEIGHT, :BARCODE_WIDTH]
    else:
        raise ValueError(f"expected a 2-D or 3-D image, got shape {image.shape}")
    if corner.shape[0] < BARCODE_HEIGHT or corner.shape[1] < BARCODE_WIDTH:
        raise ValueError(
            f"image {image.shape[1]}x{image.shape[0]} is smaller than the "
            f"{BARCODE_WIDTH}x{BARCODE_HEIGHT} barcode area"
        )
    return _read_row(corner, 0, threshold), _read_row(corner, 1, threshold)


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One decoded video frame: presentation time and its two barcodes."""

    pts_s: float
    counter: int
    ms: int


@dataclass(slots=True)
class VideoBarcodes:
    """Everything `read_video_barcodes` found in a file."""

    frames: list[DecodedFrame]
    error: str | None = None  # why decoding stopped early (truncated file), None if clean


def _luma(frame: Any) -> np.ndarray:
    """The frame's luma plane as a 2-D array, without an RGB conversion when it is YUV."""
    fmt = frame.format.name
    if fmt.startswith(("yuv", "yuvj", "nv12", "nv21", "gray")):
        plane = frame.planes[0]
        arr = np.frombuffer(plane, dtype=np.uint8).reshape(frame.height, plane.line_size)
        return arr[:, : frame.width]
    return frame.to_ndarray(format="gray")


def read_video_barcodes(path: str | Path, max_frames: int | None = None) -> VideoBarcodes:
    """Decode a video (blocking) and read both barcodes of every frame, in presentation order.

    A file cut short (kill -9, power cut) yields the frames before the damage and an ``error``.
    """
    import av  # local: keeps `decode_barcodes` importable without PyAV

    out: list[DecodedFrame] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                t = float(frame.pts * frame.time_base) if frame.pts is not None else float("nan")
                counter, ms = decode_barcodes(_luma(frame))
                out.append(DecodedFrame(t, counter, ms))
                if max_frames is not None and len(out) >= max_frames:
                    break
    except (av.error.FFmpegError, OSError, IndexError) as exc:
        return VideoBarcodes(out, f"{type(exc).__name__}: {exc}")
    return VideoBarcodes(out)
