"""The current flow run and who is acting, as context variables (no I/O, any layer may import).

The engine sets it; the input layer reads it to know who is sending and whose
inputs to receive; the sync bridge reads it to know which event loop a sync
flow body must call into.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import uuid
from collections.abc import Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from hitl_bus.errors import MissingContextError


@dataclass
class FlowRunInfo:
    """What a running flow knows about its own run (Prefect's ``context.flow_run``)."""

    #: The run's id in its canonical text form: what every key and call here takes.
    run_id: str
    name: str
    flow_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    #: The deployment the run was started from (``None`` for a flow called directly).
    deployment_id: uuid.UUID | None = None
    #: The run of the flow that called this one, when it runs as a subflow.
    parent_flow_run_id: str | None = None

    @property
    def id(self) -> uuid.UUID:
        """The run's id as Prefect's ``flow_run.id`` is: a ``UUID``."""
        return uuid.UUID(self.run_id)


@dataclass
class QueueEntry:
    """The deployment-queue entry a worker took a run from: on standalone Redis the run's
    final state acknowledges it in the same step (``acknowledged``), else the worker does.

    With ``consumer`` set (the worker's name, while it keeps taking runs), the same step
    also takes the queue's next entry for that consumer (``next``: its id and fields), which
    the worker starts in the slot the run leaves, begun already (``next_start``) on
    standalone Redis.
    """

    queue: str
    group: str
    entry_id: bytes
    acknowledged: bool = False
    consumer: str = ""
    next: tuple[bytes, dict[bytes, bytes]] | None = None
    #: The next entry's run, begun for the worker in that same step where Redis allows:
    #: the run store's ``Start`` (``None``: the worker begins it itself).
    next_start: object | None = None


@dataclass
class RunState:
    """What one execution of a run keeps while it runs; the engine starts it with the run.

    Every layer that keeps per-execution facts keeps them here, typed, so a reader
    finds them in one place.
    """

    #: Number of this execution (from the run store's ``begin``): every state write it
    #: makes carries it, so a superseded execution cannot overwrite the run.
    attempt: int = 0
    #: Stored task results by ``<task name>:<call index>``, loaded once when it starts.
    task_results: dict[str, Any] = field(default_factory=dict)
    #: Calls made so far per task name: the call index of the next call.
    task_calls: dict[str, int] = field(default_factory=dict)
    #: Pauses reached so far: the next pause's default key is ``pause-<pauses + 1>``.
    pauses: int = 0
    #: Why the flow's own validator refused the last answer; shown on the next pause.
    rejection: str | None = None
    #: Key prefixes this execution announced it receives on (once each).
    receivers_announced: set[str] = field(default_factory=set)
    #: A sync body's blocking calls in progress, cancelled when the run is.
    in_flight: set[concurrent.futures.Future[Any]] = field(default_factory=set)
    #: Writes running in the background; the engine waits for them before the run ends.
    pending_writes: set[asyncio.Task[None]] = field(default_factory=set)
    #: Where a worker took the run from, acknowledged with its final state.
    queue_entry: QueueEntry | None = None
    #: Input keys handed out and not yet recorded as ``input.taken``, by the run whose
    #: inputs they are: recorded together by one background write.
    taken: dict[str, list[str]] = field(default_factory=dict)
    #: Held while ``input.taken`` events are written: one write at a time, so they land in
    #: the order the inputs were taken, and an event that must follow them waits.
    writing_taken: asyncio.Lock = field(default_factory=asyncio.Lock)

    def write_later(self, write: Coroutine[Any, Any, None]) -> None:
        """Run a Redis write in the background: the run goes on, and ends after it."""
        task = asyncio.get_running_loop().create_task(write)
        self.pending_writes.add(task)
        task.add_done_callback(self.pending_writes.discard)

    async def flush_writes(self) -> None:
        """Wait for the background writes (the engine calls this before a run ends)."""
        if self.pending_writes:
            await asyncio.gather(*list(self.pending_writes), return_exceptions=True)


@dataclass
class FlowRunContext:
    """The run a piece of code executes in, and the loop that owns its connections."""

    flow_run: FlowRunInfo
    loop: asyncio.AbstractEventLoop
    #: True while a sync flow's body runs in its own thread, off ``loop``.
    sync_body: bool = False
    #: Set when the run was cancelled: the run's code stops at its next checkpoint.
    cancel_requested: bool = False
    #: What this execution keeps while it runs.
    state: RunState = field(default_factory=RunState)

    @classmethod
    def get(cls) -> FlowRunContext | None:
        """The current run's context, or ``None`` outside a flow run (Prefect's spelling)."""
        return _current_run.get()


_current_run: ContextVar[FlowRunContext | None] = ContextVar("hitl_bus_flow_run", default=None)


class CancelRequested(BaseException):
    """Stops a cancelled run's code at a checkpoint (task, pause, receive, log)."""


def raise_if_cancelled() -> None:
    """The checkpoint: raise :class:`CancelRequested` if the current run was cancelled."""
    ctx = _current_run.get()
    if ctx is not None and ctx.cancel_requested:
        raise CancelRequested(ctx.flow_run.run_id)


def current_run() -> FlowRunContext | None:
    """The flow run this code runs in, or ``None`` outside any run."""
    return _current_run.get()


def get_run_context() -> FlowRunContext:
    """The current run's context (``.flow_run.id``, ``.name``, ``.parameters``...).

    :raises MissingContextError: outside a flow run (a ``RuntimeError``, as in Prefect).
    """
    ctx = _current_run.get()
    if ctx is None:
        raise MissingContextError("there is no active flow run")
    return ctx


def current_run_id() -> str | None:
    ctx = _current_run.get()
    return ctx.flow_run.run_id if ctx else None


def set_current_run(ctx: FlowRunContext | None) -> Any:
    """Enter a run; returns the token for :func:`reset_current_run`."""
    return _current_run.set(ctx)


def reset_current_run(token: Any) -> None:
    _current_run.reset(token)


_acting_as: ContextVar[str | None] = ContextVar("hitl_bus_acting_as", default=None)


def acting_as() -> str | None:
    """Who the writes made here are made by (``hitl.user.<name>``), when someone is.

    The web server sets it per request and the CLI per command, from the token that
    came with them; resumes, sends, cancels and starts record it as their actor (a
    flow run's own writes record the run). None: a program calling the library
    directly, trusted as anyone with access to Redis is.
    """
    return _acting_as.get()


@contextlib.contextmanager
def acting(actor: str | None) -> Iterator[None]:
    """Make the writes inside the block on behalf of ``actor``."""
    token = _acting_as.set(actor)
    try:
        yield
    finally:
        _acting_as.reset(token)
