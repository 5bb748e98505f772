"""The web layer: ``create_app()`` serves the UI and the JSON API under ``/api``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from hitl_bus import __version__
from hitl_bus.settings import get_settings
from hitl_bus.web import pages
from hitl_bus.web.api import install_error_handlers, router
from hitl_bus.web.auth import session_secret


def create_app() -> FastAPI:
    """The ASGI app: UI pages, JSON API (OpenAPI at ``/docs``), errors mapped to statuses."""
    settings = get_settings()
    app = FastAPI(title="hitl_bus", version=__version__)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie="hitl_session",
        max_age=settings.session_max_age,
        same_site="strict",
        https_only=settings.session_https_only,
    )
    app.add_middleware(GZipMiddleware, minimum_size=1024)  # SSE streams are left alone
    app.include_router(router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.HERE / "static"), name="static")
    install_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


__all__ = ["create_app"]
