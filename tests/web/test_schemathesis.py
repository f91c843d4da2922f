"""Schemathesis against /openapi.json on loopback: generated requests for every operation, no
5xx and every reply as the schema says. Bounded in examples and time."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from rpi_logger.web.server import Served

ST = Path(sys.executable).with_name("st")
pytestmark = [
    pytest.mark.skipif(not ST.exists() and not shutil.which("st"), reason="schemathesis missing"),
    pytest.mark.timeout(150),
]


async def test_no_server_errors_and_replies_match_the_schema(served: Served) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(ST if ST.exists() else shutil.which("st")),
        "run",
        f"{served.url}/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance,content_type_conformance",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "5",
        "--max-time",
        "15",
        "--request-timeout",
        "30",
        "--workers",
        "1",
        "--generation-deterministic",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(140):
        out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    async with httpx.AsyncClient(base_url=served.url) as c:  # the master still serves
        assert (await c.get("/api/v1/status")).status_code == 200
