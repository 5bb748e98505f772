"""The JSON HTTP API: runs, resume, send input, cancel, start deployments, live events.

Errors are JSON ``{"detail": ..., "errors": [...]}`` with the status that says
why: 404 unknown run or deployment, 409 not paused / already resumed / pause
expired, 413 body over ``HITL_BUS_MAX_PAYLOAD_BYTES``, 415 a body that is not
JSON, 422 a request or input that is not valid (fields named, in plain words),
503 Redis unreachable. Anything else is a bug: 500 with an ``error_id`` that the
server log repeats beside the traceback. Each route declares these shapes, so
the published OpenAPI schema is true.

Request bodies are read by :func:`json_body`: size first, then strict JSON (no
NaN, no numbers that lose their value, no invalid Unicode), then the model; a
refused body changes nothing. Writes need the token (see ``auth``); so do reads
unless ``HITL_BUS_PUBLIC_READS`` opens them. Each write needs a role that
allows it (``auth.may``): answering (resume, send) a responder, starting and
cancelling an operator; the write is made as that person (``context.acting``), so
the run records who did it and a pause's assignees are held to it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sse_starlette.sse import EventSourceResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hitl_bus.bus import codec
from hitl_bus.client import HitlClient
from hitl_bus.context import acting
from hitl_bus.deployments import arun_deployment
from hitl_bus.deployments.registry import read_deployments
from hitl_bus.engine.resuming import aresume_flow_run
from hitl_bus.engine.states import StateType
from hitl_bus.errors import (
    BusConnectionError,
    DeploymentNotFound,
    FlowPauseTimeout,
    FlowRunNotFound,
    InputRejected,
    NotAllowed,
    NotPausedError,
    ParameterMismatch,
    PayloadTooLarge,
    ResumeRejected,
)
from hitl_bus.inputs.inbox import inbox
from hitl_bus.inputs.keyset import Mailbox, acting_person, check_key_prefix
from hitl_bus.inputs.messaging import deliver
from hitl_bus.inputs.received import entry_id
from hitl_bus.inputs.run_input import RawInput
from hitl_bus.markdown import render_markdown
from hitl_bus.people.store import Person
from hitl_bus.schema_check import summarize
from hitl_bus.settings import get_settings
from hitl_bus.web import auth, live
from hitl_bus.web.auth import Answerer, Operator, Read

log = logging.getLogger("hitl_bus.web")
router = APIRouter(prefix="/api", dependencies=[Read])
client = HitlClient()
M = TypeVar("M", bound=BaseModel)


class ErrorItem(BaseModel):
    """One failing field: where (``loc``) and what to do about it (``msg``)."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str


class ErrorBody(BaseModel):
    """Every refused request: a sentence, and the failing fields when there are any."""

    detail: str
    errors: list[ErrorItem] = Field(default_factory=list)


class InternalErrorBody(BaseModel):
    """A bug: the server log has the traceback under the same ``error_id``."""

    detail: str
    error_id: str


_WHY = {
    401: "No valid token (or session).",
    403: "The person's role (or the pause's assignees) does not allow it, writes are off "
    "(no token), or a cross-site write; ``detail`` says which.",
    404: "No such run, deployment or person.",
    409: "The run is not paused, was resumed already, or its pause expired (or, for people, "
    "the name is taken or is the bootstrap admin's).",
    410: "The answer link was used already, or it has expired.",
    413: "The body is over HITL_BUS_MAX_PAYLOAD_BYTES.",
    415: "The body is not sent as JSON.",
    422: "The request or its input is not valid; ``errors`` names the fields.",
    503: "Redis cannot be reached; nothing was changed.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route can give, for its OpenAPI ``responses``."""
    out: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody, "description": _WHY[code]} for code in (401, *codes, 503)
    }
    out[500] = {"model": InternalErrorBody, "description": "A bug; the id is in the server log."}
    return out


_READ = _errors(422)
_READ_RUN = _errors(404, 422)
_WRITE = _errors(403, 404, 413, 415, 422)
_CANCEL = _errors(403, 404, 413, 422)


def _body_error(loc: Sequence[str | int], msg: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", *loc), "msg": msg, "type": kind}])


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) once it is over ``limit`` without reading the rest."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _no_body(request: Request) -> None:
    """A write without a body still refuses one over the payload limit (413)."""
    await _read_body(request, get_settings().max_payload_bytes)


class NotJSON(Exception):
    """The request's Content-Type says its body is something other than JSON (415)."""


