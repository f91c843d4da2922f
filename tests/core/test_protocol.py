"""Protocol v1 parsing: every malformed message gets a precise error, never an exception."""

from __future__ import annotations

import json

import pytest

from rpi_logger.core import protocol


def test_valid_command_parses() -> None:
    line = protocol.encode(protocol.command(7, "start_trial", {"at_mono_ns": 5, "trial": 1}))
    cmd = protocol.parse_command(line)
    assert (cmd.id, cmd.cmd, cmd.args["at_mono_ns"]) == (7, "start_trial", 5)


@pytest.mark.parametrize(
    ("line", "code", "msg_id"),
    [
        (b"not json", protocol.BAD_JSON, None),
        (b"[1,2]", protocol.BAD_MESSAGE, None),
        (b'{"v":2,"id":1,"cmd":"status"}', protocol.BAD_MESSAGE, 1),
        (b'{"v":1,"cmd":"status"}', protocol.BAD_MESSAGE, None),
        (b'{"v":1,"id":"x","cmd":"status"}', protocol.BAD_MESSAGE, None),
        (b'{"v":1,"id":3,"cmd":"fly"}', protocol.UNKNOWN_COMMAND, 3),
        (b'{"v":1,"id":4,"cmd":"start_trial","args":{"trial":1}}', protocol.BAD_ARGS, 4),
        (
            b'{"v":1,"id":5,"cmd":"start_trial","args":{"trial":1,"at_mono_ns":"soon"}}',
            protocol.BAD_ARGS,
            5,
        ),
        (
            b'{"v":1,"id":6,"cmd":"start_trial","args":{"trial":true,"at_mono_ns":1}}',
            protocol.BAD_ARGS,
            6,
        ),
        (b'{"v":1,"id":7,"cmd":"status","args":[]}', protocol.BAD_ARGS, 7),
    ],
)
def test_malformed_commands_name_the_problem(line: bytes, code: str, msg_id: int | None) -> None:
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_command(line)
    assert info.value.code == code
    assert info.value.msg_id == msg_id
    assert info.value.message


def test_module_specific_commands_are_validated() -> None:
    extra = {"add_note": {"text": ((str,), True)}}
    assert protocol.parse_command(
        b'{"v":1,"id":1,"cmd":"add_note","args":{"text":"hi"}}', extra
    ).args == {"text": "hi"}
    with pytest.raises(protocol.ProtocolError, match="text"):
        protocol.parse_command(b'{"v":1,"id":1,"cmd":"add_note","args":{"text":5}}', extra)


def test_replies_and_events_round_trip() -> None:
    reply = protocol.parse_incoming(protocol.encode(protocol.reply_ok(3, {"a": 1})))
    assert isinstance(reply, protocol.Reply) and reply.ok and reply.result == {"a": 1}
    err = protocol.parse_incoming(protocol.encode(protocol.reply_error(4, "bad_args", "no")))
    assert (
        isinstance(err, protocol.Reply)
        and not err.ok
        and err.error == {"code": "bad_args", "message": "no"}
    )
    ev = protocol.parse_incoming(protocol.encode(protocol.event("heartbeat", {"x": 1})))
    assert isinstance(ev, protocol.Event) and ev.data == {"x": 1}


def test_encoded_lines_are_single_lines() -> None:
    line = protocol.encode(protocol.event("status", {"text": "a\nb\u2028c"}))
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert json.loads(line)["data"]["text"] == "a\nb\u2028c"
