"""Parse, edit and render ``config.txt`` files without losing their layout.

Format (one setting per line)::

    # whole-line comment
    fps = 30            # inline comment
    label = "front # door"
    device =            # bare empty value: "unset"

* Lines are separated by ``\\n``; a ``\\r`` right before it is part of the line ending
  (CRLF files stay CRLF). Blank lines and whitespace-only lines are kept as they are.
* A line whose first non-blank character is ``#`` is a comment.
* Any other non-blank line is ``key = value``. The key is the text before the first ``=``,
  stripped of surrounding whitespace; it must be non-empty and contain no ``#``.
* **Unquoted value**: the text after ``=`` up to the first ``#`` (which starts an inline
  comment), stripped of surrounding whitespace. Quotes and backslashes inside it are literal
  (``path = C:\\data`` is ``C:\\data``); a value that *starts* with a quote is a quoted value.
* **Quoted value**: starts with ``"`` or ``'`` and ends at the matching unescaped quote.
  Inside, a backslash escapes only a backslash or that same quote character: ``\\\\`` is one
  backslash and ``\\"`` a double quote (``\\'`` inside single quotes); any other backslash is
  literal, so a hand-written ``"C:\\data"`` means ``C:\\data``. After the closing quote only
  whitespace and an inline comment may follow. ``#``, ``=``, quotes and leading or trailing
  spaces survive inside quotes.
* A missing closing quote, text after the closing quote, or a line without ``=`` is an error
  (:class:`ConfigError` naming the file and line).

Writing: a value is written bare when that reads back identically, otherwise in double quotes
with every backslash doubled and every ``"`` written as ``\\"``. Values that need quotes: empty,
leading or trailing whitespace, containing ``#``, or starting with a quote. ``None`` is written as
a bare empty value (``key =``), which readers of typed settings treat as "unset".
Values may hold any Unicode text except ``\\n`` and ``\\r``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "MAX_CONFIG_BYTES",
    "ConfigDocument",
    "ConfigEntry",
    "ConfigError",
    "ConfigTooLargeError",
    "duplicate_warnings",
    "format_size",
    "format_value",
    "parse_config",
    "validate_key",
    "validate_value",
]

_QUOTES = ("'", '"')
#: A config file is a few hundred bytes; anything over this is a mistake (a log or data file
#: saved under the wrong name) and is refused instead of being parsed for minutes.
MAX_CONFIG_BYTES = 1 << 20
_FORBIDDEN_IN_VALUE = ("\n", "\r")


class ConfigError(ValueError):
    """A config file or value is invalid; the message names file, line, key and expectation."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        super().__init__(message)
        self.source = source
        self.line = line


class ConfigTooLargeError(ConfigError):
    """A config file over :data:`MAX_CONFIG_BYTES`; ``size`` is its size in bytes."""

    def __init__(self, source: str, size: int) -> None:
        super().__init__(
            f"{source} is {format_size(size)}; the limit is {format_size(MAX_CONFIG_BYTES)}",
            source=source,
        )
        self.size = size


def format_size(size: int) -> str:
    """A byte count for messages: ``512 bytes``, ``1.5 KiB``, ``59 MiB``, ``1 MiB``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            value = size / scale
            text = f"{value:.0f}" if value >= 10 else f"{value:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    return f"{size} bytes"


def duplicate_warnings(entries: Iterable[ConfigEntry], source: str = "<string>") -> list[str]:
    """One message per line that sets a key already set above it (the last value wins)."""
    first: dict[str, int] = {}
    out: list[str] = []
    for entry in entries:
        if entry.key in first:
            out.append(
                f"{source}:{entry.line}: key {entry.key!r} set again "
                f"(first at line {first[entry.key]}); the last value wins"
            )
        else:
            first[entry.key] = entry.line
    return out


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One ``key = value`` line: ``line`` is 1-based, ``quoted`` tells ``""`` from a bare empty."""

    key: str
    value: str
    line: int
    quoted: bool = False


@dataclass(slots=True)
class _Line:
    """A physical line split into the parts an in-place edit needs.

    For entries, ``head`` is indentation + key + ``=`` + spacing, ``value_text`` the value as
    written (quotes included) and ``tail`` the spacing + inline comment; comment and blank lines
    keep everything in ``head``. ``ending`` is ``"\\n"``, ``"\\r\\n"`` or ``""`` (last line).
    """

    head: str
    ending: str
    entry: ConfigEntry | None = None
    value_text: str = ""
    tail: str = ""

    def render(self) -> str:
        return self.head + self.value_text + self.tail + self.ending


