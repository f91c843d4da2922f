"""The page in real headless Chromium (Debian's, driven by Playwright) on a phone-sized screen:
start a session, record a 3 s trial with simulated cameras, type two notes, stop; the files
exist and verify passes; the page showed the running timer, changing previews and both notes.

Set RPI_LOGGER_SCREENSHOT=PATH to keep a screenshot of the running page (docs/ui.png, with every
module, comes from scripts/screenshot.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

import pytest

from rpi_logger.tools.verify import verify_session

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = [
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason="no Chromium (apt-get install chromium)"
    ),
    pytest.mark.timeout(120),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _start_logger(tmp_path: Path, port: int) -> asyncio.subprocess.Process:
    config_home = tmp_path / "xdg-config"
    state = config_home / "rpi-logger" / "state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"enabled": ["Cameras", "Notes"]}))
    env = dict(os.environ, XDG_CONFIG_HOME=str(config_home))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rpi_logger", "serve", "--simulate", "--port", str(port),
        "--data-dir", str(tmp_path / "data"),
        "--set", "cameras.width=512", "--set", "cameras.height=288",
        "--set", "cameras.fps=10", "--set", "cameras.preview_width=256",
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        line = (await proc.stdout.readline()).decode()
    assert "ready: open http://127.0.0.1" in line, line
    return proc


async def test_phone_records_a_trial_with_two_notes(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    port = _free_port()
    proc = await _start_logger(tmp_path, port)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            context = await browser.new_context(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                has_touch=True,
            )  # fmt: skip
            page = await context.new_page()
            await page.goto(f"http://127.0.0.1:{port}/")
            await expect(page.get_by_test_id("connection")).to_have_text("live", timeout=20_000)
            cams = page.locator('[data-module="Cameras"] img')
            await expect(cams).to_have_count(2, timeout=20_000)

            await page.get_by_test_id("label").fill("<b>pilot</b>")
            await page.get_by_test_id("record").click()
            await expect(page.get_by_test_id("stop")).to_be_enabled(timeout=10_000)
            await expect(page.get_by_test_id("trial")).to_contain_text("#1 <b>pilot</b>")
            timer = page.get_by_test_id("timer")
            await expect(timer).not_to_have_text("0:00.0", timeout=5_000)
            first_timer = await timer.text_content()
            first_src = await cams.first.get_attribute("src")

            note = page.get_by_test_id("note")
            notes = page.get_by_test_id("notes")
            for text in ("cone <i>hit</i> & left", "driver glanced at mirror"):
                await note.fill(text)
                await note.press("Enter")
                assert await note.input_value() == ""  # cleared at once, before it is saved
                await expect(notes).to_contain_text(text, timeout=10_000)
            await page.wait_for_timeout(2_000)
            assert await timer.text_content() != first_timer  # it runs
            assert await cams.first.get_attribute("src") != first_src  # previews change
            shot = os.environ.get("RPI_LOGGER_SCREENSHOT")
            if shot:
                await page.screenshot(path=shot, full_page=True)
            await page.get_by_test_id("stop").click()
            await expect(page.get_by_test_id("record")).to_be_enabled(timeout=15_000)
            await page.get_by_test_id("end-session").click()
            await expect(page.get_by_test_id("session")).to_have_text("none", timeout=15_000)
            # Labels and notes were shown as text: no element was made from them.
            assert await page.locator("#notes i, #trial b").count() == 0

            await page.get_by_test_id("sessions-tab").click()
            await expect(page.get_by_test_id("session-rows")).to_contain_text("<b>pilot</b>")
            await browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await proc.wait()
    assert proc.returncode == 0
    (session,) = (tmp_path / "data").iterdir()
    videos = sorted(session.glob("Cameras/*/trial001_*.mp4"))
    assert len(videos) == 2 and all(v.stat().st_size > 1000 for v in videos)
    notes_csv = (session / "Notes" / "notes.csv").read_text()
    assert "cone <i>hit</i> & left" in notes_csv and "driver glanced at mirror" in notes_csv
    report = verify_session(session)
    assert report.ok, report.as_dict()
    manifest = json.loads((session / "session.json").read_text())
    assert manifest["trials"][0]["status"] == "complete"
