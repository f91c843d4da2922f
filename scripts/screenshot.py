"""docs/ui.png: the page on a phone (390x844 @2x, Debian's Chromium) while every built-in module
records simulated devices, a trial running and a note taken.

    .venv/bin/python scripts/screenshot.py [docs/ui.png]
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

MODULES = ["Cameras", "EyeTracker", "Audio", "Notes", "DRT", "VOG", "GPS"]
SMALL = [
    "cameras.width=640", "cameras.height=360", "cameras.fps=15",
    "eyetracker.sim_scene_width=800", "eyetracker.sim_scene_height=600",
    "eyetracker.sim_scene_fps=15",
]  # fmt: skip


async def main(out: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    state = tmp / "xdg" / "rpi-logger" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"enabled": MODULES}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sets = [arg for setting in SMALL for arg in ("--set", setting)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rpi_logger", "serve", "--simulate", "--port", str(port),
        "--data-dir", str(tmp / "data"), *sets,
        stdout=asyncio.subprocess.PIPE, env=dict(os.environ, XDG_CONFIG_HOME=str(tmp / "xdg")),
    )  # fmt: skip
    assert proc.stdout is not None
    print((await proc.stdout.readline()).decode().strip())
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url + "/api/v1", timeout=30) as api:
            await api.post("/session/start", json={"label": "demo"})
            await api.post("/trial/start", json={"label": "drive"})
            await api.post("/notes", json={"text": "merging onto the highway"})
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox", "--headless"]
                )
                phone = {"width": 390, "height": 844}
                context = await browser.new_context(
                    viewport=phone, device_scale_factor=2, is_mobile=True
                )
                page = await context.new_page()
                await page.goto(url + "/")
                await asyncio.sleep(9)  # previews, the DRT's first stimulus, a GPS fix
                await page.screenshot(path=out, full_page=True)
                await browser.close()
            await api.post("/trial/stop")
            await api.post("/session/end")
    finally:
        proc.terminate()
        await proc.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "docs/ui.png"))
