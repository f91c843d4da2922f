"""config.txt format: parsing, quoting, in-place edits (examples and properties)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpi_logger.config import (
    ConfigDocument,
    ConfigError,
    format_value,
    parse_config,
    read_config,
    write_config,
)

# ---- strategies ---------------------------------------------------------------------------

# Pieces that stress the quoting rules; mixed with arbitrary text so hypothesis also explores.
TRICKY = [
    "",
    " ",
    "  ",
    "\t",
    "#",
    "=",
    '"',
    "'",
    "\\",
    '\\"',
    "\\\\",
    "\u00a0",
    "é",
    "日本",
    "🙂",
    "\x00",
    "\x85",
    "\u2028",
    "\ufeff",
    "# x",
    " = ",
    "'#'",
    '"a"',
]
SAFE_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r")
values = st.one_of(
    st.text(SAFE_CHARS, max_size=30),
    st.lists(st.one_of(st.sampled_from(TRICKY), st.text(SAFE_CHARS, max_size=4)), max_size=8).map(
        "".join
    ),
)
KEY_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r=#")
keys = st.text(KEY_CHARS, min_size=1, max_size=12).filter(
    lambda k: k == k.strip() and k and not k.startswith("\ufeff")
)
comments = st.text(SAFE_CHARS, max_size=15).map(lambda c: "#" + c)


# ---- examples -----------------------------------------------------------------------------


def test_parse_examples_with_comments_quotes_and_line_numbers() -> None:
    text = (
        "# camera settings\n"
        "\n"
        "fps = 30  # frames per second\n"
        '  label = "front # door"   # indented, quoted\n'
        "name='it\\'s'\n"
        "path = C:\\data\\x\n"
        "eq = a=b=c\n"
        'empty = ""\n'
        "unset =    # nothing\n"
        'inner = say "hi" now\n'
        'esc = "a\\\\b\\"c\\d"\n'
    )
    entries = parse_config(text, "config.txt")
    got = {e.key: (e.value, e.line, e.quoted) for e in entries}
    assert got == {
        "fps": ("30", 3, False),
        "label": ("front # door", 4, True),
        "name": ("it's", 5, True),
        "path": ("C:\\data\\x", 6, False),
        "eq": ("a=b=c", 7, False),
        "empty": ("", 8, True),
        "unset": ("", 9, False),
        "inner": ('say "hi" now', 10, False),
        "esc": ('a\\b"c\\d', 11, True),
    }


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("a = 1\njust words\n", 2, "expected 'key = value'"),
        ('# ok\n\nx = "abc\n', 3, "unterminated"),
        ("x = 'abc\\'\n", 1, "unterminated"),
        ('a = 1\nb = "x" y\n', 2, "after closing quote"),
        ("= 5\n", 1, "missing key"),
        ("a # comment = 5\n", 1, "expected 'key = value'"),
    ],
)
def test_parse_errors_name_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "conf/config.txt")
    assert str(info.value).startswith(f"conf/config.txt:{line}:")
    assert fragment in str(info.value)
    assert info.value.line == line
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("30", "30"),
        ("", '""'),
        ("a # b", '"a # b"'),
        (" lead", '" lead"'),
        ("trail ", '"trail "'),
        ('"quoted"', '"\\"quoted\\""'),
        ("'single", '"\'single"'),
        ("C:\\data", "C:\\data"),
        ("back\\slash #", '"back\\\\slash #"'),
        (None, ""),
    ],
)
def test_format_value(value: str | None, written: str) -> None:
    assert format_value(value) == written


def test_update_keeps_layout_and_inline_comment() -> None:
    text = "# head\r\n\r\n    fps = 30  # frames per second\r\nx=1\r\ndev =   # auto\r\nlast = 1"
    doc = ConfigDocument.parse(text)
    doc.update({"fps": "60", "x": "2", "dev": "cam0", "new": "v # w"})
    assert doc.render() == (
        "# head\r\n\r\n    fps = 60  # frames per second\r\nx=2\r\ndev = cam0 # auto\r\n"
        'last = 1\r\nnew = "v # w"\r\n'
    )
    doc.update({"dev": None})
    assert "dev = # auto\r\n" in doc.render()
    assert ConfigDocument.parse(doc.render()).to_dict()["dev"] == ""


def test_update_rejects_bad_keys_and_values() -> None:
    doc = ConfigDocument.parse("a = 1\n")
    for bad in ["", " a", "a ", "a=b", "a#b", "a\nb", "\ufeffa"]:
        with pytest.raises(ConfigError):
            doc.update({bad: "1"})
    for bad_value in ["x\ny", "x\ry"]:
        with pytest.raises(ConfigError):
            doc.update({"a": bad_value})
    assert doc.render() == "a = 1\n"


def test_repeated_key_last_wins_and_update_sets_all() -> None:
    doc = ConfigDocument.parse("a = 1\nb = 2\na = 3\n")
    assert doc.to_dict() == {"a": "3", "b": "2"}
    doc.update({"a": "9"})
    assert doc.render() == "a = 9\nb = 2\na = 9\n"


def test_bom_and_missing_final_newline_are_handled() -> None:
    doc = ConfigDocument.parse("\ufeffa = 1")
    assert doc.to_dict() == {"a": "1"}
    doc.update({"b": "2"})
    assert doc.render() == "\ufeffa = 1\nb = 2\n"


# ---- properties ---------------------------------------------------------------------------


@given(key=keys, value=values, comment=st.one_of(st.none(), comments))
def test_format_then_parse_round_trips(key: str, value: str, comment: str | None) -> None:
    line = f"{key} = {format_value(value)}"
    if comment is not None:
        line += "  " + comment
    (entry,) = parse_config(line + "\n")
    assert (entry.key, entry.value) == (key, value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.dictionaries(keys, values, min_size=1, max_size=6))
def test_write_then_read_returns_same_values(data: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.txt"
        path.write_text("# existing comment\nkeep = me  # yes\n", encoding="utf-8")
        write_config(path, data)
        expected = {"keep": "me", **data}
        assert read_config(path) == expected
        # A second write of the same values must be a no-op on content.
        before = path.read_bytes()
        write_config(path, data)
        assert path.read_bytes() == before


# A file made of comments, blank/indented lines and entries (unique keys), CRLF or LF.
entry_lines = st.tuples(
    st.sampled_from(["", "  ", "\t"]),
    keys,
    st.sampled_from(["=", " = ", " =", "=  "]),
    values,
    st.one_of(st.none(), comments),
)
file_lines = st.lists(
    st.one_of(
        st.just(("blank", "")),
        st.just(("blank", "   ")),
        comments.map(lambda c: ("comment", c)),
        comments.map(lambda c: ("comment", "   " + c)),
        entry_lines.map(lambda e: ("entry", e)),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=file_lines, ending=st.sampled_from(["\n", "\r\n"]), data=st.data())
def test_update_preserves_every_other_line_byte_for_byte(
    lines: list[tuple[str, object]], ending: str, data: st.DataObject
) -> None:
    rendered: list[str] = []
    entry_keys: list[str] = []
    comments_of: dict[str, str | None] = {}
    for kind, item in lines:
        if kind == "entry":
            indent, key, eq, value, comment = item  # type: ignore[misc]
            if key in comments_of:
                continue  # keep keys unique so "the updated line" is a single line
            text = f"{indent}{key}{eq}{format_value(value)}"
            if comment is not None:
                text += " " + comment
            entry_keys.append(key)
            comments_of[key] = comment
            rendered.append(text)
        else:
            rendered.append(item)  # type: ignore[arg-type]
    original = "".join(line + ending for line in rendered)
    target = data.draw(st.one_of(st.sampled_from(entry_keys), keys) if entry_keys else keys)
    new_value = data.draw(values)

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.txt"
        path.write_bytes(original.encode("utf-8"))
        write_config(path, {target: new_value})
        after = path.read_bytes().decode("utf-8")

    old_lines = _split(original)
    new_lines = _split(after)
    if target in comments_of:
        idx = entry_keys.index(target)
        # Locate the target's line by counting entry lines.
        pos = [i for i, (kind, item) in enumerate(_kinds(lines)) if kind == "entry"][idx]
        assert len(new_lines) == len(old_lines)
        for i, (old, new) in enumerate(zip(old_lines, new_lines, strict=True)):
            if i != pos:
                assert new == old
        updated = new_lines[pos]
        assert updated.endswith(ending)
        comment = comments_of[target]
        if comment is not None:
            assert updated[: -len(ending)].endswith(comment)
    else:
        assert new_lines[: len(old_lines)] == old_lines
        assert len(new_lines) == len(old_lines) + 1
        # An empty file has no line ending to copy, so "\n" is used.
        nl = ending if original else "\n"
        assert new_lines[-1] == f"{target} = {format_value(new_value)}{nl}"
    assert ConfigDocument.parse(after).to_dict()[target] == new_value


def _split(text: str) -> list[str]:
    return [line + "\n" for line in text.split("\n")[:-1]] if text else []


def _kinds(lines: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """The lines that were actually rendered (duplicate-key entries were skipped)."""
    seen: set[str] = set()
    out = []
    for kind, item in lines:
        if kind == "entry":
            key = item[1]  # type: ignore[index]
            if key in seen:
                continue
            seen.add(key)
        out.append((kind, item))
    return out
