"""The run store: a flow run's Redis record, and every change to it as one typed call.

A run's hash (``hitl:{<run>}:run``) holds who it is and where it stands; its
state changes are check-and-set Lua scripts on the run's slot, each wrapped
here in a typed function, so no other module writes the hash or knows its
field names.

Three rules hold in every script:

- **Fencing.** Each execution of a run (first start, re-run after its worker
  died, continuation of a suspended run) gets the next ``attempt`` number from
  :func:`begin`. Every state write an execution makes carries it, and a script
  refuses a write from a superseded execution (:data:`Outcome.SUPERSEDED`), so an
  execution that lost its run can never overwrite what the current one did.
- **Retries are recognised.** A state carries an id; a script that finds the
  run already in the state it is asked to write answers as the first call did.
  A resume carries a request id, kept on the run. A command retried after a
  dropped reply therefore changes nothing twice.
- **Retention.** A script that writes a final state sets every key of the run
  to expire after ``HITL_BUS_RUN_RETENTION`` (0 keeps them); the global indexes
  forget the run in :func:`forget_expired`.

The by-state indexes, the pause-deadline index and the global event stream
live on other slots. On standalone Redis each script keeps them too, in the same
step; in Cluster they follow each change (``indexes.py``). Either way they are
hints that readers re-check against the run's own hash.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hitl_bus import keys
from hitl_bus.bus import codec, get_bus
from hitl_bus.bus.events import append_event
from hitl_bus.context import QueueEntry
from hitl_bus.engine.indexes import ms
from hitl_bus.engine.records import (
    FlowRun,
    RunRecord,
    decode_record,
    decode_run,
    state_event,
)
from hitl_bus.engine.run_scripts import SCRIPTS as SCRIPTS
from hitl_bus.engine.run_scripts import Change as Change
from hitl_bus.engine.run_scripts import Outcome as Outcome
from hitl_bus.engine.run_scripts import follow, raise_for, run_script
from hitl_bus.engine.states import State, StateType, state_json
from hitl_bus.errors import FlowRunNotFound
from hitl_bus.ids import uuid4_text
from hitl_bus.inputs.keyset import Keyset

log = logging.getLogger("hitl_bus.store")


async def read_raw(run_id: str) -> dict[bytes, bytes]:
    """The run's hash as stored (empty when there is no such run)."""
    raw: dict[bytes, bytes] = await get_bus().client.hgetall(keys.run(run_id))
    return raw


async def read_raw_many(run_ids: list[str]) -> list[dict[bytes, bytes]]:
    """The hashes of several runs in one round trip (empty for a run that is gone)."""
    async with get_bus().client.pipeline(transaction=False) as pipe:
        for run_id in run_ids:
            pipe.hgetall(keys.run(run_id))
        raws: list[dict[bytes, bytes]] = await pipe.execute()
    return raws


async def pause_preflight(run_id: str, response_fields: list[str]) -> tuple[bytes | None, bool]:
    """Before a pause: the answer already stored for it under any of ``response_fields``
    (a replay), and whether another run asked this one to suspend. One round trip: both
    keys share the run's tag."""
    async with get_bus().client.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.run_values(run_id), response_fields)
        pipe.hexists(keys.run(run_id), "suspend_requested")
        answers, requested = await pipe.execute()
    answered = next((a for a in answers if a is not None), None)
    return answered, bool(requested)


async def resumed_or_state(run_id: str) -> tuple[str, State | None]:
    """The key of the pause last resumed, and the run's state (``None``: no such run)."""
    raw_state, resumed = await get_bus().client.hmget(keys.run(run_id), ["state", "resumed_key"])
    state = State.model_validate_json(raw_state) if raw_state is not None else None
    return codec.text(resumed) or "", state


async def read_values(run_id: str, names: list[str]) -> list[bytes | None]:
    """Saved values of a run (a pause's schema, description, defaults...), as stored."""
    raws: list[bytes | None] = await get_bus().client.hmget(keys.run_values(run_id), names)
    return raws


async def read_record(run_id: str) -> RunRecord:
    """The run's record; raises :class:`FlowRunNotFound` when there is none."""
    raw = await read_raw(run_id)
    if not raw:
        raise FlowRunNotFound(run_id)
    return decode_record(raw)


class DeploymentChanged(Exception):
    """The deployment's record is not the one the caller read (``record``: as it is now,
    and its ``digest``; ``None`` when it is gone); nothing was stored."""

    def __init__(self, record: bytes | None, digest: str) -> None:
        super().__init__("the deployment's record changed")
        self.record = record
        self.digest = digest


