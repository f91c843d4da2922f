"""Protocol v1: JSON lines between the master and a module process (see docs/protocol.md).

Master -> module, one command per line:  {"v":1, "id":N, "cmd":"...", "args":{...}}
Module -> master, exactly one reply:      {"v":1, "id":N, "ok":true, "result":{...}}
                                       or {"v":1, "id":N, "ok":false,
                                           "error":{"code":..., "message":...}}
Module -> master, unsolicited events:     {"v":1, "event":"...", "data":{...}}
"""

from __future__ import annotations

import asyncio
import json
import reprlib
from dataclasses import dataclass, field
from typing import Any

VERSION = 1
MAX_LINE_BYTES = 1_000_000
# Deepest nesting of arrays/objects a message may have (the message object is level 1). Real
# messages need a handful of levels; the bound keeps hostile input from exhausting the stack
# of the parser or of any later repr/encode of the message.
MAX_DEPTH = 64

# Error codes carried in error replies.
BAD_JSON = "bad_json"
BAD_MESSAGE = "bad_message"
UNKNOWN_COMMAND = "unknown_command"
BAD_ARGS = "bad_args"
BAD_STATE = "bad_state"
FAILED = "failed"

# Event names.
EV_STATUS = "status"
EV_HEARTBEAT = "heartbeat"
EV_ERROR = "error"
EV_FILE = "file"
EV_PREVIEW = "preview"

_INT = (int,)
_NUM = (int, float)
_STR = (str,)
_NONE = (type(None),)

# Per command: argument name -> (accepted types, required).
COMMAND_ARGS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "configure": {"settings": ((dict,), False), "simulate": ((bool,), False)},
    "start_session": {"session_dir": (_STR, True), "session_start_mono_ns": (_INT, False)},
    "start_trial": {
        "at_mono_ns": (_INT, True),
        "trial": (_INT, True),
        "label": (_STR + _NONE, False),
        "part": (_INT, False),
        "trial_start_mono_ns": (_INT, False),
    },
    "stop_trial": {"at_mono_ns": (_INT, True)},
    "end_session": {},
    "status": {},
    "quit": {},
}


