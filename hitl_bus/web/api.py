"""The JSON HTTP API: runs, resume, send input, cancel, start deployments, live events.

Errors are JSON ``{"detail": ..., "errors": [...]}`` with the status that says
why: 404 unknown run or deployment, 409 not paused / already resumed / pause
expired, 413 payload over the limit, 422 input failing the schema (fields named,
in plain words). Writes need the token (see ``auth``); so do reads unless
``HITL_BUS_PUBLIC_READS`` opens them.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sse_starlette.sse import EventSourceResponse

from hitl_bus import keys
from hitl_bus.client import HitlClient
from hitl_bus.deployments import arun_deployment
from hitl_bus.deployments.registry import read_deployments
from hitl_bus.engine.pausing import aresume_flow_run
from hitl_bus.errors import (
    BusConnectionError,
    DeploymentNotFound,
    FlowPauseTimeout,
    FlowRunNotFound,
    NotPausedError,
    ParameterMismatch,
    PayloadTooLarge,
    ResumeRejected,
)
from hitl_bus.inputs.keyset import Mailbox, check_key_prefix
from hitl_bus.inputs.run_input import RawInput
from hitl_bus.inputs.schema_check import schema_errors
from hitl_bus.inputs.sending import deliver
from hitl_bus.web import live
from hitl_bus.web.auth import Read, Write
from hitl_bus.web.markdown import render_markdown

router = APIRouter(prefix="/api", dependencies=[Read])
client = HitlClient()


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


class StartBody(BaseModel):
    parameters: dict[str, Any] = Field(default_factory=dict)


def _dump(model: BaseModel | None) -> Any:
    return None if model is None else model.model_dump(mode="json", by_alias=True)


@router.get("/runs")
async def list_runs(
    state: str | None = None,
    deployment: str | None = None,
    flow_name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The newest runs, filtered by state type, deployment and flow name."""
    runs = await client.read_flow_runs(
        state=state.upper() if state else None,
        flow_name=flow_name,
        limit=limit,
        deployment=deployment,
    )
    return [_dump(r) for r in runs]


@router.get("/runs/{run_id}")
async def read_run(run_id: uuid.UUID, logs: bool = True) -> dict[str, Any]:
    """A run with its history, current pause (schema, description, defaults), inputs and logs.

    ``logs=false`` leaves the logs out (a page following ``/live`` has them already).
    """
    run = await client.read_flow_run(run_id)  # 404 before the other reads
    pause, history, inputs, receivers, records = await asyncio.gather(
        client.read_pause(run_id),
        client.read_state_history(run_id),
        client.read_inputs(run_id),
        client.read_receivers(run_id),
        client.read_logs(run_id) if logs else _nothing(),
    )
    pause_json = _dump(pause)
    if pause is not None:
        pause_json["description_html"] = render_markdown(pause.description or "")
    detail = {
        "run": _dump(run),
        "history": [_dump(s) for s in history],
        "pause": pause_json,
        "inputs": inputs,
        "receivers": receivers,
    }
    if logs:
        detail["logs"] = records
    return detail


async def _nothing() -> None:
    return None


@router.get("/deployments")
async def list_deployments() -> list[dict[str, Any]]:
    """Registered deployments: name, flow, default parameters, required parameters."""
    return [r.model_dump(mode="json") for r in await read_deployments()]


@router.post("/runs/{run_id}/resume", dependencies=[Write])
async def resume_run(run_id: uuid.UUID, body: ResumeBody) -> dict[str, Any]:
    """Resume a paused run with input checked against its saved schema."""
    await aresume_flow_run(run_id, body.input)
    return {"run": _dump(await client.read_flow_run(run_id))}


