"""Session start/end, trial start/stop, notes: what the Record and Stop buttons do."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException

from rpi_logger.core.master import Master, MasterError
from rpi_logger.core.session import SessionController
from rpi_logger.web.api.deps import ERRORS, conflict, master
from rpi_logger.web.models import (
    Note,
    NoteIn,
    Notes,
    SessionReply,
    SessionStart,
    TrialReply,
    TrialStart,
)

router = APIRouter(tags=["recording"])
M = Annotated[Master, Depends(master)]


def _session(session: SessionController, state: str) -> dict[str, Any]:
    return {
        "id": session.directory.name,
        "directory": str(session.directory),
        "label": session.manifest.label,
        "simulated": session.manifest.simulated,
        "state": state,
    }


@router.post("/session/start", response_model=SessionReply, responses=ERRORS)
async def start_session(m: M, body: SessionStart | None = None) -> Any:
    """Start a session (a folder named by time and label) in the data folder or a sub-folder
    of it."""
    body = body or SessionStart()
    where = m.config.data_dir
    if body.folder is not None:
        parts = [p for p in body.folder.replace("\\", "/").split("/") if p]
        if not parts or any(p in (".", "..") for p in parts) or body.folder.startswith("/"):
            raise HTTPException(400, "folder must be a relative sub-folder of the data folder")
        where = m.config.data_dir.joinpath(*parts)
    try:
        session = await m.start_session(body.label, where)
    except MasterError as exc:
        raise conflict(exc) from None
    return _session(session, "started")


@router.post("/session/end", response_model=SessionReply, responses=ERRORS)
async def end_session(m: M) -> Any:
    """End the session (stop the trial first)."""
    try:
        session = await m.end_session()
    except MasterError as exc:
        raise conflict(exc) from None
    return _session(session, "ended")


@router.post("/trial/start", response_model=TrialReply, responses=ERRORS)
async def start_trial(m: M, body: TrialStart | None = None) -> Any:
    """Start the next trial for every module at one instant (refused below min_free_mb)."""
    try:
        return await m.start_trial((body or TrialStart()).label)
    except MasterError as exc:
        raise conflict(exc) from None


@router.post("/trial/stop", response_model=TrialReply, responses=ERRORS)
async def stop_trial(m: M) -> Any:
    """Stop the running trial; its files are closed when this returns."""
    try:
        return await m.stop_trial()
    except MasterError as exc:
        raise conflict(exc) from None


@router.post("/notes", response_model=Note, responses=ERRORS)
async def add_note(body: NoteIn, m: M) -> Any:
    """Add a note; it is fsynced to notes.csv before this returns."""
    try:
        return await m.add_note(body.text)
    except MasterError as exc:
        raise conflict(exc) from None


@router.get("/notes", response_model=Notes, responses=ERRORS)
async def list_notes(m: M) -> Any:
    """The notes of the running session."""
    try:
        return await m.request("Notes", "get_notes")
    except MasterError as exc:
        raise conflict(exc) from None