async def create(
    run: FlowRun,
    written_state: str | None = None,
    *,
    enqueue: bool = False,
    deployment_digest: str | None = None,
) -> None:
    """Store a new run and index it; with ``enqueue`` also queue it for its deployment.

    ``written_state`` is the run's state as JSON when the caller has it already.

    On standalone Redis all of it is one script, so a queued run is never lost and a
    retried call stores it once; there ``deployment_digest`` (the SHA-1 of the record
    the caller checked the parameters against) makes it store nothing unless the
    record is still that one.

    :raises DeploymentChanged: the record changed; check against it and call again.
    """
    bus = get_bus()
    run_id = str(run.id)
    fields: dict[str, Any] = {
        "id": run_id,
        "name": run.name,
        "flow_name": run.flow_name,
        "parameters": codec.dumps(run.parameters),
        "created": run.created.isoformat(),
    }
    if run.deployment:
        fields["deployment"] = run.deployment
    queue = keys.deployment_queue(run.deployment) if run.deployment and enqueue else None
    first_state = written_state or run.state.model_dump_json()
    if bus.one_node:
        flat = [part for pair in fields.items() for part in pair]
        check = deployment_digest if queue is not None and deployment_digest else ""
        args = [first_state, ms(run.created), run.deployment or "", check, *flat]
        extra = [keys.DEPLOYMENTS] if check else []
        change = await run_script("create", run_id, args, queue=queue, extra_keys=extra, bus=bus)
        if change.outcome is Outcome.STALE:
            record, digest = change.reads or (None, b"")
            raise DeploymentChanged(record, codec.text(digest) or "")
        return
    shard, shards = keys.index_shard(run_id, bus.index_shards), bus.index_shards
    async with bus.transaction() as pipe:
        pipe.hset(keys.run(run_id), mapping={**fields, "state": first_state.encode()})
        pipe.zadd(
            keys.runs_by_state(run.state.type.value, shard, shards),
            {run_id: ms(run.state.timestamp)},
        )
        append_event(pipe, bus, run_id, "state.changed", state_event(run.state))
        pipe.zadd(keys.runs(shard, shards), {run_id: ms(run.created)})
        if queue is not None:
            pipe.xadd(queue, {"run_id": run_id})
        await pipe.execute()


async def enqueue(deployment: str, run_id: str) -> None:
    """Put a run on its deployment's queue, where a worker picks it up."""
    await get_bus().client.xadd(keys.deployment_queue(deployment), {"run_id": run_id})


async def set_state(
    run_id: str,
    state: State,
    *,
    expect: tuple[StateType, ...] = (),
    attempt: int | None = None,
    entry: QueueEntry | None = None,
) -> StateType | None:
    """Move a run to ``state`` if it is in one of ``expect`` (any when empty).

    ``attempt`` fences the write to one execution. With ``entry`` (a worker's queue
    entry) the write acknowledges it too on standalone Redis, and says so on it; a final
    state also takes the queue's next entry for ``entry.consumer`` when it is set.
    Returns the previous state type.

    :raises FlowRunNotFound: no such run.
    :raises StateConflict: the run is in another state, or another execution owns it.
    """
    allowed = "".join(f",{t.value}," for t in expect)
    bus = get_bus()
    ack = entry is not None and bus.one_node
    taker = entry.consumer if entry and ack and state.is_final() else ""
    # The same step also begins the next entry's run where the script can keep that run's
    # indexes: standalone Redis with one index bucket, shared by every run.
    running = state_json(StateType.RUNNING) if taker and bus.index_shards == 1 else ""
    change = await run_script(
        "set_state",
        run_id,
        [
            state.model_dump_json(), str(state.id), allowed, "" if attempt is None else attempt,
            entry.group if entry and ack else "", entry.entry_id if entry and ack else "",
            taker, running,
        ],
        queue=entry.queue if entry and ack else None,
        bus=bus,
    )  # fmt: skip
    raise_for(run_id, change, state.type)
    if entry is not None and ack:
        entry.acknowledged = True
        if change.reads:  # the queue's next entry, taken for the worker in the same step
            next_id, flat, *begun = change.reads
            entry.next = (next_id, codec.pairs(flat))
            if begun:  # and its run begun: the worker starts it from there
                attempt_text, reads = begun[0]
                entry.next_start = _start(int(attempt_text), reads)
    await follow(change, run_id, state)
    return change.previous


async def begin(run_id: str, running: State | None = None, worker: str = "") -> int:
    """Start an execution: a Scheduled or Pending run becomes Running (``running``, a
    fresh Running state when not given); returns its attempt.

    :raises StateConflict: the run is not waiting to start (another execution has it).
    """
    return int((await _begin(run_id, running, worker, reading=False)).detail or 0)


