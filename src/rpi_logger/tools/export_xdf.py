"""`rpi-logger export SESSION --xdf OUT`: every CSV stream of a session in one XDF 1.0 file.

XDF (the Lab Streaming Layer's file format, read by pyxdf, MNE, EEGLAB, MATLAB) is a magic
``XDF:`` and a sequence of chunks ``[length][tag][content]``: one FileHeader, then per stream a
StreamHeader (XML: name, type, channels, rate, format, description), Samples chunks (each
sample: its time stamp, then its values) and a StreamFooter. The format is small and stable,
so it is written here rather than through a library.

Every CSV with a ``t_mono_ns`` column becomes one stream, named after its path in the session
(``EyeTracker/neon/trial001_gaze``): gaze, IMU, eye events, audio block timing, video frame
timing (the frame markers), notes, time sync files and the LSL module's inlet streams. A
sample's time stamp is its row's ``t_mono_ns / 1e9``, exact (a double holds CLOCK_MONOTONIC
seconds to the nanosecond for centuries of uptime), and every other column is a channel: a
stream whose cells are all numbers is ``double64`` (an empty cell is NaN), else ``string``
(the cells as written). The session's clock offsets are the time sync files, each its own
stream; every time stamp is already on the host clock, so no ClockOffset chunk is written and
readers apply no correction. Streams carry ``desc/synchronization/can_drop_samples = true``:
their time stamps are measured ones, which pyxdf then keeps instead of fitting a line through
them (a gap or a dropped frame stays where it was).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import socket
import struct
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm

MAGIC = b"XDF:"
TAG_FILE_HEADER, TAG_STREAM_HEADER, TAG_SAMPLES, TAG_BOUNDARY, TAG_FOOTER = 1, 2, 3, 5, 6
#: LabRecorder's boundary chunk UUID (pyxdf scans to it to recover a damaged file).
BOUNDARY = bytes.fromhex("4374A3D6EAE54E6AA1C4396D0E1E88D6")
CHUNK_SAMPLES = 1000
csv.field_size_limit(sys.maxsize)


class ExportError(RuntimeError):
    """The session cannot be exported; the message says why in one line."""


@dataclass(slots=True)
class CsvStream:
    """One CSV of the session as an XDF stream."""

    path: Path
    name: str
    type: str
    columns: list[str]  # all columns; channels are all but t_mono_ns
    numeric: bool = True
    rows: int = 0
    rate: float = 0.0
    desc: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> list[str]:
        return [c for c in self.columns if c != "t_mono_ns"]


def _varlen(n: int) -> bytes:
    if n < 256:
        return struct.pack("<BB", 1, n)
    if n < 2**32:
        return struct.pack("<BI", 4, n)
    return struct.pack("<BQ", 8, n)


def _chunk(tag: int, content: bytes) -> bytes:
    body = struct.pack("<H", tag) + content
    return _varlen(len(body)) + body


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0"?>' + ET.tostring(root, encoding="utf-8")


def _add(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    node = ET.SubElement(parent, tag)
    if text is not None:
        node.text = str(text)
    return node


def _add_tree(parent: ET.Element, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, dict):
            _add_tree(_add(parent, key), value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _add_tree(_add(parent, key), item)
                else:
                    _add(parent, key, item)
        elif value is not None:
            _add(parent, key, value)


def _kind_of(rel: Path, entry: dict[str, Any] | None) -> tuple[str, float]:
    """The stream's XDF type and nominal rate from its file name and manifest entry."""
    stem = rel.stem
    if entry is not None and "lsl" in entry and entry.get("stream") == "samples":
        return entry["lsl"].get("type") or "LSL", float(entry["lsl"].get("nominal_srate") or 0)
    if stem.endswith("time_sync"):
        return "ClockOffsets", 0.0
    if entry is not None and entry.get("kind") == "video":
        return "VideoFrames", float(entry.get("fps") or 0)
    if entry is not None and entry.get("kind") == "audio":
        return "AudioBlocks", 0.0
    for suffix, kind, rate in (
        ("_gaze", "Gaze", 200.0),
        ("_imu", "IMU", 110.0),
        ("_events", "Markers", 0.0),
    ):
        if stem.endswith(suffix):
            return kind, rate
    if rel.name == "notes.csv":
        return "Markers", 0.0
    return "Data", 0.0


