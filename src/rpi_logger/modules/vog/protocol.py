"""What the sVOG and wVOG are told and what their lines mean (design.md §6; the rest as their
firmware speaks it).

`SvogProtocol`: commands ``>KEY|VAL<<``, replies ``key|value`` (``stm|1``, ``data|trial,open_ms,
closed_ms``, ``configMaxOpen|1500`` ..., ``Click``, ``btn|1``). `WvogProtocol`: newline-ended
``key>value`` commands 25 ms apart (the firmware reads 10 ms chunks), ``set>key:value`` (a colon),
replies ``stm>1``, ``a>1`` ..., ``cfg>k:v,...``, ``dta>trial,open,closed,total,lens,battery,unix``.
Each turns the module's mode and times into the device's settings (`wanted`) and each line into
a `Reply`; a line it cannot read gives None (counted as malformed by the module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

MODES = ("cycle", "peek", "eBlindfold", "direct")
#: The sVOG's MaxOpen is a 16-bit unsigned int: its longest open time, the eBlindfold's search.
EBLIND_OPEN_MS = 65535


@dataclass(frozen=True, slots=True)
class Reply:
    """One line from the goggles, read.

    `kind`: ``lens`` (`lens` A, B or X = both, `is_open`), ``button`` (`is_open`: pressed),
    ``trial_end`` (`totals`: trial, open_ms, closed_ms, total_ms; `lens` the tag), ``config``
    (`config`: the keys it reports), ``trial_start``, ``battery`` (`value`), ``notice`` (`text`:
    a message such as a refused command; `refused` when the device did not do what it was told).
    """

    kind: str
    lens: str = "X"
    is_open: bool = False
    totals: tuple[int, ...] | None = None
    config: dict[str, str] = field(default_factory=dict)
    value: int | None = None
    text: str = ""
    refused: bool = False


class SvogProtocol:
    """The wired sVOG (Arduino firmware 2.2): one lens control (X)."""

    kind: ClassVar[str] = "sVOG"
    gap_s: ClassVar[float] = 0.0
    lenses: ClassVar[tuple[str, ...]] = ("x",)
    exp_start = b">do_expStart|<<"
    trial_start = b">do_trialStart|<<"
    trial_stop = b">do_trialStop|<<"
    get_config = b">get_config|<<"
    #: The key whose line ends a ``get_config`` readback (its last line).
    _last_config_key = "ButtonControl"

    @staticmethod
    def wanted(mode: str, open_ms: int, closed_ms: int, debounce_ms: int) -> dict[str, str]:
        """The device's settings for a mode (ButtonControl 0: the button runs the trial, 1: it
        drives the lens, 2: it asks for a peek; ClickMode 1 click, 0 hold)."""
        control = {"cycle": 0, "eBlindfold": 0, "peek": 2, "direct": 1}[mode]
        return {
            "MaxOpen": str(EBLIND_OPEN_MS if mode == "eBlindfold" else open_ms),
            "MaxClose": str(closed_ms),
            "Debounce": str(debounce_ms),
            "ClickMode": "0" if mode == "direct" else "1",
            "ButtonControl": str(control),
        }

    @staticmethod
    def set_commands(wanted: dict[str, str]) -> list[bytes]:
        return [f">set_config{k}|{v}<<".encode() for k, v in wanted.items()]

    @staticmethod
    def lens(lens: str, is_open: bool) -> bytes:
        return b">do_peekOpen|<<" if is_open else b">do_peekClose|<<"

    def config_complete(self, reply: Reply) -> bool:
        """True when `reply` ends a full readback of the settings."""
        return self._last_config_key in reply.config

    @staticmethod
    def parse(text: str) -> Reply | None:
        key, sep, value = text.partition("|")
        if sep:
            if key == "stm" and value in ("0", "1"):
                return Reply("lens", "X", value == "1")
            if key == "btn" and value in ("0", "1"):
                return Reply("button", is_open=value == "1")
            if key == "data":
                totals = _ints(value, 3)
                if totals is None:
                    return None
                trial, opened, closed = totals
                return Reply("trial_end", totals=(trial, opened, closed, opened + closed))
            if key.startswith("config") and len(key) > 6:
                return Reply("config", config={key[6:]: value.strip()})
            if key in ("deviceName", "deviceVer", "deviceDate"):
                return Reply("notice", text=text)
            return None
        if text == "Click":
            return Reply("button", is_open=True)
        if text == "trialStart":
            return Reply("trial_start")
        if text in ("expStart", "expStop"):
            return Reply("notice", text=text)
        if text.startswith("Initialize experiment"):  # a trial command it refused
            return Reply("notice", text=text, refused=True)
        # `do_trialStart` during a trial answers "1, 1"; an open lens told to open, a number.
        if text.replace(",", "").replace(" ", "").isdigit():
            return Reply("notice", text=text)
        return None


class WvogProtocol(SvogProtocol):
    """The wireless wVOG: lenses A (left) and B (right), X both."""

    kind: ClassVar[str] = "wVOG"
    gap_s: ClassVar[float] = 0.025
    lenses: ClassVar[tuple[str, ...]] = ("a", "b", "x")
    exp_start = b"exp>1\n"
    trial_start = b"trl>1\n"
    trial_stop = b"trl>0\n"
    get_config = b"get_cfg>\n"
    KEYS: ClassVar[tuple[str, ...]] = ("opn", "cls", "dbc", "srt", "dta", "drk", "clr", "typ")
    TYPES: ClassVar[dict[str, str]] = {
        "cycle": "cycle", "peek": "peek", "eBlindfold": "eblind", "direct": "direct",
    }  # fmt: skip

    @staticmethod
    def wanted(mode: str, open_ms: int, closed_ms: int, debounce_ms: int) -> dict[str, str]:
        """``srt`` 1: clear at the trial's start; ``dta`` 0: one report at the trial's end."""
        return {
            "opn": str(EBLIND_OPEN_MS if mode == "eBlindfold" else open_ms),
            "cls": str(closed_ms),
            "dbc": str(debounce_ms),
            "typ": WvogProtocol.TYPES[mode],
            "srt": "1" if mode in ("cycle", "eBlindfold") else "0",
            "dta": "0",
        }

    @staticmethod
    def set_commands(wanted: dict[str, str]) -> list[bytes]:
        return [f"set>{k}:{v}\n".encode() for k, v in wanted.items()]

    @staticmethod
    def lens(lens: str, is_open: bool) -> bytes:
        return f"{lens.lower()}>{int(is_open)}\n".encode()

    def config_complete(self, reply: Reply) -> bool:
        return len(reply.config) > 1

    @staticmethod
    def parse(text: str) -> Reply | None:
        if text.startswith("Unknown command"):
            return Reply("notice", text=text, refused=True)
        key, sep, value = text.partition(">")
        if not sep:
            return None
        if key in ("stm", "a", "b", "x") and value in ("0", "1"):
            return Reply("lens", "X" if key == "stm" else key.upper(), value == "1")
        if key == "dta" and "," in value:
            parts = value.split(",")
            totals = _ints(",".join(parts[:4]), 4)
            if totals is None:
                return None
            tag = parts[4].strip().upper() if len(parts) > 4 else "X"
            return Reply("trial_end", tag if tag in ("A", "B", "X") else "X", totals=totals)
        if key == "cfg":
            pairs = (item.partition(":") for item in value.split(","))
            config = {k.strip(): v.strip() for k, s, v in pairs if s}
            return Reply("config", config=config) if config else None
        if key in WvogProtocol.KEYS:  # a setting's echo
            return Reply("config", config={key: value.strip()})
        if key == "bty" and value.strip().isdigit():
            return Reply("battery", value=int(value))
        if key in ("exp", "trl"):
            return Reply("notice", text=text)
        return None


def _ints(text: str, n: int) -> tuple[int, ...] | None:
    """Exactly `n` comma-separated non-negative integers, or None."""
    parts = text.split(",")
    if len(parts) != n or not all(p.strip().isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)
