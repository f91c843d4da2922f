"""Static check: no blocking file calls inside ``async def`` bodies of rpi_logger.config."""

from __future__ import annotations

import ast
from pathlib import Path

import rpi_logger.config

PACKAGE = Path(rpi_logger.config.__file__).parent

# Call names (plain or attribute) that block on the file system or a lock.
BLOCKING = {
    "open",
    "fsync",
    "fdatasync",
    "replace",
    "rename",
    "read_text",
    "read_bytes",
    "write_text",
    "write_bytes",
    "flock",
    "lockf",
    "sleep",
    "stat",
    "unlink",
    "remove",
    "makedirs",
    "mkdir",
    "write_config",
    "read_config",
    "read_entries",
    "read_document",
    "load_settings",
    "acquire",
    "_atomic_write",
    "_update_locked",
    "_fsync_dir",
}


def _blocking_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Await):
                continue
            if not isinstance(inner, ast.Call):
                continue
            func = inner.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in BLOCKING and not _awaited(node, inner):
                found.append((inner.lineno, name))
    return found


def _awaited(scope: ast.AST, call: ast.Call) -> bool:
    """``await asyncio.sleep(...)`` and friends are fine: the call is awaited directly."""
    return any(isinstance(n, ast.Await) and n.value is call for n in ast.walk(scope))


def test_checker_catches_a_blocking_call() -> None:
    bad = ast.parse("async def f(p):\n    with open(p) as fh:\n        return fh.read()\n")
    assert _blocking_calls(bad) == [(2, "open")]
    good = ast.parse(
        "import asyncio\nasync def f(p):\n    return await asyncio.to_thread(read, p)\n"
    )
    assert _blocking_calls(good) == []


def test_no_blocking_calls_in_async_functions() -> None:
    problems = []
    files = sorted(PACKAGE.glob("*.py"))
    assert len(files) >= 4
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        problems += [f"{path.name}:{line}: {name}()" for line, name in _blocking_calls(tree)]
    assert not problems, "blocking calls in async def bodies:\n" + "\n".join(problems)
