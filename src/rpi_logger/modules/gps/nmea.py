"""NMEA 0183 sentences to one fix per epoch (our own parser: five sentence types, checksums
checked, any talker; pynmea2 would add a dependency and treats RMC status ``V`` as a fix).

`FixBuilder.line(text, t_mono_ns)` takes each sentence with its host arrival time. RMC and GGA
carry the fix's UTC time: a sentence with a new time starts a new fix and returns the one
before, complete (VTG, GSA and GSV that follow belong to the current fix). A sentence type the
fix already holds also starts a new one: a receiver repeating a frozen fix (same time), or one
without a time yet (empty time fields before its first fix), still gives one fix per epoch.
`flush()` returns the fix being built (at a trial's end, or when the receiver fell silent).
Empty fields (no fix yet) are normal: they give empty cells, never errors. The date comes from
RMC; GGA alone carries only the time of day, so a time earlier than the last one is the next
day (midnight).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

log = logging.getLogger(__name__)
KNOT_MPS = 0.514444
KMH_MPS = 1 / 3.6
TYPES = ("RMC", "GGA", "VTG", "GSA", "GSV")


class NmeaError(ValueError):
    """A sentence that is not valid NMEA (bad checksum, truncated, unknown shape)."""


def parse(text: str) -> tuple[str, str, list[str]]:
    """``(talker, type, fields)`` of a sentence with a good checksum; raises `NmeaError`."""
    if not text.startswith("$") or len(text) < 9:
        raise NmeaError("not a sentence")
    body, star, cs = text[1:].rpartition("*")
    if not star:
        raise NmeaError("no checksum")
    value = 0
    for ch in body.encode("ascii", "replace"):
        value ^= ch
    try:
        if int(cs[:2], 16) != value:
            raise NmeaError("bad checksum")
    except ValueError:
        raise NmeaError("bad checksum") from None
    fields = body.split(",")
    head = fields[0]
    if len(head) != 5:
        raise NmeaError("bad address")
    return head[:2], head[2:], fields[1:]


def _f(value: str) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _i(value: str) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _coord(value: str, hemi: str) -> float | None:
    """``ddmm.mmmm`` (or ``dddmm.mmmm``) and N/S/E/W to signed degrees."""
    if not value or "." not in value:
        return None
    dot = value.index(".")
    try:
        deg = int(value[: dot - 2])
        minutes = float(value[dot - 2 :])
    except ValueError:
        return None
    out = deg + minutes / 60
    return -out if hemi in ("S", "W") else out


def _tod(value: str) -> timedelta | None:
    """``hhmmss.ss`` as a time of day."""
    if len(value) < 6:
        return None
    try:
        return timedelta(hours=int(value[:2]), minutes=int(value[2:4]), seconds=float(value[4:]))
    except ValueError:
        return None


@dataclass(slots=True)
class Fix:
    """One fix: a GPS CSV row (design.md §5)."""

    t_mono_ns: int  # arrival of its first sentence
    tod: timedelta | None  # UTC time of day (None: the receiver does not know it yet)
    t_fix_unix: float | None = None
    lat: float | None = None
    lon: float | None = None
    alt_m: float | None = None
    speed_mps: float | None = None
    course_deg: float | None = None
    fix_quality: int | None = None
    satellites: int | None = None
    hdop: float | None = None
    pdop: float | None = None
    vdop: float | None = None
    valid: bool = False
    talkers: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)  # the sentence types it holds


class FixBuilder:
    """Sentences in, complete fixes out (module docstring)."""

    def __init__(self) -> None:
        self.fix: Fix | None = None
        self.date: date | None = None
        self._last_tod: timedelta | None = None
        self.malformed = 0
        self.sentences = 0

    def line(self, text: str, t_mono_ns: int) -> Fix | None:
        """One line; returns the previous fix when this one starts a new fix."""
        try:
            talker, kind, f = parse(text)
        except NmeaError as exc:
            self.malformed += 1
            log.debug("NMEA: %s: %r", exc, text[:82])
            return None
        self.sentences += 1
        if kind not in TYPES:
            return None
        done = None
        if kind in ("RMC", "GGA") and f:
            tod = _tod(f[0])
            if self._starts_fix(kind, tod):
                done = self.flush()
                self.fix = Fix(t_mono_ns, tod)
                if tod is not None:
                    self._date_for(tod)
        fix = self.fix
        if fix is None:
            return done
        fix.talkers.add(talker)
        fix.kinds.add(kind)
        try:
            getattr(self, f"_{kind.lower()}")(fix, f)
        except IndexError:  # a truncated sentence with a good checksum: what it has is kept
            self.malformed += 1
        return done

    def _starts_fix(self, kind: str, tod: timedelta | None) -> bool:
        """Whether an RMC or GGA with this time begins a new epoch."""
        fix = self.fix
        return fix is None or tod != fix.tod or kind in fix.kinds

    def _date_for(self, tod: timedelta) -> None:
        if self._last_tod is not None and self.date is not None and tod < self._last_tod:
            self.date += timedelta(days=1)  # past midnight before the next RMC says so
        self._last_tod = tod

    def flush(self) -> Fix | None:
        """The fix being built, finished (None when there is none)."""
        fix, self.fix = self.fix, None
        if fix is not None and fix.tod is not None and self.date is not None:
            day = datetime(self.date.year, self.date.month, self.date.day, tzinfo=UTC)
            fix.t_fix_unix = (day + fix.tod).timestamp()
        return fix

    def _rmc(self, fix: Fix, f: list[str]) -> None:
        fix.valid = f[1] == "A"  # V: the receiver says it has no fix (pynmea2 reads it anyway)
        if len(f[8]) == 6:
            try:
                self.date = date(2000 + int(f[8][4:6]), int(f[8][2:4]), int(f[8][:2]))
            except ValueError:
                self.malformed += 1
        if fix.valid:
            fix.lat = _coord(f[2], f[3]) if fix.lat is None else fix.lat
            fix.lon = _coord(f[4], f[5]) if fix.lon is None else fix.lon
            knots = _f(f[6])
            fix.speed_mps = None if knots is None else knots * KNOT_MPS
            fix.course_deg = _f(f[7])

    def _gga(self, fix: Fix, f: list[str]) -> None:
        fix.fix_quality = _i(f[5])
        fix.satellites = _i(f[6])
        fix.hdop = _f(f[7])
        if fix.fix_quality:
            fix.lat = _coord(f[1], f[2])
            fix.lon = _coord(f[3], f[4])
            fix.alt_m = _f(f[8])

    def _vtg(self, fix: Fix, f: list[str]) -> None:
        if fix.course_deg is None:
            fix.course_deg = _f(f[0])
        kmh = _f(f[6])
        if fix.speed_mps is None and kmh is not None:
            fix.speed_mps = kmh * KMH_MPS

    def _gsa(self, fix: Fix, f: list[str]) -> None:
        fix.pdop, fix.hdop, fix.vdop = _f(f[14]), _f(f[15]) or fix.hdop, _f(f[16])

    def _gsv(self, fix: Fix, f: list[str]) -> None:
        pass  # satellites in view: the count used comes from GGA
