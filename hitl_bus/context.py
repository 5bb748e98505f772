"""The current flow run, as a context variable (no I/O, importable from any layer).

The engine sets it; the input layer reads it to know who is sending and whose
inputs to receive; the sync bridge reads it to know which event loop a sync
flow body must call into.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FlowRunInfo:
    """What a running flow knows about its own run (Prefect's ``context.flow_run``)."""

    id: str
    name: str
    flow_name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class FlowRunContext:
    """The run a piece of code executes in, and the loop that owns its connections."""

    flow_run: FlowRunInfo
    loop: asyncio.AbstractEventLoop
    #: True while a sync flow's body runs in its own thread, off ``loop``.
    sync_body: bool = False
    #: Number of this execution of the run (from the store's ``begin``): every state
    #: write it makes carries it, so a superseded execution cannot overwrite the run.
    attempt: int = 0
    #: Set when the run was cancelled: the run's code stops at its next checkpoint.
    cancel_requested: bool = False
    #: Free slot for the engine's per-run state (logs, counters).
    extra: dict[str, Any] = field(default_factory=dict)


_current_run: ContextVar[FlowRunContext | None] = ContextVar("hitl_bus_flow_run", default=None)


class CancelRequested(BaseException):
    """Stops a cancelled run's code at a checkpoint (task, pause, receive, log)."""


def raise_if_cancelled() -> None:
    """The checkpoint: raise :class:`CancelRequested` if the current run was cancelled."""
    ctx = _current_run.get()
    if ctx is not None and ctx.cancel_requested:
        raise CancelRequested(ctx.flow_run.id)


def current_run() -> FlowRunContext | None:
    """The flow run this code runs in, or ``None`` outside any run."""
    return _current_run.get()


def current_run_id() -> str | None:
    ctx = _current_run.get()
    return ctx.flow_run.id if ctx else None


def set_current_run(ctx: FlowRunContext | None) -> Any:
    """Enter a run; returns the token for :func:`reset_current_run`."""
    return _current_run.set(ctx)


def reset_current_run(token: Any) -> None:
    _current_run.reset(token)