def json_body(model: type[M]) -> Any:
    """A dependency giving the request body as ``model``, read strictly before any write.

    FastAPI's own body reading accepts NaN, turns ``1e400`` into infinity and passes
    integers beyond 64 bits and lone surrogates on to fail (500) when stored; here they
    are refused (422, naming the field), and a body over the payload limit is refused
    (413) before it is read in full.
    """

    async def parse(request: Request) -> M:
        header = request.headers.get("content-type", "application/json")
        media = header.split(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise NotJSON(f"send the body as JSON (Content-Type: application/json), not {media!r}")
        raw = await _read_body(request, get_settings().max_payload_bytes)
        if not raw.strip():
            raise _body_error([], "a JSON body is required", "missing")
        try:
            value = codec.loads_strict(raw)
        except codec.JSONRefused as exc:
            raise RequestValidationError(
                [{"loc": ("body", *p), "msg": m, "type": "json_invalid"} for p, m in exc.problems]
            ) from None
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from None

    return Depends(parse)


def _request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body read by :func:`json_body` (FastAPI cannot see it)."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _check_stored_size(value: Any) -> None:
    """What a route stores is held to the payload limit too, as encoded JSON."""
    codec.check_size(codec.dumps(value), get_settings().max_payload_bytes)


class ResumeBody(BaseModel):
    input: dict[str, Any] | None = Field(default=None, description="The pause's input, if any.")


class SendBody(BaseModel):
    value: Any = Field(default=None, description="A plain value (sent as {'value': ...}).")
    data: dict[str, Any] | None = Field(
        default=None, description="A JSON object sent as is, for a model input type."
    )
    key_prefix: str | None = Field(
        default=None, description="The receiver's stream, e.g. str-auto."
    )

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, prefix: str | None) -> str | None:
        return check_key_prefix(prefix) if prefix else None

    @model_validator(mode="after")
    def _data_needs_prefix(self) -> SendBody:
        if self.data is not None and not self.key_prefix:
            raise ValueError("sending 'data' needs the receiver's 'key_prefix'")
        return self


class StartBody(BaseModel):
    parameters: dict[str, Any] = Field(default_factory=dict)


def _dump(model: BaseModel | None) -> Any:
    return None if model is None else model.model_dump(mode="json", by_alias=True)


_STATES = ", ".join(t.value.lower() for t in StateType)


@router.get("/runs", responses=_READ)
async def list_runs(
    state: Annotated[str | None, Query(description=f"One of: {_STATES}.")] = None,
    deployment: str | None = None,
    flow_name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    waiting_for_: Annotated[
        Literal["me"] | None,
        Query(
            alias="waiting_for",
            description="me: only the paused runs the person asking may answer.",
        ),
    ] = None,
    person: Annotated[Person | None, Depends(auth.current_person)] = None,
) -> list[dict[str, Any]]:
    """The newest runs, filtered by state type, deployment and flow name.

    ``waiting_for=me`` lists only the paused runs the person asking may answer (their
    role, and each pause's assignees); it needs a token or a session (401).
    """
    if waiting_for_ is not None:
        if person is None:
            raise HTTPException(401, "log in (or send a token) to see what waits for you")
        mine = await client.read_flow_runs(
            waiting_for=person.name, limit=limit, deployment=deployment, flow_name=flow_name
        )
        return [_dump(r) for r in mine]
    if state and state.upper() not in StateType.__members__:
        raise RequestValidationError(
            [{"loc": ("query", "state"), "msg": f"must be one of: {_STATES}", "type": "enum"}]
        )
    runs = await client.read_flow_runs(
        state=state.upper() if state else None,
        flow_name=flow_name,
        limit=limit,
        deployment=deployment,
    )
    return [_dump(r) for r in runs]


async def _reader(request: Request) -> str | None:
    """The actor name of the person reading (their replies and sends are theirs); or None."""
    person = await auth.current_person(request)
    return person.actor if person is not None else None


@router.get("/runs/{run_id}", responses=_READ_RUN)
async def read_run(request: Request, run_id: uuid.UUID, logs: bool = True) -> dict[str, Any]:
    """A run with its history, current pause (schema, description, defaults), inputs and logs.

    Each input says whether this server sent it (``sent_here``) and what became of it
    (``status``: delivered, taken or skipped, with the flow's ``reason``); ``replies`` are
    what the run sent back to this server's inbox.

    ``logs=false`` leaves the logs out (a page following ``/live`` has them already).
    """
    run = await client.read_flow_run(run_id)  # 404 before the other reads
    with acting(await _reader(request)):
        (pause, history, inputs, receivers, records), (replies, outcomes) = await asyncio.gather(
            asyncio.gather(
                client.read_pause(run_id),
                client.read_state_history(run_id),
                client.read_inputs(run_id),
                client.read_receivers(run_id),
                client.read_logs(run_id) if logs else _nothing(),
            ),
            asyncio.gather(client.read_replies(run_id), client.read_input_outcomes(run_id)),
        )
        here = (acting_person() or inbox()).name  # who sends from this page: a person, or us
    for item in inputs:
        item["sent_here"] = item["sender"] == here
        item.update(outcomes.get(item["key"], {"status": "delivered"}))
    pause_json = _dump(pause)
    if pause is not None:
        pause_json["description_html"] = render_markdown(pause.description or "")
    detail = {
        "run": _dump(run),
        "history": [_dump(s) for s in history],
        "pause": pause_json,
        "inputs": inputs,
        "receivers": receivers,
        "replies": replies,
    }
    if logs:
        detail["logs"] = records
    return detail


