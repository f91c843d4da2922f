"""The level meter: RMS and peak per channel in dBFS over each update interval, for the UI."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: dBFS reported for silence (instead of minus infinity, which JSON cannot carry).
FLOOR_DBFS = -120.0

_FULL_SCALE = {"int16": 32768.0, "int32": 2147483648.0, "float32": 1.0}


def dbfs(value: float) -> float:
    """A linear level (1.0 = full scale) in dBFS, rounded to 0.1 dB, floored."""
    return round(max(FLOOR_DBFS, 20 * math.log10(value)) if value > 0 else FLOOR_DBFS, 1)


class LevelMeter:
    """Accumulates blocks on the loop (a few µs each); `take` reports and starts over."""

    def __init__(self, channels: int, dtype: str) -> None:
        self.channels = channels
        self._scale = _FULL_SCALE.get(dtype, 1.0)
        self._sumsq = np.zeros(channels)
        self._peak = np.zeros(channels)
        self._n = 0

    def add(self, data: np.ndarray) -> None:
        x = data.astype(np.float32)
        self._sumsq += np.einsum("ij,ij->j", x, x, dtype=np.float64)
        np.maximum(self._peak, np.abs(x).max(axis=0), out=self._peak)
        self._n += x.shape[0]

    def take(self) -> dict[str, Any] | None:
        """``{"rms_dbfs": [...], "peak_dbfs": [...], "samples": n}`` since the last call, or
        None when no sample came."""
        if not self._n:
            return None
        rms = np.sqrt(self._sumsq / self._n) / self._scale
        peak = self._peak / self._scale
        out = {
            "rms_dbfs": [dbfs(float(v)) for v in rms],
            "peak_dbfs": [dbfs(float(v)) for v in peak],
            "samples": self._n,
        }
        self._sumsq[:] = 0
        self._peak[:] = 0
        self._n = 0
        return out
