"""Past sessions: list, detail, verify on demand, whole-session zip and single files.

Every path comes from the request and is confined to the data folder (outside: 404). Listing,
verifying and zipping read many files, so they run on worker threads; single files are served
by Starlette's FileResponse, which answers Range requests (a browser seeks in a video that way).
"""

from __future__ import annotations

import asyncio
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import FileResponse, StreamingResponse

from rpi_logger.core.master import Master
from rpi_logger.web import files
from rpi_logger.web.api.deps import master
from rpi_logger.web.models import PastSession, SessionDetail, VerifyReply

router = APIRouter(tags=["sessions"])
M = Annotated[Master, Depends(master)]
Sid = Annotated[str, Path(max_length=300, description="session id (folder under the data folder)")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such session or file"}}


async def _session_dir(m: Master, sid: str) -> FsPath:
    try:
        return await asyncio.to_thread(files.find_session, m.config.data_dir, sid)
    except files.NotFound:
        raise HTTPException(404, f"no session {sid!r} in the data folder") from None


@router.get("/sessions", response_model=list[PastSession])
async def list_sessions(m: M) -> Any:
    """Every session in the data folder, newest first."""
    return await asyncio.to_thread(files.list_sessions, m.config.data_dir)


@router.get("/sessions/{sid:path}/verify", response_model=VerifyReply, responses=NOT_FOUND)
async def verify(sid: Sid, m: M) -> Any:
    """The integrity report of `rpi-logger verify` (read-only: nothing is repaired)."""
    from rpi_logger.tools.verify import verify_session

    folder = await _session_dir(m, sid)
    report = await asyncio.to_thread(verify_session, folder)
    return report.as_dict()


@router.get(
    "/sessions/{sid:path}/zip",
    response_class=StreamingResponse,
    responses={**NOT_FOUND, 200: {"content": {"application/zip": {}}}},
)
async def download_zip(sid: Sid, m: M) -> StreamingResponse:
    """The whole session as a zip, streamed as it is made."""
    folder = await _session_dir(m, sid)
    return StreamingResponse(
        files.zip_stream(folder),  # a plain iterator: Starlette runs it on its thread pool
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{folder.name}.zip"'},
    )


@router.get(
    "/sessions/{sid:path}/files/{path:path}",
    response_class=FileResponse,
    responses={**NOT_FOUND, 206: {"description": "the requested byte range"}},
)
async def download_file(sid: Sid, path: Annotated[str, Path(max_length=1000)], m: M) -> Any:
    """One file of the session; Range requests get 206 with the range."""
    folder = await _session_dir(m, sid)
    try:
        target = await asyncio.to_thread(files.confined, folder, *path.split("/"))
    except files.NotFound:
        raise HTTPException(404, f"no file {path!r} in session {sid!r}") from None
    if not await asyncio.to_thread(target.is_file):
        raise HTTPException(404, f"{path!r} is not a file")
    return FileResponse(target, filename=target.name, content_disposition_type="inline")


@router.get("/sessions/{sid:path}", response_model=SessionDetail, responses=NOT_FOUND)
async def session_detail(sid: Sid, m: M) -> Any:
    """One session: its summary and every file with its download URL."""
    folder = await _session_dir(m, sid)
    return await asyncio.to_thread(files.summary, m.config.data_dir, folder, True)
