"""The web layer: ``create_app()`` serves the UI and the JSON API under ``/api``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles

from hitl_bus.version import __version__
from hitl_bus.web import answer, assets, pages, people_api
from hitl_bus.web.api import InternalErrors, install_error_handlers, router
from hitl_bus.web.headers import SECURITY_HEADERS, SecureASGIMiddleware


def create_app() -> FastAPI:
    """The ASGI app: UI pages, JSON API (OpenAPI at ``/docs``), errors mapped to statuses."""
    # The docs and the OpenAPI document are served by ``pages``, under the read rule.
    app = FastAPI(
        title="hitl_bus", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_middleware(InternalErrors)  # innermost: its 500s pass the headers below
    app.add_middleware(GZipMiddleware, minimum_size=1024)  # SSE streams are left alone
    app.add_middleware(SecureASGIMiddleware, secure=SECURITY_HEADERS)  # every response
    app.include_router(router)
    app.include_router(people_api.router)
    app.include_router(answer.router)  # the link is its own credential: no read rule
    app.include_router(pages.router)
    app.router.routes.append(assets.route)  # before the mount, which would answer first
    app.mount("/static", StaticFiles(directory=pages.HERE / "static"), name="static")
    app.mount(
        "/docs/assets", StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets"
    )
    install_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


answer_url = answer.answer_url

__all__ = ["answer_url", "create_app"]
