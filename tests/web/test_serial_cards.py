"""The serial modules' own lines on their cards (`summary` in `/api/v1/status`), live during a
trial: the DRT's stimuli, hit rate and mean RT, the goggles' mode, lens and TSOT, the GPS fix."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from tests.web.conftest import web_config

from rpi_logger.web.server import serving


async def test_cards_say_what_the_devices_do(tmp_path: Path, module_dir: Path) -> None:
    async with serving(web_config(tmp_path, module_dir), "127.0.0.1", 0, False) as s:
        started = await s.master.start_modules(["DRT", "VOG", "GPS"])
        assert started == {"DRT": None, "VOG": None, "GPS": None}
        async with httpx.AsyncClient(base_url=s.url + "/api/v1", timeout=30) as c:
            await c.post("/session/start", json={})
            await c.post("/trial/start", json={})
            cards: dict[str, list[str]] = {}

            def seen() -> bool:
                drt, vog, gps = (" ".join(cards.get(m, [])) for m in ("DRT", "VOG", "GPS"))
                return "hits" in drt and "TSOT" in vog and "satellites" in gps

            async with asyncio.timeout(30):  # the sDRT's first stimulus: 4-5 s after its start
                while not seen():
                    await asyncio.sleep(0.3)
                    status = (await c.get("/status")).json()
                    cards = {m["name"]: m["summary"] for m in status["modules"]}
            await c.post("/trial/stop")
            await c.post("/session/end")
    [drt], [vog], [gps] = cards["DRT"], cards["VOG"], cards["GPS"]
    assert drt.startswith("sDRT: connected") and "mean RT" in drt, drt
    assert vog.startswith("sVOG: connected · cycle · lens "), vog
    lat, lon = (float(v) for v in gps.split(" · ")[1].split(", "))
    assert abs(lat - 52.0) <= 0.001 and abs(lon - 13.0) <= 0.001 and "STALE" not in gps, gps
