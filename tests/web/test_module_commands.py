"""A module's own commands over HTTP: what a researcher setting up a study sends (the VOG's
lenses by hand), and every refusal as one clear 4xx."""

from __future__ import annotations

import asyncio

import httpx
from tests.web.conftest import web_config

from rpi_logger.web.server import Served, serving


async def test_refusals(served: Served, client: httpx.AsyncClient) -> None:
    ok = await client.post("/modules/notes/commands/get_notes", json={})
    assert ok.status_code == 200 and ok.json()["module"] == "Notes"
    cases = [
        ("/modules/Notes/commands/teleport", {}, 400, "unknown command"),
        ("/modules/Notes/commands/start_trial", {}, 409, "master's to send"),
        ("/modules/Nope/commands/status", {}, 404, "unknown module"),
        ("/modules/Notes/commands/Bad-Name", {}, 422, None),
        ("/modules/Notes/commands/get_notes", {"args": {"x": [1]}}, 422, None),
        ("/modules/Notes/commands/get_notes", {"extra": 1}, 422, None),
    ]
    for path, body, code, words in cases:
        reply = await client.post(path, json=body)
        assert reply.status_code == code, (path, reply.text)
        if words:
            assert words in reply.json()["detail"], reply.text
    await served.master.disable_module("Notes")
    gone = await client.post("/modules/Notes/commands/get_notes", json={})
    assert gone.status_code == 409 and "not running" in gone.json()["detail"]


async def test_vog_lenses_by_hand(tmp_path, module_dir) -> None:
    """The simulated sVOG opens its lens on `lens open`; a lens it lacks is a 400 naming it."""
    async with serving(web_config(tmp_path, module_dir), "127.0.0.1", 0, False) as s:
        assert await s.master.start_modules(["VOG"]) == {"VOG": None}
        async with httpx.AsyncClient(base_url=s.url + "/api/v1/modules/VOG", timeout=30) as c:

            async def lens_open() -> bool:
                reply = await c.post("/commands/status", json={})
                return bool(reply.json()["result"]["devices"][0]["lens_open"])

            async with asyncio.timeout(20):
                lens = {"args": {"state": "open"}}
                while (await c.post("/commands/lens", json=lens)).is_error:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)  # the goggles are still connecting
                while not await lens_open():  # noqa: ASYNC110 (polling, as the page does)
                    await asyncio.sleep(0.1)
            bad = await c.post("/commands/lens", json={"args": {"state": "open", "lens": "a"}})
            assert bad.status_code == 400 and "lens x" in bad.json()["detail"], bad.text
