"""The EyeTracker's live side: status for the UI (connected, battery, storage, rates, latest
gaze), preview JPEGs with the gaze drawn, the `simulate_disconnect` command, and the live
gaze-overlay video made on its own worker."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from tests.modules.eyetracker.eyetracker_checks import (
    SMALL_SCENE,
    by_stream,
    eyetracker_master,
    record_trial,
    rows,
)

from rpi_logger.core.supervisor import ModuleError, ModuleProcess
from rpi_logger.framework import protocol
from rpi_logger.framework.discovery import discover_modules
from rpi_logger.simulation.barcode import read_video_barcodes


async def _status(proc: ModuleProcess) -> dict[str, Any]:
    reply = await proc.request("status", {}, timeout=10)
    return reply.get("status", reply)


async def _wait(proc: ModuleProcess, connected: bool, timeout: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            status = await _status(proc)
            devices = status.get("devices") or [{}]
            if devices[0].get("connected") is connected:
                return devices[0]
            await asyncio.sleep(0.1)


async def test_status_previews_and_a_commanded_disconnect() -> None:
    spec = next(s for s in discover_modules() if s.name == "EyeTracker" and s.valid)
    previews: list[dict[str, Any]] = []

    def on_event(_: ModuleProcess, ev: protocol.Event) -> None:
        if ev.event == protocol.EV_PREVIEW:
            previews.append(ev.data)

    proc = ModuleProcess(spec, simulate=True, on_event=on_event)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(proc.run())
        await proc.started()
        try:
            settings = {**SMALL_SCENE, "preview_fps": 4}
            reply = await proc.request(
                "configure", {"settings": settings, "simulate": True}, timeout=30
            )
            [device] = reply["devices"]
            assert device["simulated"] and device["backend"] == "simulated"
            await _wait(proc, True)
            await asyncio.sleep(2.5)
            device = await _wait(proc, True)
            assert device["battery_percent"] == 87 and device["storage_bytes"] > 0
            assert abs(device["rates_hz"]["gaze"] - 200) < 10, device["rates_hz"]
            assert abs(device["rates_hz"]["imu"] - 110) < 6, device["rates_hz"]
            assert abs(device["rates_hz"]["scene"] - 30) < 3, device["rates_hz"]
            gaze = device["gaze"]
            assert 200 <= gaze["x"] <= 1400 and 150 <= gaze["y"] <= 1050 and gaze["worn"] == 1
            assert device["clock"]["roundtrip_ns"] < 50_000_000

            with pytest.raises(ModuleError, match="seconds"):
                await proc.request("simulate_disconnect", {"seconds": -1})
            t0 = time.monotonic()
            await proc.request("simulate_disconnect", {"seconds": 1.5})
            await _wait(proc, False, timeout=5)
            await _wait(proc, True, timeout=10)
            assert time.monotonic() - t0 >= 1.4
        finally:
            await proc.stop(quit_timeout=20)

    assert len(previews) >= 4
    last = previews[-1]
    jpeg = cv2.imdecode(np.frombuffer(base64.b64decode(last["jpeg_base64"]), np.uint8), 1)
    assert jpeg.shape[:2] == (last["height"], last["width"]) == (240, 320)
    assert last["gaze"] is not None and last["device"] == "neon"


async def test_live_overlay_and_eye_videos_next_to_the_raw_one(tmp_path: Path) -> None:
    async with eyetracker_master(
        tmp_path, **SMALL_SCENE, overlay_video=True, eye_video=True
    ) as master:
        session, trial = await record_trial(master, 2.0)
    files = by_stream(trial)
    eyes = files["eyes"]
    assert (eyes["width"], eyes["height"]) == (384, 192)
    assert eyes["frames"] == len(rows(session / eyes["timing"])) >= 300  # 200 Hz
    raw, over = files["scene"], files["scene_overlay"]
    assert Path(over["path"]).name == "trial001_scene_overlay.mp4"
    raw_scan = await asyncio.to_thread(read_video_barcodes, session / raw["path"])
    over_scan = await asyncio.to_thread(read_video_barcodes, session / over["path"])
    assert len(over_scan.frames) == over["frames"] == len(rows(session / over["timing"])) > 30
    # Same frames at the same PTS as the raw video (the overlay's own queue may drop, never
    # the raw one).
    raw_by_counter = {f.counter: f for f in raw_scan.frames}
    assert raw["dropped"] == 0 and len(raw_scan.frames) == raw["frames"]
    for f in over_scan.frames:
        assert raw_by_counter[f.counter].pts_s == f.pts_s
