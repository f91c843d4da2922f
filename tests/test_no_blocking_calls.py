"""Static guard for design.md: Principles, 1: no known blocking call inside an `async def` of the
package.

Every `.py` under `src/rpi_logger` is parsed and each `async def` body is scanned for calls that
block the calling thread (file opens, sleeps, subprocess waits, fsyncs, blocking HTTP, ...).
Code in a plain `def` or `lambda` nested in an `async def` is not scanned: it runs wherever it is
handed (a thread, an executor, a writer), which is exactly how blocking work leaves the loop.
A nested `async def` is scanned as a function of its own.

Names are resolved through the module's imports (`import time as t`, `from time import sleep`),
so aliases are caught; a call whose name is rebound locally is not tracked (static check, not a
type checker). Pragmatic rules for method calls, whose receiver type is unknown statically:

* `.read_text/.write_text/.read_bytes/.write_bytes(...)` are flagged unless awaited (async path
  libraries such as anyio's are awaited; pathlib's are not).
* `.communicate(...)` is flagged unless awaited or passed on as an argument (asyncio's
  `Process.communicate` is a coroutine: it is always awaited, `wait_for`-ed or made a task; a
  bare call is `subprocess.Popen.communicate`, or a never-awaited coroutine bug).
* `.wait(...)` is flagged on receivers bound from `subprocess.Popen(...)` anywhere in the module
  (`p = subprocess.Popen(...)`, `self.proc = ...`, `with Popen(...) as p`) or chained directly
  on `Popen(...)`. A bare `.wait()` in general is not flagged: `asyncio.Event.wait()` coroutines
  are routinely passed to `wait_for`/`create_task`, which a static check cannot tell apart from
  `threading.Event.wait()`.

Justified exceptions go in ALLOWED below, each with a reason; an entry that no longer matches
anything fails the suite, so the list cannot silently rot.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "rpi_logger"

# Fully qualified callables that block the calling thread, with the reason shown on failure.
BANNED_CALLS: dict[str, str] = {
    "open": "file I/O on the loop; use a writer thread or asyncio.to_thread",
    "io.open": "file I/O on the loop",
    "codecs.open": "file I/O on the loop",
    "gzip.open": "file I/O on the loop",
    "time.sleep": "sleeps the whole loop; use await asyncio.sleep()",
    "subprocess.run": "waits for a process; use asyncio.create_subprocess_exec",
    "subprocess.call": "waits for a process; use asyncio.create_subprocess_exec",
    "subprocess.check_call": "waits for a process; use asyncio.create_subprocess_exec",
    "subprocess.check_output": "waits for a process; use asyncio.create_subprocess_exec",
    "subprocess.getoutput": "waits for a process; use asyncio.create_subprocess_exec",
    "subprocess.getstatusoutput": "waits for a process; use asyncio.create_subprocess_exec",
    "os.system": "waits for a shell; use asyncio.create_subprocess_shell",
    "os.popen": "waits for a process; use asyncio.create_subprocess_shell",
    "os.wait": "waits for a process",
    "os.waitpid": "waits for a process",
    "os.fsync": "waits for the disk; fsync in a writer thread or asyncio.to_thread",
    "os.fdatasync": "waits for the disk",
    "os.sync": "waits for the disk",
    "json.dump": "writes a file on the loop; use rpi_logger.io.atomic.atomic_write_json_async",
    "json.load": "reads a file on the loop; use asyncio.to_thread",
    "shutil.move": "file copy on the loop; use asyncio.to_thread",
    "shutil.rmtree": "file-system walk on the loop; use asyncio.to_thread",
    "shutil.make_archive": "file I/O on the loop",
    "shutil.unpack_archive": "file I/O on the loop",
    "urllib.request.urlopen": "blocking HTTP; use an async client or asyncio.to_thread",
    "socket.create_connection": "blocking connect; use asyncio.open_connection",
    "socket.getaddrinfo": "blocking DNS; use loop.getaddrinfo",
    "socket.gethostbyname": "blocking DNS; use loop.getaddrinfo",
    "socket.gethostbyaddr": "blocking DNS; use loop.getnameinfo",
}
# Qualified-name prefixes: every callable below them blocks.
BANNED_PREFIXES: dict[str, str] = {
    "shutil.copy": "file copy on the loop (shutil.copy*); use asyncio.to_thread",
    "requests.": "blocking HTTP (requests); use an async client or asyncio.to_thread",
}
# Method names that block whatever the receiver, unless the call is awaited.
BANNED_METHODS: dict[str, str] = {
    "read_text": "file read on the loop (Path.read_text); use asyncio.to_thread",
    "write_text": "file write on the loop (Path.write_text); use atomic_write_text_async",
    "read_bytes": "file read on the loop (Path.read_bytes); use asyncio.to_thread",
    "write_bytes": "file write on the loop (Path.write_bytes); use atomic_write_bytes_async",
}
COMMUNICATE_REASON = "waits for a process (Popen.communicate); use asyncio subprocesses"
POPEN_WAIT_REASON = "waits for a process (Popen.wait); use asyncio subprocesses"


@dataclass(frozen=True)
class Allowed:
    """A justified blocking call: `path` relative to src/rpi_logger, the async function's
    qualified name, the call as reported, and why it is acceptable."""

    path: str
    function: str
    call: str
    reason: str


# Justified exceptions. Keep each one narrow and explain why the loop cannot stall.
# Example:
#   Allowed("cli.py", "main_async", "open",
#           "runs before the loop serves anything: reads the config once at start-up"),
ALLOWED: list[Allowed] = []


@dataclass(frozen=True)
class Violation:
    """One blocking call found inside an `async def`."""

    path: str
    line: int
    function: str
    call: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}: async def {self.function}()"
        return f"{where}: {self.call}(...) - {self.reason}"


def _import_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> fully qualified name, from every import in the module."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            for a in node.names:
                aliases[a.asname or a.name] = f"{base}.{a.name}" if base else a.name
    return aliases


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """`a.b.c` with the first name resolved through the imports; None if not a plain chain."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _popen_receivers(tree: ast.AST, aliases: dict[str, str]) -> set[str]:
    """Source text of every target bound from `subprocess.Popen(...)` in the module."""

    def is_popen(value: ast.AST | None) -> bool:
        return isinstance(value, ast.Call) and _dotted(value.func, aliases) == "subprocess.Popen"

    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and is_popen(node.value):
            found.update(ast.unparse(t) for t in node.targets)
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and is_popen(node.value):
            found.add(ast.unparse(node.target))
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                if is_popen(item.context_expr) and item.optional_vars is not None:
                    found.add(ast.unparse(item.optional_vars))
    return found


