"""The FastAPI application: composes the API routers, the page and the security guard."""

from __future__ import annotations

from importlib.resources import files as package_files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from rpi_logger import __version__
from rpi_logger.core.master import Master
from rpi_logger.web.api import control, events, history, modules, previews, status
from rpi_logger.web.live import Live
from rpi_logger.web.security import Guard

API = "/api/v1"
STATIC = package_files("rpi_logger.web") / "static"


def _validation_message(exc: RequestValidationError) -> str:
    """One readable line per problem: where and what, e.g. `body.text: must not be blank`."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(master: Master, live: Live, token: str | None) -> Any:
    """The ASGI application for `master` (wrapped in the guard; `token` None: loopback)."""
    app = FastAPI(
        title="RPi Logger",
        version=__version__,
        description="Drive a synchronized multi-sensor recording: sessions, trials, notes, "
        "modules, live events and past sessions.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.master = master
    app.state.live = live

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc)}, status_code=422)

    for router in (status, modules, control, previews, history, events):
        app.include_router(router.router, prefix=API)

    def openapi() -> dict[str, Any]:
        # Our 422 replies say what is wrong in one line (`detail` is a string), like every
        # other 4xx; the document says so instead of FastAPI's default list of errors.
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = doc.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = {
                    "title": "HTTPValidationError",
                    "type": "object",
                    "properties": {"detail": {"type": "string", "title": "Detail"}},
                    "required": ["detail"],
                }
                schemas.pop("ValidationError", None)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount("/", StaticFiles(directory=str(STATIC), html=True), name="page")
    return Guard(app, token)
