"""Which serial port is a device on: USB VID:PID (design.md §6) or a configured path.

The port list is injectable (`PortLister`): a pseudo-terminal simulator has no VID:PID, so
tests hand the transport a lister that names the simulator's current pty with the ids of the
device it plays. The default lists the host's ports with pyserial (`serial.tools.list_ports`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: USB ids of the serial devices we know (design.md §6).
USB_IDS: dict[str, tuple[int, int]] = {
    "sDRT": (0x239A, 0x801E),
    "wDRT": (0xF056, 0x0457),
    "sVOG": (0x16C0, 0x0483),
    "wVOG": (0xF057, 0x08AE),
}


@dataclass(frozen=True, slots=True)
class PortInfo:
    """One serial port: its path and, for a USB device, its ids and serial number."""

    device: str
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    description: str = ""

    @property
    def usb_id(self) -> str:
        """``VVVV:PPPP`` in hex, or empty for a port without USB ids."""
        if self.vid is None or self.pid is None:
            return ""
        return f"{self.vid:04X}:{self.pid:04X}"


PortLister = Callable[[], Sequence[PortInfo]]


def system_ports() -> list[PortInfo]:
    """The host's serial ports (blocking: a sysfs scan; call it off the loop)."""
    from serial.tools import list_ports

    return [
        PortInfo(p.device, p.vid, p.pid, p.serial_number, p.description or "")
        for p in list_ports.comports()
    ]


def match_ports(
    ports: Sequence[PortInfo],
    *,
    usb_ids: Sequence[tuple[int, int]] = (),
    path: str | None = None,
) -> list[PortInfo]:
    """The ports that are the device: the configured `path`, else any with one of `usb_ids`.
    A configured path need not be listed (a UART such as ``/dev/serial0`` has no USB ids)."""
    if path:
        listed = [p for p in ports if p.device == path]
        return listed or [PortInfo(path)]
    wanted = set(usb_ids)
    return [p for p in ports if (p.vid, p.pid) in wanted]


def kind_of(port: PortInfo) -> str | None:
    """The device kind (``sDRT`` ...) a port's USB ids say it is, if any."""
    for kind, ids in USB_IDS.items():
        if (port.vid, port.pid) == ids:
            return kind
    return None