class ProtocolError(Exception):
    """A message that cannot be served; becomes an error reply with `code`."""

    def __init__(self, code: str, message: str, msg_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.msg_id = msg_id


@dataclass(slots=True)
class Command:
    id: int
    cmd: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Reply:
    id: int
    ok: bool
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None


@dataclass(slots=True)
class Event:
    event: str
    data: dict[str, Any] = field(default_factory=dict)


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line of UTF-8 JSON (no embedded newlines: JSON escapes them)."""
    return (json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def command(msg_id: int, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"v": VERSION, "id": msg_id, "cmd": cmd, "args": args or {}}


def reply_ok(msg_id: int, result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"v": VERSION, "id": msg_id, "ok": True, "result": result or {}}


def reply_error(msg_id: int | None, code: str, message: str) -> dict[str, Any]:
    return {"v": VERSION, "id": msg_id, "ok": False, "error": {"code": code, "message": message}}


def event(name: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"v": VERSION, "event": name, "data": data or {}}


_short = reprlib.Repr()
_short.maxlevel, _short.maxstring, _short.maxother, _short.maxlist, _short.maxdict = 3, 60, 60, 6, 6


def _too_deep(obj: Any, text: bytes | str) -> bool:
    """Whether `obj` nests deeper than MAX_DEPTH (iterative: safe at any depth)."""
    if isinstance(text, bytes):
        brackets = text.count(b"[") + text.count(b"{")
    else:
        brackets = text.count("[") + text.count("{")
    if brackets <= MAX_DEPTH:
        return False  # cannot nest deeper than it has brackets (the common, cheap case)
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            if isinstance(child, dict | list):
                if depth >= MAX_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def _load(line: bytes | str) -> dict[str, Any]:
    """One line as a message object; anything else raises `ProtocolError`, nothing else."""
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolError(BAD_MESSAGE, f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        obj = json.loads(line)
    except RecursionError:
        raise ProtocolError(BAD_MESSAGE, f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an int of 4300+ digits
        raise ProtocolError(BAD_JSON, f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(BAD_MESSAGE, "a message must be a JSON object")
    msg_id = obj.get("id")
    if _too_deep(obj, line):
        raise ProtocolError(
            BAD_MESSAGE,
            f"nested deeper than {MAX_DEPTH} levels",
            msg_id if _is_int(msg_id) else None,
        )
    if obj.get("v") != VERSION:
        raise ProtocolError(
            BAD_MESSAGE,
            f"unsupported protocol version {obj.get('v')!r}",
            msg_id if _is_int(msg_id) else None,
        )
    return obj


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true/false must not pass as an integer
    return isinstance(value, types)


def parse_command(line: bytes | str, extra: dict[str, dict] | None = None) -> Command:
    """Parse and validate one command line. `extra` adds module-specific command schemas.

    Raises `ProtocolError` naming what is wrong; its `msg_id` is set when the id was readable, so
    the error reply can carry it.
    """
    obj = _load(line)
    msg_id = obj.get("id")
    if not _is_int(msg_id):
        raise ProtocolError(BAD_MESSAGE, "a command needs an integer 'id'")
    cmd = obj.get("cmd")
    if not isinstance(cmd, str):
        raise ProtocolError(BAD_MESSAGE, "a command needs a string 'cmd'", msg_id)
    schemas = COMMAND_ARGS if not extra else {**COMMAND_ARGS, **extra}
    schema = schemas.get(cmd)
    if schema is None:
        raise ProtocolError(UNKNOWN_COMMAND, f"unknown command {cmd!r}", msg_id)
    args = obj.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ProtocolError(BAD_ARGS, "'args' must be an object", msg_id)
    for name, (types, required) in schema.items():
        if name not in args:
            if required:
                raise ProtocolError(BAD_ARGS, f"{cmd}: missing argument {name!r}", msg_id)
            continue
        if not _type_ok(args[name], types):
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ProtocolError(
                BAD_ARGS,
                f"{cmd}: argument {name!r} must be {expected}, got {_short.repr(args[name])}",
                msg_id,
            )
    return Command(msg_id, cmd, args)


def parse_incoming(line: bytes | str) -> Reply | Event:
    """Parse a line a module sent to the master (a reply or an event).

    Whatever the line holds, the only exception is `ProtocolError`: a module may print anything.
    """
    obj = _load(line)
    if "event" in obj:
        name, data = obj["event"], obj.get("data", {})
        if not isinstance(name, str) or not isinstance(data, dict):
            raise ProtocolError(BAD_MESSAGE, "an event needs a string 'event' and object 'data'")
        return Event(name, data)
    msg_id, ok = obj.get("id"), obj.get("ok")
    if not _is_int(msg_id) or not isinstance(ok, bool):
        raise ProtocolError(BAD_MESSAGE, "a reply needs an integer 'id' and boolean 'ok'")
    if ok:
        result = obj.get("result") or {}
        if not isinstance(result, dict):
            raise ProtocolError(BAD_MESSAGE, "'result' must be an object")
        return Reply(msg_id, True, result=result)
    error = obj.get("error")
    if not isinstance(error, dict):
        error = {"code": FAILED, "message": error if isinstance(error, str) else _short.repr(error)}
    code, message = error.get("code", FAILED), error.get("message", "")
    return Reply(
        msg_id,
        False,
        error={
            "code": code if isinstance(code, str) else _short.repr(code),
            "message": message if isinstance(message, str) else _short.repr(message),
        },
    )


#: Stands for a line over MAX_LINE_BYTES that was read and dropped whole (see `read_line`).
TOO_LONG = b"<line too long>"


async def read_line(reader: asyncio.StreamReader) -> bytes | None:
    """The next line of a protocol stream; None at its end; `TOO_LONG` for a line over the
    reader's limit, which is dropped through its newline in bounded pieces, so a whole overlong
    line counts as one bad line and its tail is never read as another message."""
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial or None  # a last line without a newline, then the end
    except asyncio.LimitOverrunError as exc:
        consumed = exc.consumed
    while True:
        await reader.readexactly(consumed)
        try:
            await reader.readuntil(b"\n")
            return TOO_LONG
        except asyncio.IncompleteReadError:
            return TOO_LONG
        except asyncio.LimitOverrunError as exc:
            consumed = exc.consumed