async def _begin(run_id: str, running: State | None, worker: str, *, reading: bool) -> Change:
    state_id = uuid4_text() if running is None else str(running.id)
    written = (
        state_json(StateType.RUNNING, state_id=state_id)
        if running is None
        else running.model_dump_json()
    )
    change = await run_script("begin", run_id, [written, state_id, worker, "1" if reading else "0"])
    raise_for(run_id, change, StateType.RUNNING)
    if not change.indexed:
        await follow(change, run_id, running or State.model_validate_json(written))
    return change


@dataclass(frozen=True)
class Start:
    """An execution begun, with what it starts from, all read in the step that began it."""

    attempt: int
    run: FlowRun
    #: The control stream's newest id when it began: a cancel after it is for this execution.
    control_position: str
    #: The run's stored task results, as stored (``hitl:{<run>}:tasks``).
    task_results: dict[bytes, bytes]


async def begin_reading(run_id: str, running: State | None = None, worker: str = "") -> Start:
    """:func:`begin`, answering in the same round trip the run as it now stands, its
    control stream's position and its task results: how a worker starts a queued run.

    :raises FlowRunNotFound: no such run.
    :raises StateConflict: the run is not waiting to start (another execution has it).
    """
    change = await _begin(run_id, running, worker, reading=True)
    return _start(int(change.detail or 0), change.reads)


def _start(attempt: int, reads: Any) -> Start:
    """An execution's :class:`Start` from its attempt and what the script read with it."""
    raw_run, position, raw_tasks = reads
    return Start(
        attempt=attempt,
        run=decode_run(codec.pairs(raw_run)),
        control_position=codec.text(position) or "0-0",
        task_results=codec.pairs(raw_tasks),
    )


@dataclass(frozen=True)
class PauseRequest:
    """What a pause stores: its state, key, deadline, keyset and the form's values."""

    state: State
    pause_key: str
    deadline_ms: int
    keyset: Keyset
    suspend: bool
    schema: bytes
    #: field/JSON pairs for the run's values hash (schema, defaults, description).
    values: list[Any]
    #: Who may answer it (``pause_assignees``); ``None``: any responder.
    assignees: list[str] | None = None


async def pause(run_id: str, attempt: int, request: PauseRequest) -> None:
    """Move the running execution ``attempt`` to Paused, saving the form first.

    :raises StateConflict: the run is not Running, or another execution owns it.
    """
    change = await run_script(
        "pause",
        run_id,
        [
            request.state.model_dump_json(), str(request.state.id), attempt, request.pause_key,
            request.deadline_ms, codec.dumps(request.keyset), "1" if request.suspend else "0",
            request.schema,
            codec.dumps(request.assignees) if request.assignees else "", *request.values,
        ],
    )  # fmt: skip
    raise_for(run_id, change, StateType.PAUSED)
    await follow(change, run_id, request.state, pause_deadline_ms=request.deadline_ms)


@dataclass(frozen=True)
class ResumeRequest:
    """A resume: which pause, the response to store, and the states it may lead to.

    The response is stored under the pause's keyset's response field, read in the script.
    """

    #: The pause to resume; ``""``: whichever pause the run is in.
    pause_key: str
    #: The input as JSON (``{}`` when none was given).
    response: str
    #: Whether the caller gave an input (a pause without a form refuses one).
    gave_input: bool
    #: Digests of the pause schemas the input passed (the pause's own must be among them).
    checked: Sequence[bytes]
    #: The states a resume may write, as JSON (:func:`states.state_json`): Running,
    #: Scheduled "Resuming" (a suspended run) and Failed (the deadline passed). The last two
    #: are drawn when the script asks for them (``""`` until then: ``NEEDS_QUEUE``,
    #: ``NEEDS_FAILED``), so the usual resume draws one state.
    running: str
    request_id: str
    #: The run's deployment, whose queue takes a resumed suspended run; ``None`` when the
    #: caller does not know it yet (a suspended run then answers ``NEEDS_QUEUE``).
    deployment: str | None
    #: The caller knows the deployment (``None`` there: the run has none).
    deployment_known: bool = True
    #: Who resumes (stamped as the response's sender); ``None``: a program.
    actor: str | None = None
    resuming: str = ""
    failed: str = ""


