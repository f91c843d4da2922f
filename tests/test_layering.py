"""The package's layers, checked on the source: the framework and `io` never reach up into
`core` or into a plugin, so a plugin (or the master) can be read and changed on its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "rpi_logger"

# layer -> the packages it must not import (at run time; TYPE_CHECKING imports are types only)
FORBIDDEN = {
    "io": ("rpi_logger.modules", "rpi_logger.core", "rpi_logger.framework"),
    "framework": ("rpi_logger.modules", "rpi_logger.core"),
    "config": ("rpi_logger.modules", "rpi_logger.core", "rpi_logger.framework"),
    "simulation": ("rpi_logger.modules", "rpi_logger.core", "rpi_logger.framework"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_never_imports_the_layers_above_it(layer: str) -> None:
    bad = [
        f"{path.relative_to(PACKAGE)}:{line}: imports {name}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for line, name in _imports(path)
        if name.startswith(FORBIDDEN[layer])
    ]
    assert not bad, "\n".join(bad)