@router.post("/runs/{run_id}/input", dependencies=[Write])
async def send_run_input(run_id: uuid.UUID, body: SendBody) -> dict[str, Any]:
    """Send an input to a run (a plain ``value``, or a JSON object as ``data``).

    When the run receives on that key prefix, the input is checked against the
    receiver's schema first, so a mistyped input is refused here, not in the run.
    It is sent from the web server's inbox: the run's ``respond()`` comes back to
    ``GET /api/runs/{run_id}/replies``.
    """
    if body.data is not None:
        if not body.key_prefix:
            raise HTTPException(422, "sending 'data' needs the receiver's 'key_prefix'")
        payload: Any = body.data
        value: Any = RawInput(**body.data)
    else:
        payload = {"value": body.value}
        value = body.value
    if body.key_prefix:
        check_key_prefix(body.key_prefix)
        schema = (await client.read_receivers(run_id)).get(body.key_prefix)
        if schema is not None:
            errors = schema_errors(schema, payload)
            if errors:
                raise ResumeRejected("the input does not match the receiver's type", errors)
    # Sent from this process's inbox (the default outside a run), so replies reach it.
    key = await deliver(Mailbox.for_run(run_id), value, key_prefix=body.key_prefix)
    return {"key": key}


@router.post("/runs/{run_id}/cancel", dependencies=[Write])
async def cancel_run(run_id: uuid.UUID) -> dict[str, Any]:
    """Cancel a run; it stops at its next checkpoint."""
    return {"state": _dump(await client.cancel_flow_run(run_id))}


@router.post("/deployments/{flow_name}/{deployment_name}/runs", dependencies=[Write])
async def start_run(flow_name: str, deployment_name: str, body: StartBody) -> dict[str, Any]:
    """Queue a run of a deployment for its workers."""
    run = await arun_deployment(f"{flow_name}/{deployment_name}", body.parameters, timeout=0)
    return {"run": _dump(run)}


@router.get("/events")
async def events(request: Request, run_id: uuid.UUID | None = None) -> EventSourceResponse:
    """Live events (Server-Sent Events): every run's, or one run's with ``run_id``."""
    stream = keys.run_events(str(run_id)) if run_id else keys.EVENTS
    return EventSourceResponse(live.follow(request, stream, live.event_message))


@router.get("/runs/{run_id}/logs")
async def run_logs(request: Request, run_id: uuid.UUID) -> EventSourceResponse:
    """A run's log records (SSE): the ones written so far, then new ones as they come."""
    await client.read_flow_run(run_id)  # 404 for an unknown run
    stream = keys.run_logs(str(run_id))
    return EventSourceResponse(live.follow(request, stream, live.log_message, from_start=True))


@router.get("/runs/{run_id}/replies")
async def run_replies(request: Request, run_id: uuid.UUID) -> EventSourceResponse:
    """What the run sends back (``respond()``) to inputs sent from this server (SSE)."""
    await client.read_flow_run(run_id)
    return EventSourceResponse(live.follow_replies(request, str(run_id)))


@router.get("/runs/{run_id}/live")
async def run_live(request: Request, run_id: uuid.UUID) -> EventSourceResponse:
    """One run's events, logs (from the start) and replies on one SSE stream.

    A page needs all three; one connection each would soon use up the six a browser
    keeps per server.
    """
    await client.read_flow_run(run_id)
    run = str(run_id)
    return EventSourceResponse(
        live.merge(
            live.follow(request, keys.run_events(run), live.event_message),
            live.follow(request, keys.run_logs(run), live.log_message, from_start=True),
            live.follow_replies(request, run),
        )
    )


_STATUS: list[tuple[type[Exception], int]] = [
    (FlowRunNotFound, 404),
    (DeploymentNotFound, 404),
    (NotPausedError, 409),
    (FlowPauseTimeout, 409),
    (PayloadTooLarge, 413),
    (ResumeRejected, 422),
    (ParameterMismatch, 422),
    (ValidationError, 422),
    (ValueError, 422),  # e.g. a malformed key prefix
    (BusConnectionError, 503),  # Redis is down: try again later; nothing was changed
]


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    status = next(code for cls, code in _STATUS if isinstance(exc, cls))
    body: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, ResumeRejected | ParameterMismatch):
        body["errors"] = exc.errors
    elif isinstance(exc, ValidationError):
        body["errors"] = exc.errors(include_url=False)
    return JSONResponse(body, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Map hitl_bus errors onto HTTP statuses (one place, so every route agrees)."""
    for cls, _ in _STATUS:
        app.add_exception_handler(cls, _handle)
