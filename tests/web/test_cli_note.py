"""`rpi-logger note TEXT [--url U]` against a running master, and without one."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
from tests.web.conftest import web_config

from rpi_logger.web.server import Served, serving


async def _note(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rpi_logger", "note", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_note_reaches_the_running_session(served: Served, client: httpx.AsyncClient) -> None:
    await client.post("/session/start", json={})
    code, out, err = await _note("from the terminal", "--url", served.url)
    assert code == 0, err
    assert out.startswith("note 0 saved at ")
    notes = (await client.get("/notes")).json()["notes"]
    assert [n["text"] for n in notes] == ["from the terminal"]
    await client.post("/session/end")
    code, _, err = await _note("no session now", "--url", served.url)
    expected = "rpi-logger note: no session is running: start one to take notes"
    assert code == 1 and err.strip() == expected


async def test_note_without_a_master_is_one_line(tmp_path: Path) -> None:
    code, _, err = await _note("x", "--url", "http://127.0.0.1:9")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "no master at" in err


async def test_note_reads_the_token(tmp_path: Path, module_dir: Path, monkeypatch) -> None:
    """Bound beyond loopback, the master wants its token: `note` reads it from the state
    folder (the same config home)."""
    config = web_config(tmp_path, module_dir)
    config.state_path = tmp_path / "xdg-config" / "rpi-logger" / "state.json"
    async with serving(config, "0.0.0.0", 0, False) as s:
        await s.master.start_modules(["Notes"])
        await s.master.start_session()
        url = "http://127.0.0.1:" + s.url.rsplit(":", 1)[1]
        code, _out, err = await _note("with token", "--url", url)
        assert code == 0, err
        await s.master.end_session()


async def test_note_takes_a_token_given(tmp_path: Path, module_dir: Path) -> None:
    """A master whose token is not in this user's config folder (another user's, another
    machine's): refused in one line without it; `--token` or $RPI_LOGGER_TOKEN get through."""
    config = web_config(tmp_path, module_dir)
    config.state_path = tmp_path / "elsewhere" / "state.json"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "empty-config")}
    async with serving(config, "0.0.0.0", 0, False) as s:
        await s.master.start_modules(["Notes"])
        await s.master.start_session()
        url = "http://127.0.0.1:" + s.url.rsplit(":", 1)[1]
        code, _out, err = await _note("no token", "--url", url, env=env)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert s.token is not None
        code, _out, err = await _note("given", "--url", url, "--token", s.token, env=env)
        assert code == 0, err
        code, _out, err = await _note(
            "from env", "--url", url, env={**env, "RPI_LOGGER_TOKEN": s.token}
        )
        assert code == 0, err
        texts = [n["text"] for n in (await s.master.request("Notes", "get_notes"))["notes"]]
        await s.master.end_session()
    assert texts == ["given", "from env"]
