"""A simulated u-blox-like GPS receiver at 1 Hz behind a pty (design.md §7).

For each whole UTC second `u` it sends RMC, GGA, VTG, GSA and GSV (talker GN/GP) 120-300 ms after
`u` (seeded), with ``lat = 52.0 + 0.001 * sin(2*pi*u/60)``, ``lon = 13.0 + 0.001 *
cos(2*pi*u/60)``, 9 satellites, fix quality 1. UTC is the host's wall clock (the receiver's
own time is the truth a fix carries).

Faults a test can ask for (any thread), each for a number of seconds from now: `quiet` (no
sentence at all, the port stays open: an antenna fault, a receiver that hangs), `freeze` (the
receiver repeats its last fix: the same UTC time and position every second) and `lose_fix`
(RMC status ``V`` with empty position fields, GGA quality 0, as before a first fix).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from rpi_logger.simulation.serial.pty_device import PtyDevice

SECOND = 1_000_000_000


def position(u: float) -> tuple[float, float]:
    """design.md §7's position at UTC second `u`."""
    return (
        52.0 + 0.001 * math.sin(2 * math.pi * u / 60),
        13.0 + 0.001 * math.cos(2 * math.pi * u / 60),
    )


def checksum(body: str) -> str:
    value = 0
    for ch in body.encode("ascii"):
        value ^= ch
    return f"{value:02X}"


def sentence(body: str) -> str:
    """``$body*CS``."""
    return f"${body}*{checksum(body)}"


def _coord(value: float, width: int, pos: str, neg: str) -> tuple[str, str]:
    hemi = pos if value >= 0 else neg
    micro_min = round(abs(value) * 60_000_000)  # millionths of a minute
    deg, rest = divmod(micro_min, 60_000_000)
    return f"{deg:0{width}d}{rest // 1_000_000:02d}.{rest % 1_000_000:06d}", hemi


def burst(u: int) -> list[str]:
    """The five sentences of the fix at UTC second `u`."""
    lat, lon = position(u)
    when = datetime.fromtimestamp(u, UTC)
    hms = when.strftime("%H%M%S") + ".00"
    dmy = when.strftime("%d%m%y")
    la, ns = _coord(lat, 2, "N", "S")
    lo, ew = _coord(lon, 3, "E", "W")
    sats = ",".join(f"{n:02d},{40 + n},{(n * 37) % 360:03d},{30 + n}" for n in range(1, 5))
    return [
        sentence(f"GNRMC,{hms},A,{la},{ns},{lo},{ew},0.52,87.30,{dmy},,,A"),
        sentence(f"GNGGA,{hms},{la},{ns},{lo},{ew},1,09,0.90,48.3,M,39.0,M,,"),
        sentence("GNVTG,87.30,T,,M,0.52,N,0.96,K,A"),
        sentence("GNGSA,A,3,01,02,03,04,05,06,07,08,09,,,,1.60,0.90,1.32"),
        sentence(f"GPGSV,3,1,09,{sats}"),
    ]


def burst_no_fix(u: int) -> list[str]:
    """The sentences of second `u` from a receiver without a fix: time and date, no position."""
    when = datetime.fromtimestamp(u, UTC)
    hms = when.strftime("%H%M%S") + ".00"
    dmy = when.strftime("%d%m%y")
    return [
        sentence(f"GNRMC,{hms},V,,,,,,,{dmy},,,N"),
        sentence(f"GNGGA,{hms},,,,,0,00,99.99,,,,,,"),
        sentence("GNVTG,,,,,,,,,N"),
        sentence("GNGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99"),
    ]


class SimulatedGPS(PtyDevice):
    name = "GPS"
    usb_ids = (0x1546, 0x01A8)  # a u-blox 8 on USB (the pty is found by these in tests)

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("ppm", 0.0)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._next_u: int | None = None
        self.sent: list[int] = []  # UTC seconds whose fix was sent (a frozen one repeats)
        self._quiet_until = 0  # host mono ns: the faults below last until then
        self._frozen_until = 0
        self._frozen_u: int | None = None
        self._no_fix_until = 0

    # -- faults (any thread: plain assignments) ---------------------------------------------
    def quiet(self, seconds: float) -> None:
        """Send nothing for `seconds` from now (the port stays open): lines already due to go
        out are dropped too."""
        with self._lock:
            self._quiet_until = time.monotonic_ns() + int(seconds * 1e9)
            self._queue.clear()

    def freeze(self, seconds: float) -> None:
        """Repeat the last fix sent (its UTC time and position) every second for `seconds`."""
        self._frozen_u = self.sent[-1] if self.sent else None
        self._frozen_until = time.monotonic_ns() + int(seconds * 1e9)

    def lose_fix(self, seconds: float) -> None:
        """Report no fix (status V, empty position) for `seconds`."""
        self._no_fix_until = time.monotonic_ns() + int(seconds * 1e9)

    def _wall_to_mono(self, wall_ns: int) -> int:
        return wall_ns - time.time_ns() + time.monotonic_ns()

    def tick(self, now_ns: int) -> None:
        wall = time.time_ns()
        if self._next_u is None:
            self._next_u = wall // SECOND + 1
        u = self._next_u
        if wall < u * SECOND - 50_000_000:
            return
        self._next_u = u + 1
        if self.path is None or now_ns < self._quiet_until:  # unplugged or quiet: lost
            return
        delay = int(self._rng.uniform(120, 300) * 1e6)
        at = self._wall_to_mono(u * SECOND) + delay
        for i, line in enumerate(self._sentences(u, now_ns)):
            self.send_at(at + i * 1_000_000, line)  # 9600 baud: about 1 ms a line apart

    def _sentences(self, u: int, now_ns: int) -> list[str]:
        if now_ns < self._no_fix_until:
            return burst_no_fix(u)
        frozen = self._frozen_u if now_ns < self._frozen_until else None
        fix_u = u if frozen is None else frozen
        self.sent.append(fix_u)
        return burst(fix_u)
