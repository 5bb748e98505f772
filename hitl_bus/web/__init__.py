"""The web layer: ``create_app()`` (FastAPI) with the JSON API under ``/api``."""

from __future__ import annotations

from fastapi import FastAPI

from hitl_bus import __version__
from hitl_bus.web.api import install_error_handlers, router


def create_app() -> FastAPI:
    """The ASGI app: JSON API (OpenAPI at ``/docs``), errors mapped to statuses."""
    app = FastAPI(title="hitl_bus", version=__version__)
    app.include_router(router)
    install_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


__all__ = ["create_app"]
