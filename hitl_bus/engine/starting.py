"""Beginning an execution of a run, and what it starts from.

An execution begins when the run store's ``begin`` moves the run to Running and gives it
its attempt number. What the execution needs besides: the run, its parameters, the
control stream's position (a cancel after it is for this execution) and the task results
stored by earlier executions (replayed). A run started in process reads these around its
``begin``; a worker's queued run gets them from ``begin`` itself, in one round trip. A run
that cannot begin says why: cancelled meanwhile (recorded now), or still suspended.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_jsonable_python

from hitl_bus import keys
from hitl_bus.bus import get_bus
from hitl_bus.context import QueueEntry
from hitl_bus.engine import store
from hitl_bus.engine.runs import FlowRun, create_flow_run, read_flow_run
from hitl_bus.engine.states import Cancelled, State, StateType, with_outcome
from hitl_bus.engine.tasks import decode_results
from hitl_bus.errors import FlowRunCancelled, StateConflict


@dataclass(frozen=True)
class Begun:
    """An execution begun: the run, its parameters, and where it starts from."""

    run: FlowRun
    parameters: dict[str, Any]
    attempt: int
    #: The control stream's newest id when it began: cancels after it are for it.
    position: str
    task_results: dict[str, Any]
    #: Check the parameters against the flow's signature (not done yet by the caller).
    validate: bool
    entry: QueueEntry | None = None


async def begin(
    flow_name: str,
    parameters: dict[str, Any],
    run: FlowRun | None,
    *,
    fresh: bool,
    worker: str,
) -> Begun | tuple[str, State]:
    """Begin an execution of ``run`` (a new run of ``flow_name`` when None); or, when the
    run cannot be begun, its id and the state that says why."""
    if run is None:
        run = await create_flow_run(flow_name, to_jsonable_python(parameters, fallback=repr))
        fresh = True
    run_id = str(run.id)
    try:
        # An existing run may be re-executed after a suspension: replay its tasks.
        position, results = await starting_point(run_id, with_results=not fresh)
        attempt = await store.begin(run_id, worker=worker)
    except StateConflict:
        return await _not_begun(run_id)
    return Begun(run, parameters, attempt, position, results, validate=not fresh)


async def begin_queued(
    run_id: str, worker: str, entry: QueueEntry | None, start: store.Start | None = None
) -> Begun | tuple[str, State]:
    """Begin a queued run and read it, its control stream's position and its task results,
    all in one step (a worker's start); ``start`` when that step was taken already (the
    one that ended the slot's previous run)."""
    if start is None:
        try:
            start = await store.begin_reading(run_id, worker=worker)
        except StateConflict:
            return await _not_begun(run_id)
    results = decode_results(start.task_results)
    parameters = dict(start.run.parameters)
    return Begun(start.run, parameters, start.attempt, start.control_position, results, True, entry)


async def _not_begun(run_id: str) -> tuple[str, State]:
    """Why a run could not begin: cancelled meanwhile (recorded now), or still suspended;
    anything else is another execution's, and raises :class:`StateConflict` again."""
    state = (await read_flow_run(run_id)).state
    if state.is_cancelling():
        cancelled = Cancelled(message="cancelled before it started")
        with contextlib.suppress(StateConflict):  # another process recorded it first
            await store.set_state(run_id, cancelled, expect=(StateType.CANCELLING,))
        return run_id, with_outcome(cancelled, error=FlowRunCancelled(run_id))
    if state.is_suspended():  # still answerable: resuming it runs it again
        return run_id, state
    raise StateConflict(run_id, state.type.value, StateType.RUNNING.value)


async def starting_point(run_id: str, *, with_results: bool) -> tuple[str, dict[str, Any]]:
    """The control stream's newest id (cancels after it count) and the stored task results.

    One round trip: both keys share the run's hash tag.
    """
    async with get_bus().client.pipeline(transaction=False) as pipe:
        pipe.xrevrange(keys.run_control(run_id), count=1)
        if with_results:
            pipe.hgetall(keys.run_tasks(run_id))
        replies = await pipe.execute()
    position = replies[0][0][0].decode() if replies[0] else "0-0"
    results = decode_results(replies[1]) if with_results else {}
    return position, results