async def _nothing() -> None:
    return None


class Me(BaseModel):
    """Who the request is made by."""

    name: str
    role: str
    teams: list[str]


@router.get("/me", responses=_errors())
async def me(person: Annotated[Person | None, Depends(auth.current_person)]) -> Me:
    """The person the token or session belongs to: name, role and teams."""
    if person is None:
        raise HTTPException(401, "log in, or send Authorization: Bearer <token>")
    return Me(name=person.name, role=person.role.value, teams=person.teams)


@router.get("/deployments", responses=_errors())
async def list_deployments() -> list[dict[str, Any]]:
    """Registered deployments: name, flow, default parameters, required parameters."""
    return [r.model_dump(mode="json") for r in await read_deployments()]


@router.post(
    "/runs/{run_id}/resume",
    responses=_errors(403, 404, 409, 413, 415, 422),
    openapi_extra=_request_body(ResumeBody),
)
async def resume_run(
    person: Annotated[Person, Answerer],
    run_id: uuid.UUID,
    body: Annotated[ResumeBody, json_body(ResumeBody)],
) -> dict[str, Any]:
    """Resume a paused run with input checked against its saved schema (a responder or
    above, and one of the pause's assignees when it names some)."""
    _check_stored_size(body.input)
    with acting(person.actor):
        await aresume_flow_run(run_id, body.input)
    return {"run": _dump(await client.read_flow_run(run_id))}


@router.post(
    "/runs/{run_id}/input",
    responses=_WRITE,
    openapi_extra=_request_body(SendBody),
)
async def send_run_input(
    person: Annotated[Person, Answerer],
    run_id: uuid.UUID,
    body: Annotated[SendBody, json_body(SendBody)],
) -> dict[str, Any]:
    """Send an input to a run (a plain ``value``, or a JSON object as ``data``).

    When the run receives on that key prefix, the input is checked against the
    receiver's schema (by ``deliver``, as for every sender), so a mistyped input is
    refused here (422), not in the run. It is sent as the person the request acts for
    (``hitl.user.<name>``), else from the web server's inbox: the run's ``respond()``
    comes back to ``GET /api/runs/{run_id}/replies``. Answers the
    input's key and its stream entry id (where it sits among the run's inputs and replies).
    """
    value: Any = RawInput.model_validate(body.data) if body.data is not None else body.value
    # Sent as the person acting, else from this process's inbox, so replies reach them.
    target = Mailbox.for_run(run_id)
    with acting(person.actor):
        key = await deliver(target, value, key_prefix=body.key_prefix)
    return {"key": key, "id": await entry_id(target.id, key)}


@router.post("/runs/{run_id}/cancel", dependencies=[Operator, Depends(_no_body)], responses=_CANCEL)
async def cancel_run(person: Annotated[Person, Operator], run_id: uuid.UUID) -> dict[str, Any]:
    """Cancel a run (an operator or above); it stops at its next checkpoint."""
    with acting(person.actor):
        return {"state": _dump(await client.cancel_flow_run(run_id))}


@router.post(
    "/deployments/{flow_name}/{deployment_name}/runs",
    responses=_WRITE,
    openapi_extra=_request_body(StartBody),
)
async def start_run(
    person: Annotated[Person, Operator],
    flow_name: str,
    deployment_name: str,
    body: Annotated[StartBody, json_body(StartBody)],
) -> dict[str, Any]:
    """Queue a run of a deployment for its workers (an operator or above)."""
    _check_stored_size(body.parameters)
    with acting(person.actor):
        name = f"{flow_name}/{deployment_name}"
        run = await arun_deployment(name, body.parameters, timeout=0)
    return {"run": _dump(run)}


def _last_event_id(
    header: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Sent by a reconnecting browser: the stream goes on after it.",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(
            max_length=400,
            description="As the Last-Event-ID header, for a page that opens the stream again.",
        ),
    ] = None,
) -> str | None:
    return header or last_event_id


LastEventId = Annotated[str | None, Depends(_last_event_id)]


async def _stream(request: Request, last: str | None, *feeds: live.Feed) -> EventSourceResponse:
    positions = await live.start(feeds, last)
    return EventSourceResponse(live.sse(request, feeds, positions))


@router.get("/events", responses=_READ)
async def events(
    request: Request, last: LastEventId, run_id: uuid.UUID | None = None
) -> EventSourceResponse:
    """Live events (Server-Sent Events): every run's, or one run's with ``run_id``."""
    run = str(run_id) if run_id else None
    return await _stream(request, last, live.events(run))


