"""Flow runs: creating them and reading them back, with the pause deadline enforced on read.

The run's record and every change to it belong to :mod:`hitl_bus.engine.store`;
this module is the read side and the entry points the rest of the engine uses.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

from hitl_bus import keys
from hitl_bus._sync import dual
from hitl_bus.bus import get_bus
from hitl_bus.engine import records, store
from hitl_bus.engine.naming import new_run_name
from hitl_bus.engine.records import FlowRun
from hitl_bus.engine.states import State, StateType, state_json
from hitl_bus.errors import FlowRunNotFound, FlowRunWaitTimeout
from hitl_bus.ids import normalize_run_id
from hitl_bus.inputs.keyset import current_actor

log = logging.getLogger("hitl_bus.runs")

__all__ = [
    "FlowRun",
    "await_for_flow_run",
    "create_flow_run",
    "enqueue_run",
    "expire_pause",
    "read_flow_run",
    "read_flow_runs",
    "set_state",
    "sweep_expired",
    "wait_for_flow_run",
    "wait_for_state",
]


async def create_flow_run(
    flow_name: str,
    parameters: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    state: State | StateType | None = None,
    deployment: str | None = None,
    enqueue: bool = False,
    actor: str | None = None,
    deployment_digest: str | None = None,
) -> FlowRun:
    """Create a run (Pending unless ``state`` says otherwise: a state, or the type of a
    fresh one) and index it.

    With ``enqueue`` the run also goes on its deployment's queue, in the same
    step on standalone Redis, where ``deployment_digest`` also checks that the
    deployment's record is still the one the parameters were checked against
    (``store.DeploymentChanged`` if not). ``actor`` is who starts it (default: who is
    acting, else the current flow run, so a subflow names its parent), recorded on
    the first state unless that state names one.
    """
    if state is None or isinstance(state, StateType):  # fresh: written without a model
        written = state_json(state or StateType.PENDING, actor=current_actor(actor))
        first = State.model_validate_json(written)
    else:
        first = state
        if first.state_details.actor is None:
            details = first.state_details.model_copy(update={"actor": current_actor(actor)})
            first = first.model_copy(update={"state_details": details})
        written = first.model_dump_json()
    run = FlowRun(
        id=uuid.uuid4(),
        name=name or new_run_name(),
        flow_name=flow_name,
        parameters=parameters or {},
        state=first,
        created=datetime.now(UTC),
        deployment=deployment,
    )
    await store.create(run, written, enqueue=enqueue, deployment_digest=deployment_digest)
    return run


async def set_state(
    flow_run_id: uuid.UUID | str, state: State, *, expect: Collection[StateType] = ()
) -> State:
    """Move a run to ``state``, if it is in one of the ``expect`` types (any when empty).

    :raises FlowRunNotFound: no such run.
    :raises StateConflict: the run is in a state not in ``expect``.
    """
    await store.set_state(normalize_run_id(flow_run_id), state, expect=tuple(expect))
    return state


async def read_flow_run(flow_run_id: uuid.UUID | str) -> FlowRun:
    """The stored run; raises :class:`FlowRunNotFound` when there is none.

    A pause whose deadline has passed reads as Failed even if no process is
    left to notice: the deadline is checked here against Redis's clock.
    """
    return (await read_run_record(flow_run_id)).run


async def read_run_record(flow_run_id: uuid.UUID | str) -> records.RunRecord:
    """The run's whole record, its pause deadline enforced first (see :func:`read_flow_run`)."""
    run_id = normalize_run_id(flow_run_id)
    raw = await store.read_raw(run_id)
    if not raw:
        raise FlowRunNotFound(run_id)
    if int(raw.get(b"pause_deadline", b"0") or 0) and await expire_pause(run_id):
        raw = await store.read_raw(run_id)
    return records.decode_record(raw)


def pause_timeout_state(message: str = "The pause was not resumed in time") -> State:
    return State(type=StateType.FAILED, message=message)


async def expire_pause(run_id: str, pause_key: str = "") -> bool:
    """Fail the run if its pause (``pause_key``, or any) is past its deadline; True if it did."""
    return await store.expire(run_id, pause_timeout_state(), pause_key)


