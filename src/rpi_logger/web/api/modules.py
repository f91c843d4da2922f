"""Modules: list, enable/disable (persisted), settings read and write (config.txt), and a
module's own commands (the DRT's ``stim_on``, the VOG's ``lens``...)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path

from rpi_logger.core.master import Master, MasterError
from rpi_logger.core.module_settings import setting_json
from rpi_logger.core.status import StatusProbe
from rpi_logger.web.api.deps import ERRORS, conflict, master, module_name
from rpi_logger.web.models import (
    CommandIn,
    CommandReply,
    ModuleInfo,
    ModuleSettings,
    SettingsIn,
    SettingsWritten,
)

router = APIRouter(tags=["modules"])
Name = Annotated[str, Path(max_length=100, description="module name, any case")]


def _info(m: Master, name: str) -> dict[str, Any]:
    spec = next(s for s in m.specs if s.name == name)
    entry = m.modules.get(name)
    return {
        "name": spec.name,
        "valid": spec.valid,
        "reason": spec.reason,
        "builtin": spec.builtin,
        "enabled": spec.name in m.state.enabled,
        "status": entry.status if entry else "stopped",
        "error": entry.error if entry else None,
        "simulated": bool(entry and StatusProbe.module_json(entry)["simulated"]),
    }


@router.get("/modules", response_model=list[ModuleInfo])
async def list_modules(m: Annotated[Master, Depends(master)]) -> Any:
    """Every discovered module, with why a rejected one cannot be used."""
    return [_info(m, s.name) for s in m.specs]


@router.post("/modules/{name}/enable", response_model=ModuleInfo, responses=ERRORS)
async def enable(name: Name, m: Annotated[Master, Depends(master)]) -> Any:
    """Start the module now and at every later start (between sessions: a module started
    mid-session would not be part of it)."""
    canonical = module_name(m, name)
    if m.session is not None:
        raise HTTPException(409, "end the session before enabling a module")
    try:
        error = await m.enable_module(canonical)
    except MasterError as exc:
        raise conflict(exc) from None
    if error:
        raise HTTPException(409, f"{canonical} is enabled but did not start: {error}")
    return _info(m, canonical)


@router.post("/modules/{name}/disable", response_model=ModuleInfo, responses=ERRORS)
async def disable(name: Name, m: Annotated[Master, Depends(master)]) -> Any:
    """Stop the module now and leave it off at later starts (refused during a trial)."""
    canonical = module_name(m, name)
    if m.session is not None and m.session.current is not None:
        raise HTTPException(409, "stop the trial before disabling a module")
    try:
        await m.disable_module(canonical)
    except MasterError as exc:
        raise conflict(exc) from None
    return _info(m, canonical)


@router.get("/modules/{name}/settings", response_model=ModuleSettings, responses=ERRORS)
async def read_settings(name: Name, m: Annotated[Master, Depends(master)]) -> Any:
    """The module's typed settings: declaration and the value its config.txt holds."""
    canonical = module_name(m, name)
    try:
        schema, values = await m.read_module_settings(canonical)
    except MasterError as exc:
        raise conflict(exc) from None
    return {
        "module": canonical,
        "settings": [{**setting_json(s), "value": values.get(s.name)} for s in schema],
    }


@router.put(
    "/modules/{name}/settings",
    response_model=SettingsWritten,
    responses={**ERRORS, 400: {"description": "a value the setting does not accept"}},
)
async def write_settings(
    name: Name, body: SettingsIn, m: Annotated[Master, Depends(master)]
) -> Any:
    """Check the values against the module's settings, write them to its config.txt
    (comments kept) and apply them to the running module."""
    canonical = module_name(m, name)
    if not body.values:
        raise HTTPException(400, "no settings given: `values` is empty")
    try:
        written = await m.write_module_settings(canonical, dict(body.values))
    except MasterError as exc:
        text = str(exc)
        if text.startswith(("unknown setting", "setting ")):
            raise HTTPException(400, text) from None
        raise conflict(exc) from None
    return {"module": canonical, "written": written}


Command = Annotated[
    str, Path(max_length=64, pattern=r"^[a-z][a-z0-9_]*$", description="the module's command")
]


@router.post(
    "/modules/{name}/commands/{command}",
    response_model=CommandReply,
    responses={**ERRORS, 400: {"description": "a command or arguments the module refuses"}},
)
async def module_command(
    name: Name, command: Command, body: CommandIn, m: Annotated[Master, Depends(master)]
) -> Any:
    """Send a running module one of its own commands, for setting up a study: the DRT's
    ``stim_on`` / ``stim_off``, the VOG's ``lens`` (``{"args": {"state": "open", "lens": "a"}}``).
    The module's refusal is a 400 with its message; a module not running is a 409."""
    canonical = module_name(m, name)
    try:
        result = await m.request(canonical, command, dict(body.args))
    except MasterError as exc:
        text = str(exc)
        if "is not running" in text or "the master's to send" in text:
            raise HTTPException(409, text) from None
        raise HTTPException(400, text) from None
    return {"module": canonical, "command": command, "result": result}