@router.get("/runs/{run_id}/logs", responses=_READ_RUN)
async def run_logs(request: Request, run_id: uuid.UUID, last: LastEventId) -> EventSourceResponse:
    """A run's log records (SSE): the ones written so far, then new ones as they come."""
    await client.read_flow_run(run_id)  # 404 for an unknown run
    return await _stream(request, last, live.logs(str(run_id)))


@router.get("/runs/{run_id}/replies", responses=_READ_RUN)
async def run_replies(
    request: Request, run_id: uuid.UUID, last: LastEventId
) -> EventSourceResponse:
    """What the run sends back (``respond()``) to inputs sent from this server (SSE)."""
    await client.read_flow_run(run_id)
    with acting(await _reader(request)):
        feed = live.replies(str(run_id))
    return await _stream(request, last, feed)


@router.get("/runs/{run_id}/live", responses=_READ_RUN)
async def run_live(request: Request, run_id: uuid.UUID, last: LastEventId) -> EventSourceResponse:
    """One run's events, logs (from the start) and replies on one SSE stream.

    A page needs all three; one connection each would soon use up the six a browser
    keeps per server. Each message's id says where all three stand.
    """
    await client.read_flow_run(run_id)
    run = str(run_id)
    with acting(await _reader(request)):
        replies = live.replies(run)
    return await _stream(request, last, live.events(run), live.logs(run), replies)


# The project's own client errors; anything else reaching a handler is a bug (500).
_STATUS: list[tuple[type[Exception], int]] = [
    (FlowRunNotFound, 404),
    (DeploymentNotFound, 404),
    (NotAllowed, 403),  # a role or a pause's assignees leave the person out: says why
    (NotPausedError, 409),
    (FlowPauseTimeout, 409),
    (PayloadTooLarge, 413),
    (NotJSON, 415),
    (ResumeRejected, 422),
    (InputRejected, 422),
    (ParameterMismatch, 422),
    (BusConnectionError, 503),  # Redis is down: try again later; nothing was changed
]


#: What a person is told when Redis cannot be reached; the reason goes to the server log.
STORE_UNREACHABLE = (
    "The server can't reach its store; nothing was changed and your answers are kept. "
    "Try again in a moment."
)


#: A page asked for while Redis is down (its session is in Redis too): the same words.
_UNREACHABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Try again in a moment · hitl_bus</title><link rel="stylesheet" href="/static/app.css">
</head><body><main><section class="card narrow"><h1>Try again in a moment</h1>
<p>The server can't reach its store; nothing was changed. Reload this page in a moment.</p>
</section></main></body></html>
"""


async def _handle(request: Request, exc: Exception) -> Response:
    status = next(code for cls, code in _STATUS if isinstance(exc, cls))
    body: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, BusConnectionError):
        log.warning("%s %s: Redis cannot be reached: %s", request.method, request.url.path, exc)
        body["detail"] = STORE_UNREACHABLE
        wants_page = "text/html" in request.headers.get("accept", "")
        if wants_page and not request.url.path.startswith("/api/"):
            return HTMLResponse(_UNREACHABLE_PAGE, status_code=status)
    if isinstance(exc, InputRejected):
        body["detail"] = exc.reason  # a send box shows the fields beside their boxes
    if isinstance(exc, ResumeRejected | InputRejected | ParameterMismatch):
        body["errors"] = exc.errors
    return JSONResponse(body, status_code=status)


def _plain(error: dict[str, Any]) -> dict[str, Any]:
    msg = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    return {"loc": list(error.get("loc", ())), "msg": msg, "type": error.get("type", "")}


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """Request validation in the same shape as every other 422 (the input is not echoed)."""
    assert isinstance(exc, RequestValidationError)
    errors = [_plain(e) for e in exc.errors()]
    where = summarize(errors[:5])
    return JSONResponse({"detail": f"the request is not valid: {where}", "errors": errors}, 422)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: say so (500) with an id the log repeats beside the traceback."""
    error_id = uuid.uuid4().hex[:12]
    log.error(
        "internal error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc
    )
    body = {"detail": f"internal error {error_id}; the server log has it", "error_id": error_id}
    return JSONResponse(body, status_code=500)


class InternalErrors:
    """ASGI middleware: an unexpected error becomes the 500 of ``_internal_error`` here,
    inside the app's other middleware, so the answer carries the security headers like
    any other (Starlette's own last-resort handler sits outside all middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # too late for another answer: the connection just ends
                raise
            response = await _internal_error(Request(scope), exc)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Map hitl_bus errors onto HTTP statuses (one place, so every route agrees)."""
    for cls, _ in _STATUS:
        app.add_exception_handler(cls, _handle)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _internal_error)
