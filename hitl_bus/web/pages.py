"""The web UI's pages: log in, the runs list, one run (with its Resume form), the API docs.

Pages are thin Jinja2 shells; the scripts under ``static/`` fill them from the
JSON API and keep them live over SSE. Every page carries the session's CSRF
token in a meta tag, which the scripts send back with each write.

``/docs`` is Swagger UI served from this server (its files come with
``fastapi-offline``), started by a script of ours rather than an inline one, so
it lives under the same Content-Security-Policy as the UI; it and
``/openapi.json`` need the token whenever reads do.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from hitl_bus.notify import page
from hitl_bus.people.roles import Action, allows
from hitl_bus.version import __version__
from hitl_bus.web import assets, auth

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["asset"] = assets.asset_url
router = APIRouter(include_in_schema=False)


async def _context(request: Request, **extra: Any) -> dict[str, Any]:
    """What every page's header and scripts need: who is logged in and what they may do."""
    session = await auth.current_session(request)
    person = session.person if session else None
    return {
        "version": __version__,
        "csrf_token": session.csrf if session else "",
        "logged_in": person is not None,
        "person": person,
        "can_answer": person is not None and allows(person.role, Action.ANSWER),
        "can_operate": person is not None and allows(person.role, Action.OPERATE),
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
    if token is not None:
        response = RedirectResponse(_safe_next(next), status_code=303)
        if await auth.log_in(request, response, token) is not None:
            return response
    error = "That token is not valid." if token is not None else None
    return templates.TemplateResponse(
        request,
        "login.html",
        await _context(request, error=error, next=_safe_next(next)),
        status_code=401 if token is not None else 200,
    )


@router.post("/login")
async def login(request: Request, token: str = Form(...), next: str = Form("/")) -> Response:
    if not auth.same_origin(request):
        raise HTTPException(403, "cross-site request refused")
    response = RedirectResponse(_safe_next(next), status_code=303)
    if await auth.log_in(request, response, token) is None:
        return templates.TemplateResponse(
            request,
            "login.html",
            await _context(request, error="That token is not valid.", next=_safe_next(next)),
            status_code=401,
        )
    return response


@router.post("/logout", dependencies=[auth.Write])
async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    await auth.log_out(request, response)
    return response


@router.get("/", response_class=HTMLResponse)
async def runs_page(request: Request) -> Response:
    """Every run, newest first, updated live; deployments with a Start button."""
    if not await auth.can_read(request):
        return _login_redirect(request)
    return templates.TemplateResponse(request, "runs.html", await _context(request))


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: uuid.UUID) -> Response:
    """One run: state, Resume form when paused, send boxes, inputs, live logs."""
    if not await auth.can_read(request):
        return _login_redirect(request)
    context = await _context(request, run_id=str(run_id))
    return templates.TemplateResponse(request, "run.html", context)


@router.get("/notifications", response_class=HTMLResponse)
async def notifications_page(request: Request) -> Response:
    """What the notifier posted to this page (admins only: the entries hold answer links)."""
    if not await auth.can_read(request):
        return _login_redirect(request)
    context = await _context(request)
    person = await auth.current_person(request)  # a session's, or a Bearer token's
    if person is None or not allows(person.role, Action.CONFIGURE):
        raise HTTPException(403, "Only admins see the notifications: they hold answer links.")
    context.update(enabled=await page.events_wanted(), posted=await page.recent(100))
    return templates.TemplateResponse(request, "notifications.html", context)


@router.get("/docs", response_class=HTMLResponse)
async def docs_page(request: Request) -> Response:
    """Swagger UI for the JSON API."""
    if not await auth.can_read(request):
        return _login_redirect(request)
    return templates.TemplateResponse(request, "docs.html", await _context(request))


@router.get("/openapi.json", dependencies=[auth.Read])
async def openapi(request: Request) -> JSONResponse:
    """The OpenAPI document the docs page reads."""
    return JSONResponse(request.app.openapi())
