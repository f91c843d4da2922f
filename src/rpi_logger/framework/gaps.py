"""Device sequence gaps: the one place the package counts samples a device never delivered."""

from __future__ import annotations


class SequenceGapCounter:
    """Counts the holes in a stream of device sequence numbers.

    Feed it every sequence number the device is known to have produced, in order: those that
    reached us and those we lost ourselves (a full hand-off), so only the device's own misses
    count as gaps.
    """

    __slots__ = ("gaps", "last")

    def __init__(self) -> None:
        self.last: int | None = None
        self.gaps = 0  # sequence numbers missing between consecutive ones

    def update(self, sequence: int) -> int:
        """Feed the next sequence number; returns how many were missing before it (0 normally).
        A sequence that does not advance is not a gap."""
        last = self.last
        if last is None:
            self.last = sequence
            return 0
        missing = sequence - last - 1 if sequence > last + 1 else 0
        self.gaps += missing
        if sequence > last:
            self.last = sequence
        return missing
