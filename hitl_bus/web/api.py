"""The JSON HTTP API: runs, resume, send input, cancel, start deployments, live events.

Errors are JSON ``{"detail": ..., "errors": [...]}`` with the status that says
why: 404 unknown run or deployment, 409 not paused / already resumed / pause
expired, 413 payload over the limit, 422 input failing the schema (fields named).
Writes need ``Authorization: Bearer <HITL_BUS_API_TOKEN>``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sse_starlette.sse import EventSourceResponse

from hitl_bus import keys
from hitl_bus.bus import codec, get_bus
from hitl_bus.client import HitlClient
from hitl_bus.deployments import arun_deployment
from hitl_bus.engine.pausing import aresume_flow_run
from hitl_bus.errors import (
    DeploymentNotFound,
    FlowPauseTimeout,
    FlowRunNotFound,
    NotPausedError,
    ParameterMismatch,
    PayloadTooLarge,
    ResumeRejected,
)
from hitl_bus.inputs.keyset import Mailbox
from hitl_bus.inputs.run_input import RawInput
from hitl_bus.inputs.sending import deliver
from hitl_bus.settings import get_settings

router = APIRouter(prefix="/api")
client = HitlClient()


def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
    """Writes need the configured token; with none configured, writes are off."""
    expected = get_settings().api_token
    if not expected:
        raise HTTPException(403, "writes are disabled: set HITL_BUS_API_TOKEN")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "a valid token is required (Authorization: Bearer <token>)")


Write = Depends(require_token)


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
async def read_run(run_id: uuid.UUID) -> dict[str, Any]:
    """A run with its state history, current pause (schema, description, defaults) and logs."""
    run = await client.read_flow_run(run_id)
    return {
        "run": _dump(run),
        "history": [_dump(s) for s in await client.read_state_history(run_id)],
        "pause": _dump(await client.read_pause(run_id)),
        "logs": await client.read_logs(run_id),
    }


@router.post("/runs/{run_id}/resume", dependencies=[Write])
async def resume_run(run_id: uuid.UUID, body: ResumeBody) -> dict[str, Any]:
    """Resume a paused run with input checked against its saved schema."""
    await aresume_flow_run(run_id, body.input)
    return {"run": _dump(await client.read_flow_run(run_id))}


@router.post("/runs/{run_id}/input", dependencies=[Write])
async def send_run_input(run_id: uuid.UUID, body: SendBody) -> dict[str, Any]:
    """Send an input to a run (a plain ``value``, or a JSON object as ``data``)."""
    if body.data is not None:
        if not body.key_prefix:
            raise HTTPException(422, "sending 'data' needs the receiver's 'key_prefix'")
        value: Any = RawInput(**body.data)
    else:
        value = body.value
    key = await deliver(
        Mailbox.for_run(run_id), value, sender="hitl.web", key_prefix=body.key_prefix
    )
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

    async def follow() -> AsyncIterator[dict[str, str]]:
        bus = get_bus()
        last = await bus.client.xrevrange(stream, count=1)
        position = last[0][0].decode() if last else "0-0"
        while not await request.is_disconnected():
            try:
                entries = await bus.dispatcher.wait(stream, position, 15)
            except TimeoutError:
                yield {"event": "ping", "data": "{}"}
                continue
            for entry_id, fields in entries:
                position = entry_id.decode()
                yield {
                    "id": position,
                    "event": codec.text(fields.get(b"type")) or "event",
                    "data": codec.dumps(
                        {
                            "run_id": codec.text(fields.get(b"run_id")),
                            "ts": int(fields.get(b"ts", b"0")),
                            "data": codec.loads(fields.get(b"data", b"{}")),
                        }
                    ).decode(),
                }

    return EventSourceResponse(follow())


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
]


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    status = next(code for cls, code in _STATUS if isinstance(exc, cls))
    body: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, ResumeRejected):
        body["errors"] = exc.errors
    elif isinstance(exc, ValidationError):
        body["errors"] = exc.errors(include_url=False)
    return JSONResponse(body, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Map hitl_bus errors onto HTTP statuses (one place, so every route agrees)."""
    for cls, _ in _STATUS:
        app.add_exception_handler(cls, _handle)