async def resume(run_id: str, request: ResumeRequest) -> Change:
    """Resume a paused run: store the response, move it on, wake its process.

    A suspended run of a deployment is queued for a worker in the same step on
    standalone Redis (right after it in Cluster).
    """
    queue = keys.deployment_queue(request.deployment) if request.deployment else None
    change = await run_script(
        "resume",
        run_id,
        [
            request.pause_key, request.response, "1" if request.gave_input else "0",
            request.running, request.resuming, request.failed, request.request_id,
            request.actor or "",
            "1" if request.deployment_known else "0", *request.checked,
        ],
        queue=queue,
    )  # fmt: skip
    written = {
        Outcome.EXPIRED: request.failed,
        Outcome.OK: request.running,
        Outcome.SUSPENDED_RESUMED: request.resuming,
    }.get(change.outcome)
    if written is not None and not change.indexed:
        await follow(change, run_id, State.model_validate_json(written), previous=StateType.PAUSED)
    return change


async def expire(run_id: str, failed: State, pause_key: str = "") -> bool:
    """Fail the run if its pause (``pause_key``, or any) is past its deadline; True if it did."""
    change = await run_script("expire", run_id, [pause_key, failed.model_dump_json()])
    if change.outcome is Outcome.OK:
        await follow(change, run_id, failed, previous=StateType.PAUSED)
        return True
    return False


async def cancel(run_id: str, cancelling: State, cancelled: State) -> Change:
    """Cancel a run: Cancelling with a process, Cancelled at once without one."""
    change = await run_script(
        "cancel", run_id, [cancelling.model_dump_json(), cancelled.model_dump_json()]
    )
    if change.outcome is Outcome.OK and change.previous is not StateType.CANCELLING:
        await follow(change, run_id, cancelling)
    elif change.outcome is Outcome.SUSPENDED_RESUMED:
        await follow(change, run_id, cancelled)
    return change


@dataclass(frozen=True)
class Release:
    """Why an execution ends without its process finishing it, and what to do with the run."""

    #: The worker whose execution is released (fence: another worker's run is left alone).
    worker: str
    reason: str
    deployment: str
    #: Count a crash against ``retries`` (a worker died) or not (a worker drained).
    count_crash: bool
    retries: int = 0
    attempt: int | None = None


async def release(run_id: str, why: Release) -> Outcome:
    """Hand a run back after its execution was lost (worker death) or given up (drain).

    One script decides from the run's own state, so a resume landing at any moment
    is kept: a paused run becomes Suspended (answerable; the resume queues it), a
    run that was resumed or is running is queued again (a run that paused during the
    lost execution is never charged a retry: its answers are stored and replay), a
    cancelling run is Cancelled, and a run out of retries is Crashed.
    """
    suspended = State(type=StateType.PAUSED, name="Suspended", message=why.reason)
    states = {
        Outcome.REQUEUED: State(type=StateType.SCHEDULED, message=f"re-run: {why.reason}"),
        Outcome.CRASHED: State(type=StateType.CRASHED, message=why.reason),
        Outcome.CANCELLED: State(type=StateType.CANCELLED, message=why.reason),
    }
    resuming = State(type=StateType.SCHEDULED, name="Resuming", message=why.reason)
    change = await run_script(
        "release",
        run_id,
        [
            why.worker, "" if why.attempt is None else why.attempt,
            "1" if why.count_crash else "0", why.retries, suspended.model_dump_json(),
            states[Outcome.REQUEUED].model_dump_json(), resuming.model_dump_json(),
            states[Outcome.CRASHED].model_dump_json(), states[Outcome.CANCELLED].model_dump_json(),
        ],
        queue=keys.deployment_queue(why.deployment),
    )  # fmt: skip
    if change.outcome is Outcome.SUSPENDED:
        await follow(change, run_id, suspended)
    elif change.outcome in states and change.previous is not StateType.SCHEDULED:
        # A re-run reads as Resuming or Scheduled; either way it is in the SCHEDULED index.
        await follow(change, run_id, states[change.outcome])
    return change.outcome


async def request_suspend(run_id: str) -> None:
    """Ask another run to suspend at its next task or pause boundary."""
    bus = get_bus()
    if not await bus.client.exists(keys.run(run_id)):
        raise FlowRunNotFound(run_id)
    await bus.client.hset(keys.run(run_id), "suspend_requested", "1")


async def take_suspend_request(run_id: str) -> bool:
    """True (once) if another run asked this one to suspend."""
    return bool(await get_bus().client.hdel(keys.run(run_id), "suspend_requested"))


async def redis_time_ms() -> int:
    """Redis's clock in ms: deadlines are set and checked against it, not the local one."""
    seconds, micros = await get_bus().client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def now() -> datetime:
    return datetime.now(UTC)