async def sweep_expired() -> list[str]:
    """Mark every run whose pause deadline has passed as Failed; returns their ids.

    Workers and the web server call this on a schedule; reads and resumes also
    check the deadline of the run they touch.
    """
    bus = get_bus()
    now = await store.redis_time_ms()
    expired: list[str] = []
    for shard in range(bus.index_shards):
        deadlines = keys.pause_deadlines(shard, bus.index_shards)
        for raw_id in await bus.client.zrangebyscore(deadlines, "-inf", now):
            run_id = raw_id.decode()
            if await expire_pause(run_id):
                expired.append(run_id)
            else:  # resumed, or not paused any more: drop the stale hint
                raw = await store.read_raw(run_id)
                if not raw or records.decode_record(raw).pause_deadline_ms == 0:
                    await bus.client.zrem(deadlines, run_id)
    return expired


async def read_flow_runs(
    state: StateType | str | None = None,
    flow_name: str | None = None,
    limit: int = 100,
    deployment: str | None = None,
    where: Callable[[FlowRun], bool] | None = None,
) -> list[FlowRun]:
    """The newest runs, optionally only those in one state type, of one flow or deployment,
    and for which ``where(run)`` holds."""
    bus = get_bus()
    shards = bus.index_shards
    indexes = [
        keys.runs_by_state(StateType(state).value, shard, shards)
        if state
        else keys.runs(shard, shards)
        for shard in range(shards)
    ]
    runs: list[FlowRun] = []
    start = 0
    page = max(limit, 50)
    while len(runs) < limit:
        ids = await _newest(bus, indexes, start, page)
        if not ids:
            break
        start += page
        raws = await store.read_raw_many([run_id.decode() for run_id in ids])
        wanted = StateType(state) if state else None
        for raw in raws:
            if raw:
                run = records.decode_run(raw)
                # The by-state index is a hint written after the run's own hash.
                if wanted is not None and run.state.type is not wanted:
                    continue
                if flow_name is not None and run.flow_name != flow_name:
                    continue
                if deployment is not None and run.deployment != deployment:
                    continue
                if where is not None and not where(run):
                    continue
                runs.append(run)
    return runs[:limit]


async def enqueue_run(deployment: str, flow_run_id: str) -> None:
    """Put a run on its deployment's queue, where a worker picks it up."""
    await store.enqueue(deployment, flow_run_id)


async def wait_for_state(
    flow_run_id: uuid.UUID | str, until: Callable[[State], bool], timeout: float | None = None
) -> FlowRun:
    """Wait until ``until(run.state)`` holds, or ``timeout`` seconds pass; returns the run.

    Woken by the run's own event stream (pushed), never by polling.
    """
    run_id = normalize_run_id(flow_run_id)
    bus = get_bus()
    events = keys.run_events(run_id)
    try:
        async with asyncio.timeout(timeout):
            while True:
                last = await bus.client.xrevrange(events, count=1)
                run = await read_flow_run(run_id)
                if until(run.state):
                    return run
                position = last[0][0].decode() if last else "0-0"
                await bus.dispatcher.wait(events, position, None)
    except TimeoutError:
        return await read_flow_run(run_id)


async def await_for_flow_run(
    flow_run_id: uuid.UUID | str,
    timeout: float | None = 10800,
    poll_interval: float | None = None,
    log_states: bool = False,
) -> FlowRun:
    """Wait until a run reaches a final state; returns it (Prefect's ``wait_for_flow_run``).

    Pushed by the run's events, so ``poll_interval`` is accepted and not needed;
    ``log_states`` logs each state the run passes through.

    :raises FlowRunWaitTimeout: the run was not final after ``timeout`` seconds.
    """
    del poll_interval
    seen: list[str] = []

    def final(state: State) -> bool:
        if log_states and (not seen or seen[-1] != state.name):
            seen.append(state.name)
            log.info("flow run %s: %s", flow_run_id, state.name)
        return state.is_final()

    run = await wait_for_state(flow_run_id, final, timeout)
    if not run.state.is_final():
        raise FlowRunWaitTimeout(
            f"flow run {run.id} was not final after {timeout} seconds (it is {run.state.name})"
        )
    return run


wait_for_flow_run = dual(await_for_flow_run)


async def _newest(bus: Any, indexes: list[str], start: int, count: int) -> list[bytes]:
    """Entries ``start`` to ``start + count`` of the buckets merged, newest first.

    Each bucket gives its newest ``start + count``; merged by score, the page is exact.
    """
    if len(indexes) == 1:
        ids: list[bytes] = await bus.client.zrevrange(indexes[0], start, start + count - 1)
        return ids
    async with bus.client.pipeline(transaction=False) as pipe:
        for index in indexes:
            pipe.zrevrange(index, 0, start + count - 1, withscores=True)
        pages = await pipe.execute()
    merged = sorted((entry for page in pages for entry in page), key=lambda e: -e[1])
    return [run_id for run_id, _ in merged[start : start + count]]
