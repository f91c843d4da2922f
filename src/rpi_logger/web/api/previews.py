"""Previews (the newest JPEG per device, as the module encoded it) and audio levels."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response

from rpi_logger.web.api.deps import live
from rpi_logger.web.live import Live
from rpi_logger.web.models import Preview

router = APIRouter(tags=["live"])
L = Annotated[Live, Depends(live)]
Short = Annotated[str, Path(max_length=100)]


@router.get("/previews", response_model=list[Preview])
async def list_previews(lv: L) -> Any:
    """Every device with a preview, and where its newest JPEG is."""
    return [
        {
            "module": module,
            "device": device,
            "width": data.get("width"),
            "height": data.get("height"),
            "t_mono_ns": data.get("t_mono_ns"),
            "url": f"/api/v1/previews/{module}/{device}.jpg",
        }
        for (module, device), data in sorted(lv.previews.items())
    ]


@router.get(
    "/previews/{module}/{device}.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no preview yet"}},
)
async def preview_jpeg(
    module: Annotated[str, Path(max_length=100)],
    device: Annotated[str, Path(max_length=100)],
    lv: L,
) -> Response:
    """The newest preview of one device (the module's own JPEG bytes)."""
    data = lv.previews.get((module, device))
    if data is None:
        raise HTTPException(404, f"no preview of {module}/{device} yet")
    try:
        jpeg = base64.b64decode(data.get("jpeg_base64", ""), validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(404, f"the preview of {module}/{device} is not a JPEG") from None
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/levels", response_model=dict[str, Any])
async def levels(lv: L) -> Any:
    """Audio levels (per-channel RMS and peak dBFS) of every module whose status has them."""
    return {
        e.name: e.last_status["levels"]
        for e in lv.master.modules.values()
        if e.last_status.get("levels") is not None
    }