def _async_body_nodes(fn: ast.AsyncFunctionDef) -> list[tuple[ast.AST, ast.AST]]:
    """(node, parent) pairs that execute as part of `fn` itself: nested def/lambda bodies are
    skipped (they run elsewhere); nested async defs are scanned separately."""
    out: list[tuple[ast.AST, ast.AST]] = []
    stack: list[tuple[ast.AST, ast.AST]] = [(child, fn) for child in fn.body]
    while stack:
        node, parent = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        out.append((node, parent))
        stack.extend((child, node) for child in ast.iter_child_nodes(node))
    return out


def _awaited_or_passed_on(call: ast.Call, parent: ast.AST) -> bool:
    if isinstance(parent, ast.Await):
        return True
    if isinstance(parent, ast.Call) and call is not parent.func:
        return True  # an argument: asyncio.wait_for(p.communicate(), 5), create_task(...)
    return isinstance(parent, ast.keyword)


def _classify(
    call: ast.Call, parent: ast.AST, aliases: dict[str, str], popen: set[str]
) -> tuple[str, str] | None:
    """(call as reported, reason) if `call` blocks, else None."""
    name = _dotted(call.func, aliases)
    if name is not None:
        if name in BANNED_CALLS:
            return name, BANNED_CALLS[name]
        for prefix, reason in BANNED_PREFIXES.items():
            if name.startswith(prefix):
                return name, reason
    if not isinstance(call.func, ast.Attribute):
        return None
    method = call.func.attr
    receiver = call.func.value
    shown = f"{ast.unparse(receiver)}.{method}"
    if method in BANNED_METHODS and not isinstance(parent, ast.Await):
        return shown, BANNED_METHODS[method]
    if method == "communicate" and not _awaited_or_passed_on(call, parent):
        return shown, COMMUNICATE_REASON
    if method in ("wait", "communicate") and not isinstance(parent, ast.Await):
        chained = isinstance(receiver, ast.Call) and (
            _dotted(receiver.func, aliases) == "subprocess.Popen"
        )
        if chained or ast.unparse(receiver) in popen:
            return shown, POPEN_WAIT_REASON if method == "wait" else COMMUNICATE_REASON
    return None


