"""GET /status: the whole picture the UI polls or gets over the WebSocket."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from rpi_logger.web.api.deps import live
from rpi_logger.web.live import Live
from rpi_logger.web.models import Status

router = APIRouter(tags=["status"])


@router.get("/status", response_model=Status)
async def get_status(lv: Annotated[Live, Depends(live)]) -> Any:
    """Session, trial, modules (state, rates, drops, loop lag), machine and disk."""
    return await lv.current_status()
