"""Property: whatever happens to a session's manifest and CSVs, `verify` reports, never raises.

Starts from a real recorded session and mutates it: values anywhere in the manifest replaced by
values of any JSON type (paths that leave the session, huge numbers, NaN, nested containers),
keys deleted, the manifest's bytes cut or spliced, and CSV lines replaced, cut, shortened,
duplicated or filled with garbage. The last-resort guard of verify (`could not be checked`) must
never be what saved it: every such input has a precise finding.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpi_logger.tools.verify import format_report, verify_session

SPECIAL_TEXT = st.sampled_from(
    [
        "",
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        ".",
        "Ticker",
        "Ticker/",
        "session.json",
        "Cameras/synthetic0",
        "video",
        "audio",
        "csv",
        "complete",
        "interrupted",
        "recording",
        "failed",
        "Notes",
        "NaN",
        "\x00",
        "a" * 5000,
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**30, -(10**30), 2**63, 0, -1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | SPECIAL_TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
GARBAGE = st.binary(max_size=40) | st.text(max_size=40).map(str.encode)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a JSON document (the root excluded)."""
    out: list[tuple[Any, ...]] = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@st.composite
def manifest_mutations(draw: st.DrawFn, manifest: dict[str, Any]) -> bytes:
    doc = json.loads(json.dumps(manifest))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON_VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(JSON_VALUES)
        else:
            parent.append(draw(JSON_VALUES))
    data = json.dumps(doc).encode()
    if draw(st.integers(0, 9)) == 0:  # sometimes damage the bytes as well
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(GARBAGE)
    return data


@st.composite
def csv_mutations(draw: st.DrawFn, original: bytes) -> bytes:
    lines = original.split(b"\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        action = draw(
            st.sampled_from(["garbage", "drop_field", "duplicate", "delete", "empty", "swap"])
        )
        if action == "garbage":
            lines[i] = draw(GARBAGE)
        elif action == "drop_field":
            lines[i] = b",".join(lines[i].split(b",")[:-1])
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "delete" and len(lines) > 1:
            del lines[i]
        elif action == "empty":
            lines[i] = b""
        elif action == "swap" and len(lines) > 2:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    data = b"\n".join(lines)
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # a crash cut the file
    return data


def _check(session: Path) -> None:
    report = verify_session(session)  # must not raise
    rescued = [f for f in report.findings if "could not be checked" in f.message]
    assert not rescued, rescued
    format_report(report)
    json.dumps(report.as_dict())


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_verify_never_raises_on_a_mutated_manifest(recorded: Path, data: st.DataObject) -> None:
    manifest = json.loads((recorded / "session.json").read_text())
    mutated = data.draw(manifest_mutations(manifest))
    with tempfile.TemporaryDirectory() as tmp:
        session = Path(tmp) / recorded.name
        shutil.copytree(recorded, session)
        (session / "session.json").write_bytes(mutated)
        _check(session)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_verify_never_raises_on_mutated_csvs(recorded: Path, data: st.DataObject) -> None:
    targets = sorted(p.relative_to(recorded) for p in recorded.rglob("*.csv"))
    chosen = data.draw(st.lists(st.sampled_from(targets), min_size=1, max_size=len(targets)))
    with tempfile.TemporaryDirectory() as tmp:
        session = Path(tmp) / recorded.name
        shutil.copytree(recorded, session)
        for rel in set(chosen):
            original = (recorded / rel).read_bytes()
            (session / rel).write_bytes(data.draw(csv_mutations(original)))
        if data.draw(st.booleans()):  # and the manifest as a crash leaves it
            path = session / "session.json"
            manifest = json.loads(path.read_text())
            for trial in manifest["trials"]:
                trial["status"] = "interrupted"
                for entry in trial["files"]:
                    entry.update(status="interrupted", frames=None)
            path.write_text(json.dumps(manifest))
        _check(session)
