"""Answer links: one pause's form, opened and answered without a login, once.

A link is ``<HITL_BUS_PUBLIC_URL>/answer/<token>``, its token minted by
``people.links.mint`` for one run, one pause key and the assignee it is sent to.
``GET /answer/{token}`` is a page holding only that pause's description and form
(no other run, no way into the rest of the UI); its script reads the pause from
``GET /api/answer/{token}`` and sends the answer to ``POST /api/answer/{token}``,
with the body of ``POST /api/runs/{id}/resume``.

The token is the only credential: it opens no session and reads nothing but its
own pause. An answer is checked against the form before the link is spent, so a
refused one (422) leaves the link usable and nothing typed is lost; then the link
is used (it works once) and the run resumed as the assignee (``hitl.user.<name>``),
so the run records them as who answered and the pause's assignees are held to them.
A cross-site POST is refused: no cookie protects it, so the same-origin check and
the token in the path do.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from hitl_bus.client import HitlClient
from hitl_bus.client.pauses import PauseDetails
from hitl_bus.context import acting
from hitl_bus.engine.resuming import aresume_flow_run
from hitl_bus.errors import ResumeRejected
from hitl_bus.markdown import render_markdown
from hitl_bus.people import links
from hitl_bus.people.roles import actor_name
from hitl_bus.schema_check import schema_errors, summarize
from hitl_bus.settings import get_settings
from hitl_bus.version import __version__
from hitl_bus.web import auth, pages
from hitl_bus.web.api import ResumeBody, _check_stored_size, _errors, _request_body, json_body

router = APIRouter()
client = HitlClient()

#: What anyone holding a spent, expired or made-up link is told (the same for each, so a
#: guessed token learns nothing).
GONE = "This link was already used, or it has expired."
_NO_STORE = {"Cache-Control": "no-store"}


def answer_url(token: str) -> str:
    """The link a person opens to answer: ``<HITL_BUS_PUBLIC_URL>/answer/<token>``."""
    return f"{get_settings().public_url.rstrip('/')}/answer/{token}"


async def _open(token: str) -> tuple[links.AnswerLink, PauseDetails]:
    """The link's run and pause, if it is unused and its pause still waits (else 410)."""
    link = await links.peek(token)
    if link is None:
        raise HTTPException(410, GONE, headers=_NO_STORE)
    pause = await client.read_pause(link.run_id)
    if pause is None or pause.pause_key != link.pause_key:
        raise HTTPException(410, GONE, headers=_NO_STORE)
    return link, pause


def _check(pause: PauseDetails, run_input: dict[str, Any] | None) -> None:
    """The resume's own schema check, made before the link is spent (422 keeps it)."""
    if pause.schema_ is not None:
        errors = schema_errors(pause.schema_, {} if run_input is None else run_input)
        if errors:
            raise ResumeRejected(f"input does not match the form: {summarize(errors)}", errors)
    elif run_input is not None:
        raise ResumeRejected("this pause takes no input", [{"loc": [], "msg": "no input expected"}])


@router.get("/api/answer/{token}", responses=_errors(410, 422))
async def read_answer_link(token: str, response: Response) -> dict[str, Any]:
    """The pause an answer link opens: its run's name, the form's schema, description and
    defaults, and who the link was sent to. Nothing else is readable with the link."""
    link, pause = await _open(token)
    run = await client.read_flow_run(link.run_id)
    response.headers.update(_NO_STORE)
    return {
        "run": {"id": str(run.id), "name": run.name, "flow_name": run.flow_name},
        "pause": {
            **pause.model_dump(mode="json", by_alias=True, exclude={"keyset"}),
            "description_html": render_markdown(pause.description or ""),
        },
        "assignee": link.assignee,
    }


@router.post(
    "/api/answer/{token}",
    responses=_errors(403, 404, 409, 410, 413, 415, 422),
    openapi_extra=_request_body(ResumeBody),
)
async def answer(
    request: Request, token: str, body: Annotated[ResumeBody, json_body(ResumeBody)]
) -> dict[str, Any]:
    """Resume the link's run and pause with ``{"input": ...}``, once, as its assignee.

    410 when the link was used or has expired, or its pause was answered otherwise; 422
    (the link still usable) when the input does not fit the form.
    """
    if not auth.same_origin(request):
        raise HTTPException(403, "cross-site request refused")
    _check_stored_size(body.input)
    link, pause = await _open(token)
    _check(pause, body.input)
    if await links.use(token) is None:  # spent by someone else in the meantime
        raise HTTPException(410, GONE, headers=_NO_STORE)
    with acting(actor_name(link.assignee)):
        await aresume_flow_run(link.run_id, body.input)
    return {"run_id": link.run_id, "pause_key": link.pause_key, "answered_by": link.assignee}


@router.get("/answer/{token}", response_class=HTMLResponse, include_in_schema=False)
async def answer_page(request: Request, token: str) -> Response:
    """The page of one pause's form; a plain page saying so for a link that no longer works."""
    gone = await links.peek(token) is None
    return pages.templates.TemplateResponse(
        request,
        "answer.html",
        {"version": __version__, "gone": GONE if gone else None},
        status_code=410 if gone else 200,
        headers=_NO_STORE,
    )
