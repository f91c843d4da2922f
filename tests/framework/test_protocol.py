"""Protocol v1 parsing: every malformed message gets a precise error, never an exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpi_logger.framework import protocol


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


_DEEP = b'{"v":1,"id":1,"cmd":"status","args":' + b"[" * 100_000


@pytest.mark.parametrize(
    "line",
    [
        _DEEP,
        _DEEP + b"]" * 100_000 + b"}",
        b'{"v":1,"id":1,"cmd":"status","args":{"x":' + b"[" * 900 + b"]" * 900 + b"}}",
        b'{"v":1,"id":1,"cmd":"status","args":{"x":' + b"1" * 5000 + b"}}",
    ],
    ids=["unclosed-100k", "closed-100k", "closed-900", "5000-digit-int"],
)
def test_hostile_commands_raise_only_protocol_errors(line: bytes) -> None:
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_command(line)
    assert info.value.code in {protocol.BAD_JSON, protocol.BAD_MESSAGE}
    assert info.value.message


@pytest.mark.parametrize(
    "line",
    [
        b'{"v":1,"event":"heartbeat","data":{"x":' + b"[" * 100_000,
        b'{"v":1,"event":"heartbeat","data":{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
        b'{"v":1,"id":3,"ok":false,"error":' + b"[" * 900 + b"]" * 900 + b"}",
        b'{"v":1,"id":3,"ok":true,"result":{"n":' + b"9" * 5000 + b"}}",
    ],
    ids=["unclosed-event", "closed-event", "deep-error", "5000-digit-int"],
)
def test_hostile_module_lines_raise_only_protocol_errors(line: bytes) -> None:
    """The master reads whatever a module prints: nothing but ProtocolError may come out."""
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_incoming(line)


def test_moderate_nesting_is_still_accepted() -> None:
    nested = {"a": {"b": [[{"c": [1, 2, {"d": None}]}]]}}
    line = protocol.encode(protocol.command(1, "configure", {"settings": nested}))
    assert protocol.parse_command(line).args["settings"] == nested
    ev = protocol.parse_incoming(protocol.encode(protocol.event("heartbeat", nested)))
    assert isinstance(ev, protocol.Event) and ev.data == nested


def test_error_messages_stay_short_whatever_the_value() -> None:
    big = {"trial": ["x" * 500_000], "at_mono_ns": 1}
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_command(protocol.encode(protocol.command(2, "start_trial", big)))
    assert info.value.code == protocol.BAD_ARGS and len(info.value.message) < 300


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300),
        st.builds(
            lambda head, depth, tail: head + "[" * depth + tail,
            st.sampled_from(['{"v":1,"event":"x","data":', '{"v":1,"id":1,"ok":true,"result":']),
            st.integers(0, 5000),
            st.sampled_from(["", "]", "}", "1" * 4400]),
        ),
    )
)
def test_parse_incoming_raises_nothing_but_protocol_error(line: bytes | str) -> None:
    try:
        msg = protocol.parse_incoming(line)
    except protocol.ProtocolError as exc:
        assert exc.code in {protocol.BAD_JSON, protocol.BAD_MESSAGE}
    else:
        assert isinstance(msg, protocol.Reply | protocol.Event)