def _manifest_entries(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Manifest file entries by the relative path of each CSV they name (file or timing)."""
    out: dict[str, dict[str, Any]] = {}
    for trial in manifest.get("trials", []):
        for entry in trial.get("files", []):
            for key in ("path", "timing"):
                rel = entry.get(key)
                if rel and rel.endswith(".csv"):
                    out[rel] = {**entry, "trial": trial.get("number")}
    return out


def _is_number(text: str) -> bool:
    if text == "":
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def scan(session: Path) -> tuple[dict[str, Any], list[CsvStream]]:
    """The session's manifest and its CSV streams (first pass: columns, types, row counts)."""
    manifest_path = session / "session.json"
    if not manifest_path.is_file():
        raise ExportError(f"{session}: not a session folder (no session.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"{manifest_path}: cannot be read: {exc}") from None
    entries = _manifest_entries(manifest)
    streams = []
    for path in sorted(session.rglob("*.csv")):
        rel = path.relative_to(session)
        if any(part.startswith(".") for part in rel.parts):
            continue
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or "t_mono_ns" not in header:
                continue
            entry = entries.get(str(rel))
            kind, rate = _kind_of(rel, entry)
            stream = CsvStream(path, str(rel.with_suffix("")), kind, header, rate=rate)
            t_col = header.index("t_mono_ns")
            for row in reader:
                if len(row) != len(header) or not row[t_col].lstrip("-").isdigit():
                    continue  # a torn last line after a crash
                stream.rows += 1
                if stream.numeric and not all(_is_number(v) for v in row):
                    stream.numeric = False
        stream.desc = {"entry": entry}
        streams.append(stream)
    return manifest, streams


def rows_of(stream: CsvStream) -> Iterator[tuple[int, list[str]]]:
    """(t_mono_ns, channel cells) of each complete row."""
    with stream.path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader)
        t_col = header.index("t_mono_ns")
        for row in reader:
            if len(row) != len(header) or not row[t_col].lstrip("-").isdigit():
                continue
            yield int(row[t_col]), [v for i, v in enumerate(row) if i != t_col]


def _stream_header(stream: CsvStream, number: int, manifest: dict[str, Any]) -> bytes:
    info = ET.Element("info")
    host = manifest.get("host") or socket.gethostname()
    if isinstance(host, dict):
        host = host.get("name") or host.get("hostname") or ""
    entry = stream.desc.get("entry") or {}
    lsl = entry.get("lsl") or {}
    _add(info, "name", stream.name)
    _add(info, "type", stream.type)
    _add(info, "channel_count", len(stream.channels))
    _add(info, "nominal_srate", repr(float(stream.rate)))
    _add(info, "channel_format", "double64" if stream.numeric else "string")
    _add(info, "source_id", f"{manifest.get('session_id', '')}/{stream.name}")
    _add(info, "version", "1.1")
    _add(info, "created_at", 0)
    _add(info, "uid", str(uuid.uuid4()))
    _add(info, "session_id", manifest.get("session_id", ""))
    _add(info, "hostname", lsl.get("host") or host)
    desc = _add(info, "desc")
    channels = _add(desc, "channels")
    units = {}
    if lsl:
        units = dict(zip(stream.channels[2:], lsl.get("units") or [], strict=False))
    for name in stream.channels:
        ch = _add(channels, "channel")
        _add(ch, "label", name)
        unit = units.get(name) or _unit_of(name)
        if unit:
            _add(ch, "unit", unit)
    _add_tree(
        desc,
        {
            "synchronization": {"can_drop_samples": "true"},
            "acquisition": {"manufacturer": "RPi Logger", "model": entry.get("module", "")},
            "rpi_logger": {
                "file": str(stream.path.name),
                "module": entry.get("module"),
                "device": entry.get("device"),
                "trial": entry.get("trial"),
                "clock": "CLOCK_MONOTONIC (t_mono_ns / 1e9)",
                "stream_number": number,
                "lsl": lsl or None,
            },
        },
    )
    return _xml(info)


def _unit_of(column: str) -> str:
    if column.endswith("_ns"):
        return "ns"
    if column.endswith("_s") or column == "t_wall_unix" or column == "t_remote":
        return "s"
    if column.endswith("_ms"):
        return "ms"
    return ""


def _samples_chunk(stream_id: int, numeric: bool, batch: list[tuple[int, list[str]]]) -> bytes:
    parts = [struct.pack("<I", stream_id), _varlen(len(batch))]
    if numeric:
        nch = len(batch[0][1]) if batch else 0
        value_fmt = "<" + "d" * nch
        for t, cells in batch:
            values = [float(c) if c != "" else math.nan for c in cells]
            parts.append(struct.pack("<Bd", 8, t / 1e9))
            parts.append(struct.pack(value_fmt, *values))
    else:
        for t, cells in batch:
            parts.append(struct.pack("<Bd", 8, t / 1e9))
            for cell in cells:
                data = cell.encode("utf-8")
                parts.append(_varlen(len(data)) + data)
    return _chunk(TAG_SAMPLES, b"".join(parts))


def _footer(stream_id: int, first: int | None, last: int | None, count: int) -> bytes:
    info = ET.Element("info")
    _add(info, "first_timestamp", repr(first / 1e9) if first is not None else "0")
    _add(info, "last_timestamp", repr(last / 1e9) if last is not None else "0")
    _add(info, "sample_count", count)
    _add(info, "clock_offsets")
    return struct.pack("<I", stream_id) + _xml(info)


def write_xdf(session: Path, out: Path, progress: bool = True) -> list[tuple[str, int]]:
    """Write `out` from `session`; returns (stream name, samples) per stream."""
    manifest, streams = scan(session)
    if not streams:
        raise ExportError(f"{session}: no CSV stream with a t_mono_ns column")
    header = ET.Element("info")
    _add(header, "version", "1.0")
    _add_tree(
        header,
        {
            "rpi_logger": {
                "session_id": manifest.get("session_id"),
                "software": json.dumps(manifest.get("software")),
                "clock": json.dumps(manifest.get("clock")),
            }
        },
    )
    total = sum(s.rows for s in streams)
    tmp = out.with_name(out.name + ".part")
    summary = []
    with (
        tmp.open("wb") as f,
        tqdm(total=total, unit="rows", desc="export xdf", disable=not progress) as bar,
    ):
        f.write(MAGIC)
        f.write(_chunk(TAG_FILE_HEADER, _xml(header)))
        for number, stream in enumerate(streams, 1):
            content = struct.pack("<I", number) + _stream_header(stream, number, manifest)
            f.write(_chunk(TAG_STREAM_HEADER, content))
        for number, stream in enumerate(streams, 1):
            summary.append((stream.name, _write_samples(f, number, stream, bar)))
            f.write(_chunk(TAG_BOUNDARY, BOUNDARY))
    tmp.replace(out)
    return summary


def _write_samples(f: BinaryIO, number: int, stream: CsvStream, bar: tqdm) -> int:
    first = last = None
    count = 0
    batch: list[tuple[int, list[str]]] = []
    for t, cells in rows_of(stream):
        if first is None:
            first = t
        last = t
        batch.append((t, cells))
        if len(batch) >= CHUNK_SAMPLES:
            f.write(_samples_chunk(number, stream.numeric, batch))
            count += len(batch)
            bar.update(len(batch))
            batch = []
    if batch:
        f.write(_samples_chunk(number, stream.numeric, batch))
        count += len(batch)
        bar.update(len(batch))
    f.write(_chunk(TAG_FOOTER, _footer(number, first, last, count)))
    return count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session", type=Path, help="the session folder")
    parser.add_argument("--xdf", type=Path, required=True, metavar="OUT", help="the XDF file")


def main(args: argparse.Namespace) -> int:
    """The `export` command: one line per problem, exit 1."""
    try:
        summary = write_xdf(args.session, args.xdf, progress=True)
    except (ExportError, OSError) as exc:
        print(f"rpi-logger export: {exc}", file=sys.stderr)
        return 1
    samples = sum(n for _, n in summary)
    print(f"{args.xdf}: {len(summary)} streams, {samples} samples")
    return 0
