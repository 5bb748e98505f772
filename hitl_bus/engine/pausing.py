"""``pause_flow_run`` and ``suspend_flow_run``: the flow's side of a pause.

(The resumer's side is ``engine/resuming.py``; ``PauseDetails``, the pause as a form
reads it, is the client's.) A pause saves the input's JSON schema, description and
defaults under the pause's keyset, moves the run to Paused (with the deadline measured
on Redis's clock), and parks on the run's control stream: ``resume_flow_run`` checks the
input against the saved schema, then, in one script, re-checks the state, the
pause key and the deadline, stores the response, moves the run on and appends
to the control stream, which wakes the paused process at once.

A suspension is a pause that ends the execution: the run reads
Paused/"Suspended", and once resumed it is re-executed from the top; task
results are replayed and the same ``suspend_flow_run`` call then returns the
input. Pause keys count the pause calls of an execution (``1``, ``2``...; a ``key=``
names one instead), so replay reaches the same keys in the same order. A pause's
input is kept under a keyset named as Prefect names it, from the state and the key:
``paused-1-schema``, ``suspended-2-response`` (``keyset_from_paused_state``).

Beyond Prefect, ``assignees=[...]`` names who may answer a pause: people by name and
``role:<x>`` entries (a role, or a team); they are kept on the run while it is paused
(``pause_assignees``) and in the Paused state's details, and ``resume_flow_run``
refuses any other person. ``None`` (the default): any responder.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

from pydantic import ValidationError

from hitl_bus import keys
from hitl_bus._sync import dual
from hitl_bus.bus import codec, get_bus
from hitl_bus.bus.events import record_event
from hitl_bus.context import CancelRequested, FlowRunContext, current_run, raise_if_cancelled
from hitl_bus.engine import indexes, store
from hitl_bus.engine.runs import expire_pause
from hitl_bus.engine.states import State, StateDetails, StateType
from hitl_bus.errors import (
    FlowPauseTimeout,
    MissingContextError,
    SubflowSuspendError,
)
from hitl_bus.ids import normalize_run_id
from hitl_bus.inputs import keyset_from_base_key, run_input_subclass_from_type
from hitl_bus.inputs.keyset import Keyset, defaults_key, pause_base_key
from hitl_bus.inputs.run_input import RunInput, RunInputMetadata, is_automatic, schema_json
from hitl_bus.people.roles import check_assignees
from hitl_bus.schema_check import plain_errors, summarize

T = TypeVar("T")


class SuspendExecution(BaseException):
    """Ends the current execution of a run that suspended (caught by the engine)."""

    def __init__(self, flow_run_id: str) -> None:
        self.flow_run_id = flow_run_id
        super().__init__(flow_run_id)


def _require_run() -> FlowRunContext:
    ctx = current_run()
    if ctx is None:
        raise MissingContextError("pausing needs a flow run; none is active")
    return ctx


def _count_pause(ctx: FlowRunContext) -> int:
    """Count one more pause call in this execution (a keyed one counts too, as in Prefect)."""
    ctx.state.pauses += 1
    return ctx.state.pauses


def _keyset(pause_key: str, suspend: bool) -> Keyset:
    return keyset_from_base_key(pause_base_key("Suspended" if suspend else "Paused", pause_key))


def checked_assignees(assignees: Sequence[str] | str | None) -> list[str] | None:
    """A pause's assignees, each checked (a name or ``role:<x>``); empty or ``None``: none.

    :raises ValueError: an entry is not a name or ``role:<x>`` (``TypeError``: not text).
    """
    if assignees is None:
        return None
    listed = check_assignees([assignees] if isinstance(assignees, str) else assignees)
    return list(dict.fromkeys(listed)) or None


def _defaults(input_cls: type[RunInput]) -> dict[str, Any]:
    """The form defaults: fields with a default (or default factory), as JSON."""
    out: dict[str, Any] = {}
    for name, field in input_cls.model_fields.items():
        if not field.is_required():
            out[name] = field.get_default(call_default_factory=True)
    return codec.loads(codec.dumps(out)) if out else {}


async def _consume_response(
    ctx: FlowRunContext, input_cls: type[RunInput] | None, raw: bytes | None, response_key: str
) -> Any:
    """The validated input of an answered pause; a validator's rejection is recorded.

    A model input carries its metadata (the response's key, this run as receiver), as
    ``RunInput.load`` gives it; a resume without input gives the model's defaults.
    """
    if input_cls is None:
        return None
    try:
        # From the JSON itself, as a received input is: one parse, JSON's own types.
        if raw and raw != b"null":
            value = input_cls.model_validate_json(raw)
        else:  # no input: the model's defaults
            value = input_cls.model_validate({})
    except ValidationError as exc:
        message = f"Input rejected: {summarize(plain_errors(exc), whole='')}"
        ctx.state.rejection = message
        await store.set_state(
            ctx.flow_run.run_id,
            State(type=StateType.RUNNING, message=message),
            expect=(StateType.RUNNING,),
            attempt=ctx.state.attempt,
        )
        raise
    if is_automatic(input_cls):
        return value.value  # type: ignore[attr-defined]
    value._metadata = RunInputMetadata(
        key=response_key, sender=None, receiver=uuid.UUID(ctx.flow_run.run_id)
    )
    return value


async def _pause(
    wait_for_input: Any,
    timeout: float | None,
    key: str | None,
    suspend: bool,
    counted: bool = True,
    assignees: list[str] | None = None,
) -> Any:
    """Pause (or suspend) the current run; ``counted``: this call numbers the next pause."""
    ctx = _require_run()
    raise_if_cancelled()  # a checkpoint
    run_id = ctx.flow_run.run_id
    bus = get_bus()
    number = _count_pause(ctx) if counted else 0
    pause_key = key or str(number)
    input_cls = run_input_subclass_from_type(wait_for_input) if wait_for_input is not None else None
    # A re-executed run reaching a pause it already passed gets the same answer (kept
    # under "paused-" or "suspended-": a pause may have become a suspension on request);
    # a run another run asked to suspend suspends here instead of pausing.
    answered_at = [
        _keyset(pause_key, suspend)["response"],
        _keyset(pause_key, not suspend)["response"],
    ]
    answered, suspend_requested = await store.pause_preflight(run_id, answered_at)
    if answered is not None:  # answered while suspended, or replayed after a restart
        return await _take_answer(ctx, input_cls, answered, pause_key, answered_at[0])
    if suspend_requested and not suspend:
        await store.take_suspend_request(run_id)
        suspend = True
    keyset = _keyset(pause_key, suspend)

    now = await store.redis_time_ms()
    deadline = int(now + timeout * 1000) if timeout is not None else 0
    details = StateDetails(
        flow_run_id=uuid.UUID(run_id),
        pause_key=pause_key,
        pause_timeout=datetime.fromtimestamp(deadline / 1000, UTC) if deadline else None,
        pause_reschedule=suspend,
        run_input_keyset=dict(keyset) if input_cls is not None else None,
        assignees=assignees,
    )
    state = State(
        type=StateType.PAUSED,
        name="Suspended" if suspend else "Paused",
        message=ctx.state.rejection,
        state_details=details,
    )
    values: list[Any] = []
    schema = b""
    if input_cls is not None:
        schema = schema_json(input_cls)
        values += [keyset["schema"], schema]
        values += [defaults_key(keyset), codec.dumps(_defaults(input_cls))]
        if input_cls._description is not None:
            values += [keyset["description"], codec.dumps(input_cls._description)]
    control = keys.run_control(run_id)
    last = await bus.client.xrevrange(control, count=1)
    position = last[0][0].decode() if last else "0-0"
    request = store.PauseRequest(
        state=state,
        pause_key=pause_key,
        deadline_ms=deadline,
        keyset=keyset,
        suspend=suspend,
        schema=schema,
        values=values,
        assignees=assignees,
    )
    await store.pause(run_id, ctx.state.attempt, request)
    ctx.state.rejection = None
    if suspend:
        raise SuspendExecution(run_id)
    answered = await _wait_for_resume(run_id, pause_key, position, deadline)
    if answered is None:
        answered = await bus.client.hget(keys.run_values(run_id), keyset["response"])
    return await _take_answer(ctx, input_cls, answered, pause_key, keyset["response"])


async def _take_answer(
    ctx: FlowRunContext,
    input_cls: type[RunInput] | None,
    raw: bytes | None,
    pause_key: str,
    response_key: str,
) -> Any:
    """Consume a pause's answer and tell whoever resumed it (a form, say) the flow has it.

    The event is written in the background: the flow's next line does not wait for it.
    """
    try:
        value = await _consume_response(ctx, input_cls, raw, response_key)
    except ValidationError:
        ctx.state.write_later(_announce_answer(ctx.flow_run.run_id, pause_key, accepted=False))
        raise
    ctx.state.write_later(_announce_answer(ctx.flow_run.run_id, pause_key, accepted=True))
    return value


async def _announce_answer(run_id: str, pause_key: str, accepted: bool) -> None:
    data = {"pause_key": pause_key, "accepted": accepted}
    await record_event(get_bus(), run_id, "pause.answered", data)


async def _wait_for_resume(
    run_id: str, pause_key: str, position: str, deadline: int
) -> bytes | None:
    """Park on the run's control stream until this pause is resumed or expires.

    Returns the response carried by the resume entry (``None``: read it from the run).
    """
    bus = get_bus()
    control = keys.run_control(run_id)
    while True:
        remaining = None
        if deadline:
            remaining = max(0.0, (deadline - indexes.local_ms()) / 1000) + 0.05
        try:
            entries = await bus.dispatcher.wait(control, position, remaining)
        except TimeoutError:
            # Our clock says the deadline passed; Redis's clock decides.
            if await expire_pause(run_id, pause_key):
                raise FlowPauseTimeout(f"flow run {run_id} was not resumed in time") from None
            # Someone else may have settled it first: a resume, or a read that expired it.
            resumed, state = await store.resumed_or_state(run_id)
            if resumed == pause_key:
                return None
            if state is None or not state.is_paused():
                raise FlowPauseTimeout(f"flow run {run_id} was not resumed in time") from None
            await asyncio.sleep(0.05)  # Redis's clock is a little behind ours
            continue
        for entry_id, fields in entries:
            position = entry_id.decode()
            kind = codec.text(fields.get(b"type"))
            if kind == "cancel":
                raise CancelRequested(run_id)
            if codec.text(fields.get(b"pause_key")) != pause_key:
                continue
            if kind == "resumed":
                return fields.get(b"response") or None
            if kind == "expired":
                raise FlowPauseTimeout(f"flow run {run_id} was not resumed in time")


@overload
async def apause_flow_run(
    wait_for_input: None = None,
    timeout: float | None = 3600,
    poll_interval: float = 10,
    key: str | None = None,
    *,
    assignees: Sequence[str] | None = None,
) -> None: ...
@overload
async def apause_flow_run(
    wait_for_input: type[T],
    timeout: float | None = 3600,
    poll_interval: float = 10,
    key: str | None = None,
    *,
    assignees: Sequence[str] | None = None,
) -> T: ...
@overload
async def apause_flow_run(
    wait_for_input: Any,
    timeout: float | None = 3600,
    poll_interval: float = 10,
    key: str | None = None,
    *,
    assignees: Sequence[str] | None = None,
) -> Any: ...
async def apause_flow_run(
    wait_for_input: Any = None,
    timeout: float | None = 3600,
    poll_interval: float = 10,
    key: str | None = None,
    *,
    assignees: Sequence[str] | None = None,
) -> Any:
    """Pause the current run until it is resumed; returns the input (or ``None``).

    ``wait_for_input`` is a built-in type (returned as a plain value), a pydantic
    model or a ``RunInput`` (returned as an instance): a class ``C`` gives a ``C``
    to the type checker, other forms (``Literal[...]``, unions) give ``Any``. The
    process stays and wakes the moment the run is resumed (``poll_interval`` is
    accepted, not needed).

    ``assignees`` (beyond Prefect's signature) limits who may resume this pause:
    people's names and ``role:<x>`` (a role or above, or a team), e.g.
    ``["grace", "role:finance"]``; ``None``, the default, lets any responder.

    :raises FlowPauseTimeout: not resumed within ``timeout`` seconds; the run is Failed.
    :raises pydantic.ValidationError: the input failed the model's own validators.
    :raises ValueError: an assignee is not a name or ``role:<x>``; nothing paused.
    """
    del poll_interval
    listed = checked_assignees(assignees)
    return await _pause(wait_for_input, timeout, key, suspend=False, assignees=listed)


@overload
async def asuspend_flow_run(
    wait_for_input: None = None,
    flow_run_id: uuid.UUID | str | None = None,
    timeout: float | None = 3600,
    key: str | None = None,
    *,
    assignees: Sequence[str] | None = None,
) -> None: ...
@overload
async def asuspend_flow_run(
    wait_for_input: type[T],
    flow_run_id: None = None,
    timeout: float | None = 3600,
    key: str | None = None,
    *,
    assignees: Sequence[str] | None = None,
) -> T: ...
@overload
async def asuspend_flow_run(
    wait_for_input: type[T],
    flow_run_id: uuid.UUID | str,
    timeout: float | None = 3600,
    key: str | None = None,
    *,
    assignees: Sequence[str] | None = None,
) -> T | None: ...
@overload
async def asuspend_flow_run(
    wait_for_input: Any,
    flow_run_id: uuid.UUID | str | None = None,
    timeout: float | None = 3600,
    key: str | None = None,
    *,
    assignees: Sequence[str] | None = None,
) -> Any: ...
async def asuspend_flow_run(
    wait_for_input: Any = None,
    flow_run_id: uuid.UUID | str | None = None,
    timeout: float | None = 3600,
    key: str | None = None,
    *,
    assignees: Sequence[str] | None = None,
) -> Any:
    """Suspend a run: its execution ends and resuming re-executes it from the top.

    Without ``flow_run_id`` (or with the current run's) this ends the current
    execution; once resumed, the re-executed run reaches this call again and it
    returns the input. With another run's id, that run suspends at its next task
    or pause. As in Prefect, the suspension times out after ``timeout`` seconds (an
    hour); ``None`` waits for as long as it takes. ``assignees`` as for
    :func:`apause_flow_run`.

    :raises SubflowSuspendError: called in a subflow's run (a ``RuntimeError``, as in
        Prefect): its parent's run could not go on without it.
    """
    listed = checked_assignees(assignees)
    ctx = current_run()
    if flow_run_id is not None and (
        ctx is None or normalize_run_id(flow_run_id) != ctx.flow_run.run_id
    ):
        await store.request_suspend(normalize_run_id(flow_run_id))
        return None
    if ctx is not None and ctx.flow_run.parent_flow_run_id is not None:
        raise SubflowSuspendError(
            f"flow run {ctx.flow_run.run_id} is a subflow of {ctx.flow_run.parent_flow_run_id}; "
            "subflows cannot be suspended (pause it, or suspend the parent)"
        )
    return await _pause(wait_for_input, timeout, key, suspend=True, assignees=listed)


async def check_suspend_request(ctx: FlowRunContext) -> None:
    """Suspend the current run here if another run asked it to (task and pause boundaries)."""
    if await store.take_suspend_request(ctx.flow_run.run_id):
        # Not counted: the re-executed run passes this boundary without suspending, so
        # counting it would shift the keys of the pauses that follow.
        await _pause(None, None, f"requested-{uuid.uuid4().hex[:12]}", suspend=True, counted=False)


pause_flow_run = dual(apause_flow_run)
suspend_flow_run = dual(asuspend_flow_run)
