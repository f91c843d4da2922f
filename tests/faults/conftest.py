"""The fault campaign's marker: deselect it with `-m "not faults"` for a quick run."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault injection (subprocess recordings, minutes of run time)"
    )
