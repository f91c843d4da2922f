"""Every API endpoint against a real master and its module processes, good and bad input."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import itertools
import json
import os
import zipfile
from pathlib import Path

import httpx
import pytest

from rpi_logger.web.server import Served


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


async def test_status_reports_modules_machine_and_disk(client: httpx.AsyncClient) -> None:
    status = (await client.get("/status")).json()
    assert status["session"] is None and status["trial"] is None
    names = {m["name"]: m for m in status["modules"]}
    assert names["Ticker"]["status"] == "ok" and names["Ticker"]["simulated"]
    assert names["Notes"]["status"] == "ok"
    assert status["disk_free_mb"] > 0 and status["min_free_mb"] == 1.0
    assert 0 <= status["cpu_percent"] <= 100 * os.cpu_count()
    assert status["loop_lag_ms"]["samples"] >= 0


async def test_a_whole_recording_through_the_api(client: httpx.AsyncClient, served: Served) -> None:
    """Session, a trial with a label, two notes (one in the trial, one after), stop, end: the
    files and the notes are as the replies said."""
    assert (await client.post("/trial/start", json={})).status_code == 409  # no session yet
    reply = await client.post("/notes", json={"text": "too early"})
    assert reply.status_code == 409 and "no session" in reply.json()["detail"]

    session = (await client.post("/session/start", json={"label": "drive <1>"})).json()
    assert session["state"] == "started" and session["label"] == "drive <1>"
    assert (await client.post("/session/start", json={})).status_code == 409
    trial = (await client.post("/trial/start", json={"label": "lap"})).json()
    assert trial["number"] == 1 and trial["label"] == "lap" and trial["status"] == "recording"
    status = (await client.get("/status")).json()
    assert status["trial"]["number"] == 1 and status["session"]["id"] == session["id"]
    await asyncio.sleep(0.3)
    inside = (await client.post("/notes", json={"text": "cone hit, <b>left</b>"})).json()
    assert inside["trial"] == 1 and inside["modules"] == "Ticker"  # not Notes itself
    stopped = (await client.post("/trial/stop")).json()
    assert stopped["status"] == "complete" and stopped["files"]
    assert (await client.post("/trial/stop")).status_code == 409
    after = (await client.post("/notes", json={"text": "between trials"})).json()
    assert after["trial"] is None and after["modules"] == ""
    listed = (await client.get("/notes")).json()["notes"]
    assert [n["text"] for n in listed] == ["cone hit, <b>left</b>", "between trials"]
    ended = (await client.post("/session/end")).json()
    assert ended["state"] == "ended"
    assert (await client.post("/session/end")).status_code == 409

    folder = Path(session["directory"])
    notes = rows(folder / "Notes" / "notes.csv")
    assert [(n["text"], n["trial"], n["modules"]) for n in notes] == [
        ("cone hit, <b>left</b>", "1", "Ticker"),
        ("between trials", "", ""),
    ]
    ticks = rows(folder / "Ticker" / "trial001_ticker.csv")
    assert len(ticks) > 10


@pytest.mark.parametrize(
    ("path", "body", "why"),
    [
        ("/notes", {"text": "   "}, "must not be blank"),
        ("/notes", {"text": ""}, "text"),
        ("/notes", {}, "text"),
        ("/notes", {"text": "x" * 10_001}, "text"),
        ("/notes", {"text": "x", "extra": 1}, "extra"),
        ("/trial/start", {"label": 5}, "label"),
        ("/session/start", {"label": "x" * 201}, "label"),
    ],
)
async def test_bad_bodies_get_422_saying_what_is_wrong(
    client: httpx.AsyncClient, path: str, body: dict, why: str
) -> None:
    reply = await client.post(path, json=body)
    assert reply.status_code == 422
    assert why in reply.json()["detail"]


async def test_not_json_is_a_4xx(client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/notes", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 422


async def test_session_in_a_sub_folder_and_folders_outside_refused(
    client: httpx.AsyncClient, served: Served
) -> None:
    for bad in ("../outside", "/etc", "a/../../b", "."):
        reply = await client.post("/session/start", json={"folder": bad})
        assert reply.status_code == 400, bad
    session = (await client.post("/session/start", json={"folder": "study1/p07"})).json()
    data = served.master.config.data_dir.resolve()
    assert Path(session["directory"]).parent == data / "study1" / "p07"
    await client.post("/session/end")
    listed = (await client.get("/sessions")).json()
    assert [s["id"] for s in listed] == [f"study1/p07/{session['id']}"]
    assert (await client.get(f"/sessions/study1/p07/{session['id']}/verify")).json()["ok"]


async def test_modules_enable_disable_persisted(client: httpx.AsyncClient, served: Served) -> None:
    listed = {m["name"]: m for m in (await client.get("/modules")).json()}
    assert listed["TickerB"]["status"] == "stopped"
    enabled = (await client.post("/modules/tickerb/enable")).json()
    assert enabled["name"] == "TickerB" and enabled["status"] == "ok" and enabled["enabled"]
    state = json.loads(served.master.config.state_path.read_text())  # type: ignore[union-attr]
    assert "TickerB" in state["enabled"]
    disabled = (await client.post("/modules/TickerB/disable")).json()
    assert disabled["status"] == "stopped" and not disabled["enabled"]
    state = json.loads(served.master.config.state_path.read_text())  # type: ignore[union-attr]
    assert "TickerB" not in state["enabled"]
    reply = await client.post("/modules/NoSuch/enable")
    assert reply.status_code == 404 and "available" in reply.json()["detail"]
    await client.post("/session/start", json={})
    await client.post("/trial/start", json={})
    assert (await client.post("/modules/Ticker/disable")).status_code == 409
    await client.post("/trial/stop")


async def test_settings_read_and_write_through_the_schema(
    client: httpx.AsyncClient, served: Served, module_dir: Path
) -> None:
    config = module_dir / "ticker" / "config.txt"
    config.write_text("# my comment stays\n" + config.read_text())
    reply = (await client.get("/modules/Ticker/settings")).json()
    by_name = {s["name"]: s for s in reply["settings"]}
    assert by_name["rate_hz"]["value"] == 100 and by_name["rate_hz"]["max"] == 1000
    assert by_name["rate_hz"]["type"] == "int"

    bad = await client.put("/modules/Ticker/settings", json={"values": {"rate_hz": 5000}})
    assert bad.status_code == 400 and "between 1 and 1000" in bad.json()["detail"]
    bad = await client.put("/modules/Ticker/settings", json={"values": {"rate_hz": "fast"}})
    assert bad.status_code == 400
    bad = await client.put("/modules/Ticker/settings", json={"values": {"nope": 1}})
    assert bad.status_code == 400 and "unknown setting" in bad.json()["detail"]
    assert (await client.put("/modules/Ticker/settings", json={"values": {}})).status_code == 400
    assert "rate_hz = 100" in config.read_text()  # nothing written by the refused ones

    ok = (await client.put("/modules/Ticker/settings", json={"values": {"rate_hz": 50}})).json()
    assert ok == {"module": "Ticker", "written": {"rate_hz": 50}}
    text = config.read_text()
    assert "# my comment stays" in text and "rate_hz = 50" in text
    # What a module reads at its start: TickerB, written while stopped, then started, ticks at
    # 50 Hz in a trial.
    await client.put("/modules/TickerB/settings", json={"values": {"rate_hz": 50}})
    assert (await client.post("/modules/TickerB/enable")).json()["status"] == "ok"
    await client.post("/session/start", json={})
    await client.post("/trial/start", json={})
    reply = await client.put("/modules/Ticker/settings", json={"values": {"rate_hz": 20}})
    assert reply.status_code == 409  # not during a trial
    await asyncio.sleep(1.0)
    trial = (await client.post("/trial/stop")).json()
    await client.post("/session/end")
    entry = next(f for f in trial["files"] if f["module"] == "TickerB")
    path = next(served.master.config.data_dir.glob(f"*/{entry['path']}"))
    times = [int(r["t_mono_ns"]) for r in rows(path)]
    assert len(times) > 5
    assert {b - a for a, b in itertools.pairwise(times)} == {20_000_000}
    assert (await client.get("/modules/NoSuch/settings")).status_code == 404


async def test_previews_and_levels_of_any_module(client: httpx.AsyncClient, served: Served) -> None:
    assert (await client.get("/previews")).json() == []
    assert (await client.get("/previews/Ticker/cam.jpg")).status_code == 404
    jpeg = b"\xff\xd8\xff\xe0fake jpeg bytes\xff\xd9"
    served.master.events.publish(
        {
            "event": "preview",
            "module": "EyeTracker",
            "data": {"device": "scene", "width": 8, "height": 6, "t_mono_ns": 5,
                     "jpeg_base64": base64.b64encode(jpeg).decode()},
        }
    )  # fmt: skip
    listed = (await client.get("/previews")).json()
    assert listed == [
        {
            "module": "EyeTracker",
            "device": "scene",
            "width": 8,
            "height": 6,
            "t_mono_ns": 5,
            "url": "/api/v1/previews/EyeTracker/scene.jpg",
        }
    ]
    reply = await client.get("/previews/EyeTracker/scene.jpg")
    assert reply.content == jpeg and reply.headers["content-type"] == "image/jpeg"
    served.master.modules["Ticker"].last_status = {"levels": [{"rms_dbfs": -20, "peak_dbfs": -6}]}
    assert (await client.get("/levels")).json() == {"Ticker": [{"rms_dbfs": -20, "peak_dbfs": -6}]}
    status = (await client.get("/status")).json()
    assert next(m for m in status["modules"] if m["name"] == "Ticker")["levels"]


async def test_past_sessions_verify_zip_range_and_confinement(
    client: httpx.AsyncClient, served: Served, tmp_path: Path
) -> None:
    session = (await client.post("/session/start", json={"label": "past"})).json()
    await client.post("/trial/start", json={})
    await asyncio.sleep(0.3)
    await client.post("/trial/stop")
    await client.post("/notes", json={"text": "n"})
    await client.post("/session/end")
    sid = session["id"]
    folder = Path(session["directory"])

    listed = (await client.get("/sessions")).json()
    assert [(s["id"], s["label"], s["trials"], s["simulated"]) for s in listed] == [
        (sid, "past", 1, True)
    ]
    detail = (await client.get(f"/sessions/{sid}")).json()
    paths = {f["path"] for f in detail["files"]}
    assert {"session.json", "Notes/notes.csv", "Ticker/trial001_ticker.csv"} <= paths
    assert detail["size_bytes"] == sum(f["size_bytes"] for f in detail["files"])

    report = (await client.get(f"/sessions/{sid}/verify")).json()
    assert report["ok"] is True and report["checked_files"] >= 2

    reply = await client.get(f"/sessions/{sid}/zip")
    assert reply.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(reply.content)) as zf:
        for rel in paths:
            assert zf.read(f"{sid}/{rel}") == (folder / rel).read_bytes()

    whole = (folder / "Ticker" / "trial001_ticker.csv").read_bytes()
    url = f"/sessions/{sid}/files/Ticker/trial001_ticker.csv"
    assert (await client.get(url)).content == whole
    part = await client.get(url, headers={"Range": "bytes=10-29"})
    assert part.status_code == 206 and part.content == whole[10:30]
    assert part.headers["content-range"] == f"bytes 10-29/{len(whole)}"

    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (folder / "link").symlink_to(secret)
    for bad in (
        f"/sessions/{sid}/files/..%2F..%2Fsecret.txt",
        f"/sessions/{sid}/files/link",
        f"/sessions/{sid}/files/%2Fetc%2Fpasswd",
        f"/sessions/{sid}/files/Notes",
        "/sessions/..%2Fsecret.txt/files/x",
        "/sessions/nosuch",
        "/sessions/nosuch/zip",
        "/sessions/nosuch/verify",
    ):
        reply = await client.get(bad)
        assert reply.status_code == 404, bad
        assert "not yours" not in reply.text


async def test_disk_guard_refuses_a_trial(tmp_path: Path, module_dir: Path) -> None:
    from tests.web.conftest import web_config

    from rpi_logger.web.server import serving

    config = web_config(tmp_path, module_dir, min_free_mb=1e12)
    async with serving(config, "127.0.0.1", 0, False) as s:
        await s.master.start_modules(["Ticker"])
        async with httpx.AsyncClient(base_url=s.url + "/api/v1") as c:
            reply = await c.post("/session/start", json={})
            assert reply.status_code == 409 and "disk full" in reply.json()["detail"]