def find_blocking_calls(source: str, path: str = "<string>") -> list[Violation]:
    """Blocking calls inside `async def` bodies of `source`, in line order."""
    tree = ast.parse(source, filename=path)
    aliases = _import_aliases(tree)
    popen = _popen_receivers(tree, aliases)
    found: list[Violation] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                inner = [*scope, child.name]
                if isinstance(child, ast.AsyncFunctionDef):
                    qualname = ".".join(inner)
                    for sub, parent in _async_body_nodes(child):
                        if isinstance(sub, ast.Call):
                            hit = _classify(sub, parent, aliases, popen)
                            if hit is not None:
                                found.append(Violation(path, sub.lineno, qualname, *hit))
                visit(child, inner)
            else:
                visit(child, scope)

    visit(tree, [])
    return sorted(found, key=lambda v: (v.line, v.call))


def _package_violations() -> tuple[list[Violation], set[Allowed]]:
    violations: list[Violation] = []
    used: set[Allowed] = set()
    for file in sorted(PKG.rglob("*.py")):
        rel = file.relative_to(PKG).as_posix()
        for v in find_blocking_calls(file.read_text(encoding="utf-8"), rel):
            allowed = next(
                (
                    a
                    for a in ALLOWED
                    if (a.path, a.function, a.call) == (v.path, v.function, v.call)
                ),
                None,
            )
            if allowed is None:
                violations.append(v)
            else:
                used.add(allowed)
    return violations, used


def test_package_has_no_blocking_calls_in_async_defs() -> None:
    assert PKG.is_dir(), PKG
    violations, _ = _package_violations()
    assert not violations, (
        "blocking calls inside async def bodies (design.md: Principles, 1: never block the "
        "loop). Move them to "
        "a thread (asyncio.to_thread, a writer thread) or use the async API; add a justified "
        "entry to ALLOWED in tests/test_no_blocking_calls.py only if the loop truly cannot "
        "stall:\n  " + "\n  ".join(f"src/rpi_logger/{v}" for v in violations)
    )


def test_allow_list_entries_are_justified_and_in_use() -> None:
    _, used = _package_violations()
    for a in ALLOWED:
        assert a.reason.strip(), f"allow-list entry without a reason: {a}"
    stale = [a for a in ALLOWED if a not in used]
    assert not stale, f"allow-list entries that match nothing any more (remove them): {stale}"


# ---------------------------------------------------------------------------- self-tests

# One line per banned call, each as it would appear in real code.
PLANTED_CALLS = {
    "open": "open('f.csv', 'a')",
    "time.sleep": "time.sleep(0.2)",
    "subprocess.run": "subprocess.run(['ffmpeg'])",
    "subprocess.call": "subprocess.call(['ls'])",
    "subprocess.check_call": "subprocess.check_call(['ls'])",
    "subprocess.check_output": "subprocess.check_output(['ls'])",
    "os.fsync": "os.fsync(fd)",
    "os.system": "os.system('sync')",
    "json.dump": "json.dump(obj, fh)",
    "json.load": "json.load(fh)",
    "shutil.copy": "shutil.copy(a, b)",
    "shutil.copy2": "shutil.copy2(a, b)",
    "shutil.copyfile": "shutil.copyfile(a, b)",
    "shutil.copytree": "shutil.copytree(a, b)",
    "shutil.move": "shutil.move(a, b)",
    "shutil.rmtree": "shutil.rmtree(a)",
    "requests.get": "requests.get(url)",
    "requests.post": "requests.post(url, json={})",
    "socket.create_connection": "socket.create_connection(('h', 1))",
    "path.read_text": "path.read_text()",
    "path.write_text": "path.write_text('x')",
    "path.read_bytes": "path.read_bytes()",
    "Path('x').write_bytes": "Path('x').write_bytes(b'')",
    "proc.wait": "proc.wait()",
    "proc.communicate": "proc.communicate(b'in')",
    "other.communicate": "other.communicate()",
    "subprocess.Popen(['ls']).wait": "subprocess.Popen(['ls']).wait()",
}

_IMPORTS = """\
import json, os, shutil, socket, subprocess, time
import requests
from pathlib import Path
"""