def validate_key(key: object) -> str:
    """Return ``key`` if it can be written as a config key, else raise :class:`ConfigError`."""
    if not isinstance(key, str):
        raise ConfigError(f"config key {key!r}: expected a string")
    if not key:
        raise ConfigError("config key must not be empty")
    if key != key.strip():
        raise ConfigError(f"config key {key!r} must not have surrounding whitespace")
    for bad in ("=", "#", *_FORBIDDEN_IN_VALUE):
        if bad in key:
            raise ConfigError(f"config key {key!r} must not contain {bad!r}")
    if key.startswith("\ufeff"):
        # A leading BOM is dropped on read, so such a key could not be read back.
        raise ConfigError(f"config key {key!r} must not start with a byte-order mark")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"config key {key!r} is not valid text: {exc}") from exc
    return key


def validate_value(key: str, value: str) -> str:
    """Return ``value`` if it can be stored (no newline, encodable as UTF-8)."""
    for bad in _FORBIDDEN_IN_VALUE:
        if bad in value:
            raise ConfigError(f"config key {key!r}: value {value!r} must not contain {bad!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"config key {key!r}: value {value!r} is not valid text: {exc}") from exc
    return value


def _needs_quotes(value: str) -> bool:
    return value == "" or value != value.strip() or "#" in value or value[0] in _QUOTES


def format_value(value: str | None) -> str:
    """Render a value as it appears after ``=``: bare when safe, else double-quoted.

    ``None`` renders as the bare empty value ("unset").
    """
    if value is None:
        return ""
    if not _needs_quotes(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_quoted(body: str, source: str, lineno: int, key: str) -> tuple[str, int]:
    """Parse a quoted value at the start of ``body``; return (value, index after close quote)."""
    quote = body[0]
    out: list[str] = []
    i = 1
    n = len(body)
    while i < n:
        ch = body[i]
        if ch == "\\" and i + 1 < n and body[i + 1] in ("\\", quote):
            out.append(body[i + 1])
            i += 2
            continue
        if ch == quote:
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise ConfigError(
        f"{source}:{lineno}: key {key!r}: unterminated {quote} quote", source=source, line=lineno
    )


def _split_lines(text: str) -> Iterable[tuple[str, str]]:
    """Yield (content, ending) pairs; only ``\\n`` ends a line (``\\r\\n`` kept as the ending)."""
    start = 0
    n = len(text)
    while start < n:
        nl = text.find("\n", start)
        if nl < 0:
            yield text[start:], ""
            return
        if nl > start and text[nl - 1] == "\r":
            yield text[start : nl - 1], "\r\n"
        else:
            yield text[start:nl], "\n"
        start = nl + 1


def _parse_line(content: str, ending: str, lineno: int, source: str) -> _Line:
    stripped = content.strip()
    if not stripped or stripped.startswith("#"):
        return _Line(head=content, ending=ending)
    eq = content.find("=")
    hash_pos = content.find("#")
    if eq < 0 or (0 <= hash_pos < eq):
        raise ConfigError(
            f"{source}:{lineno}: expected 'key = value', got {content.strip()!r}",
            source=source,
            line=lineno,
        )
    key = content[:eq].strip()
    if not key:
        raise ConfigError(f"{source}:{lineno}: missing key before '='", source=source, line=lineno)
    if "\r" in key:
        raise ConfigError(
            f"{source}:{lineno}: key {key!r} contains '\\r'", source=source, line=lineno
        )
    rest = content[eq + 1 :]
    lead = len(rest) - len(rest.lstrip())
    head = content[: eq + 1] + rest[:lead]
    body = rest[lead:]
    if body[:1] in _QUOTES:
        value, end = _parse_quoted(body, source, lineno, key)
        after = body[end:]
        if after.strip() and not after.lstrip().startswith("#"):
            raise ConfigError(
                f"{source}:{lineno}: key {key!r}: unexpected text after closing quote: "
                f"{after.strip()!r}",
                source=source,
                line=lineno,
            )
        value_text, tail, quoted = body[:end], after, True
    else:
        cut = body.find("#")
        raw = body if cut < 0 else body[:cut]
        value = raw.rstrip()
        value_text, tail, quoted = value, body[len(value) :], False
    if "\r" in value:
        # A lone CR would not survive editors or our own writer; reject it early.
        raise ConfigError(
            f"{source}:{lineno}: key {key!r}: value contains '\\r'", source=source, line=lineno
        )
    entry = ConfigEntry(key=key, value=value, line=lineno, quoted=quoted)
    return _Line(head=head, ending=ending, entry=entry, value_text=value_text, tail=tail)


class ConfigDocument:
    """A parsed ``config.txt`` that can be edited in place and rendered back.

    Lines that are not edited render byte-for-byte as they were read.
    """

    __slots__ = ("_bom", "_lines", "source")

    def __init__(self, lines: list[_Line], source: str = "<string>", bom: str = "") -> None:
        self._lines = lines
        self.source = source
        self._bom = bom

    @classmethod
    def parse(cls, text: str, source: str = "<string>") -> ConfigDocument:
        """Parse ``text``; raise :class:`ConfigError` (with ``source`` and line) on bad lines."""
        bom = ""
        if text.startswith("\ufeff"):
            # Editors on some systems add a BOM; keep it so the file round-trips unchanged.
            bom, text = "\ufeff", text[1:]
        lines = [
            _parse_line(content, ending, lineno, source)
            for lineno, (content, ending) in enumerate(_split_lines(text), start=1)
        ]
        return cls(lines, source, bom)

    def entries(self) -> list[ConfigEntry]:
        """All entries in file order (duplicates included)."""
        return [ln.entry for ln in self._lines if ln.entry is not None]

    def warnings(self) -> list[str]:
        """What is legal but probably a mistake: keys set more than once (file:line each)."""
        return duplicate_warnings(self.entries(), self.source)

    def to_dict(self) -> dict[str, str]:
        """Key -> value; for a key given twice the last line wins."""
        return {e.key: e.value for e in self.entries()}

    def update(self, updates: Mapping[str, str | None]) -> None:
        """Set values in place (every line of a repeated key), append new keys at the end.

        Indentation, spacing and the inline comment of an updated line are kept.
        """
        clean: dict[str, str | None] = {}
        for key, value in updates.items():
            validate_key(key)
            clean[key] = None if value is None else validate_value(key, value)
        seen: set[str] = set()
        for i, ln in enumerate(self._lines):
            if ln.entry is None or ln.entry.key not in clean:
                continue
            value = clean[ln.entry.key]
            seen.add(ln.entry.key)
            text = format_value(value)
            head, tail = ln.head, ln.tail
            comment = tail.strip()  # the inline comment ("# ..."), or ""
            if not ln.value_text:
                # An empty value leaves all blanks after "=" in the head ("dev =   # note"):
                # re-space it as "dev = new # note", or "dev=new" if it was written compactly.
                base = head.rstrip()
                head = base + (" " if base != head else "")
                tail = " " + comment if comment else ""
            elif not comment:
                tail = ""  # drop trailing blanks of the old value
            elif not tail[0].isspace():
                tail = " " + tail
            if not text:
                # Unset: "key =" or "key = # note", never trailing blanks.
                head = head.rstrip()
                tail = " " + comment if comment else ""
            self._lines[i] = _Line(
                head=head,
                ending=ln.ending,
                entry=ConfigEntry(
                    ln.entry.key,
                    "" if value is None else value,
                    ln.entry.line,
                    quoted=text.startswith('"'),
                ),
                value_text=text,
                tail=tail,
            )
        new = [k for k in clean if k not in seen]
        if not new:
            return
        if self._lines and self._lines[-1].ending == "":
            # The last line had no newline; give it the file's usual line ending first.
            self._lines[-1].ending = self._newline()
        nl = self._newline()
        lineno = len(self._lines)
        for key in new:
            lineno += 1
            value = clean[key]
            text = format_value(value)
            head = f"{key} = " if text else f"{key} ="
            entry = ConfigEntry(
                key, "" if value is None else value, lineno, quoted=text.startswith('"')
            )
            self._lines.append(_Line(head=head, ending=nl, entry=entry, value_text=text))

    def _newline(self) -> str:
        for ln in self._lines:
            if ln.ending:
                return ln.ending
        return "\n"

    def render(self) -> str:
        """The document as text, ready to be written."""
        return self._bom + "".join(ln.render() for ln in self._lines)


def parse_config(text: str, source: str = "<string>") -> list[ConfigEntry]:
    """Parse config text into entries with 1-based line numbers (file order, duplicates kept)."""
    return ConfigDocument.parse(text, source).entries()
