"""The web UI's pages: log in, the runs list, one run (with its Resume form).

Pages are thin Jinja2 shells; the scripts under ``static/`` fill them from the
JSON API and keep them live over SSE. Every page carries the session's CSRF
token in a meta tag, which the scripts send back with each write.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from hitl_bus import __version__
from hitl_bus.settings import get_settings
from hitl_bus.web import auth

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)


def _context(request: Request, **extra: Any) -> dict[str, Any]:
    settings = get_settings()
    return {
        "version": __version__,
        "csrf_token": auth.csrf_token(request),
        "logged_in": auth.logged_in(request),
        "writes_enabled": bool(settings.api_token),
        **extra,
    }


def _safe_next(target: str | None) -> str:
    """Only a path of this site: a login link must not send people elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request, token: str | None = None, next: str | None = None
) -> Response:
    """The login form; ``?token=`` (the link ``hitl-bus dev`` prints) logs in directly."""
    if token is not None and auth.token_is_valid(token):
        auth.log_in(request)
        return RedirectResponse(_safe_next(next), status_code=303)
    error = "That token is not valid." if token is not None else None
    if not get_settings().api_token:
        error = "No token is configured (HITL_BUS_API_TOKEN): the UI is read-only."
    return templates.TemplateResponse(
        request,
        "login.html",
        _context(request, error=error, next=_safe_next(next)),
        status_code=401 if token is not None else 200,
    )


@router.post("/login")
async def login(request: Request, token: str = Form(...), next: str = Form("/")) -> Response:
    if not auth.same_origin(request):
        raise HTTPException(403, "cross-site request refused")
    if not auth.token_is_valid(token):
        return templates.TemplateResponse(
            request,
            "login.html",
            _context(request, error="That token is not valid.", next=_safe_next(next)),
            status_code=401,
        )
    auth.log_in(request)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[auth.Write])
async def logout(request: Request) -> Response:
    auth.log_out(request)
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
async def runs_page(request: Request) -> Response:
    """Every run, newest first, updated live; deployments with a Start button."""
    if not auth.can_read(request):
        return _login_redirect(request)
    return templates.TemplateResponse(request, "runs.html", _context(request))


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: uuid.UUID) -> Response:
    """One run: state, Resume form when paused, send boxes, inputs, live logs."""
    if not auth.can_read(request):
        return _login_redirect(request)
    return templates.TemplateResponse(request, "run.html", _context(request, run_id=str(run_id)))