def _snippet(body_lines: list[str], wrapper: str) -> str:
    body = "\n".join(body_lines)
    if wrapper == "async":
        return (
            _IMPORTS
            + "async def handler(fd, obj, fh, a, b, url, path, other):\n"
            + ("    proc = subprocess.Popen(['cat'])\n" + textwrap.indent(body, "    ") + "\n")
        )
    if wrapper == "nested_def":
        return _IMPORTS + (
            "async def handler(fd, obj, fh, a, b, url, path, other):\n"
            "    def in_thread():\n"
            "        proc = subprocess.Popen(['cat'])\n"
            + textwrap.indent(body, "        ")
            + "\n    await asyncio.to_thread(in_thread)\n"
        )
    if wrapper == "lambda":
        lambdas = "\n".join(f"    f{i} = lambda: {line}" for i, line in enumerate(body_lines))
        return _IMPORTS + "async def handler(fd, obj, fh, a, b, url, path, other):\n" + lambdas
    raise AssertionError(wrapper)


def test_checker_reports_every_planted_call_in_async_def() -> None:
    src = _snippet(list(PLANTED_CALLS.values()), "async")
    found = find_blocking_calls(src, "planted.py")
    reported = [v.call for v in found]
    missing = sorted(set(PLANTED_CALLS) - set(reported))
    assert not missing, f"checker missed: {missing}\nreported: {reported}"
    assert len(found) == len(PLANTED_CALLS), reported  # nothing reported twice or spuriously
    assert all(v.function == "handler" and v.path == "planted.py" for v in found)


def test_checker_ignores_calls_in_nested_plain_def_and_lambda() -> None:
    for wrapper in ("nested_def", "lambda"):
        src = _snippet(list(PLANTED_CALLS.values()), wrapper)
        assert find_blocking_calls(src) == [], wrapper


def test_checker_ignores_sync_functions_and_off_loop_references() -> None:
    src = _IMPORTS + textwrap.dedent(
        """
        import asyncio
        def sync_helper(p):
            time.sleep(1)
            with open(p) as f:
                return json.load(f)

        async def fine(p, proc, ev, loop):
            await asyncio.to_thread(time.sleep, 1)          # referenced, run in a thread
            await loop.run_in_executor(None, open, p)
            await asyncio.sleep(0.1)
            data = await proc.communicate(b"x")            # asyncio.subprocess.Process
            await asyncio.wait_for(proc.communicate(), 5)  # coroutine passed on
            await asyncio.wait_for(ev.wait(), 1)            # asyncio.Event
            await anyio_path.read_text()                    # an async path library
            return json.dumps(data), json.loads("{}")
        """
    )
    assert find_blocking_calls(src) == []


def test_checker_resolves_import_aliases_and_scopes() -> None:
    src = textwrap.dedent(
        """
        import time as t
        import subprocess as sp
        from time import sleep as nap
        from os import fsync
        from shutil import copyfile
        from json import dump

        class Camera:
            async def stop(self):
                t.sleep(1)
                nap(1)
                fsync(3)
                copyfile("a", "b")
                dump({}, f)
                sp.run(["x"])
                self.proc.wait()

            def start(self):
                self.proc = sp.Popen(["ffmpeg"])

                async def inner():
                    open("x")
                return inner
        """
    )
    found = find_blocking_calls(src, "cam.py")
    assert [(v.function, v.call) for v in found] == [
        ("Camera.stop", "time.sleep"),
        ("Camera.stop", "time.sleep"),
        ("Camera.stop", "os.fsync"),
        ("Camera.stop", "shutil.copyfile"),
        ("Camera.stop", "json.dump"),
        ("Camera.stop", "subprocess.run"),
        ("Camera.stop", "self.proc.wait"),
        ("Camera.start.inner", "open"),
    ]


def test_failure_message_names_file_line_function_and_call() -> None:
    src = "import time\n\nasync def tick():\n    time.sleep(1)\n"
    (v,) = find_blocking_calls(src, "modules/x.py")
    text = str(v)
    assert text.startswith("modules/x.py:4: async def tick(): time.sleep(...)"), text


def test_checker_catches_fault_planted_in_a_real_package_file() -> None:
    # A scratch copy of a real module with a blocking call planted: the real file stays intact.
    real = PKG / "io" / "csv_writer.py"
    if not real.exists():
        pytest.skip("csv_writer.py not present")
    source = real.read_text(encoding="utf-8")
    assert find_blocking_calls(source) == []
    planted = source + "\n\nasync def planted_fault(p):\n    with open(p) as f:\n        return f\n"
    (v,) = find_blocking_calls(planted, "io/csv_writer.py")
    assert (v.function, v.call) == ("planted_fault", "open")
