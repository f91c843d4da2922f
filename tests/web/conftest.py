"""A real master with the web server on a loopback port, in the test's own event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from rpi_logger.core.master import MasterConfig
from rpi_logger.web.server import Served, serving


def web_config(tmp_path: Path, module_dir: Path, **kw: object) -> MasterConfig:
    return MasterConfig(
        data_dir=tmp_path / "data",
        module_dirs=[module_dir],
        simulate=True,
        state_path=tmp_path / "state" / "state.json",
        min_free_mb=kw.pop("min_free_mb", 1.0),  # type: ignore[arg-type]
        lead_time_ms=50,
        **kw,
    )  # type: ignore[arg-type]


@pytest.fixture
async def served(tmp_path: Path, module_dir: Path) -> AsyncIterator[Served]:
    """The master (Ticker and Notes running) and its web server on 127.0.0.1, any free port."""
    async with serving(web_config(tmp_path, module_dir), "127.0.0.1", 0, False) as s:
        errors = await s.master.start_modules(["Ticker", "Notes"])
        assert errors == {"Ticker": None, "Notes": None}
        yield s


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url + "/api/v1", timeout=30) as c:
        yield c
