"""Every test in tests/lsl runs inside a private network namespace (netns.py).

Outside it, each test is handed to a pytest inside ``unshare -n`` with the loopback-only
``LSLAPICFG`` (its fixtures run there, not here), and passes or fails as that run does. Inside,
the containment is asserted before anything can import pylsl. Where no namespace can be made,
the tests are skipped with the reason: they never run on the open network.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.lsl import netns

ROOT = Path(__file__).parents[2]

if netns.inside():
    netns.assert_contained()
else:
    assert "pylsl" not in sys.modules, "pylsl imported outside the network namespace"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Outside the namespace: run this test inside one and take its verdict."""
    if netns.inside():
        return None
    problem = netns.unshare_problem()
    if problem:
        pytest.skip(f"LSL tests need a private network namespace: {problem}")
    factory = pyfuncitem.config._tmp_path_factory  # type: ignore[attr-defined]
    folder = Path(factory.mktemp("lsl"))
    cfg = netns.write_config(folder)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--timeout=110",
        "--basetemp",
        str(folder / "inner"),
        pyfuncitem.nodeid,
    ]
    run = subprocess.run(
        netns.contained_command(argv, cfg), cwd=ROOT, capture_output=True, text=True
    )
    if run.returncode != 0:
        pytest.fail(
            f"in the network namespace:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}",
            pytrace=False,
        )
    return True
