"""``resume_flow_run``: the resumer's side of a pause (a form, the CLI, another program).

The input is checked against the pause's saved JSON schema before anything changes;
then one run-store script re-checks the state, the pause key and the deadline, stores
the answer, moves the run on and wakes its process (or queues a suspended run for a
worker). The flow's own validators run in the flow, after the resume.

Who resumes is the resume's actor (recorded on the state it writes and on the
stored answer). A pause with assignees may be answered only by a person it names
(by name, role or team); a person needs the responder role in any case. A resume
with no actor (a program calling the library) is trusted, as anyone with access
to Redis is.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from typing import Any

from hitl_bus._sync import dual
from hitl_bus.bus import codec
from hitl_bus.engine import store
from hitl_bus.engine.states import StateType, state_json
from hitl_bus.errors import (
    FlowPauseTimeout,
    FlowRunNotFound,
    NotAllowed,
    NotPausedError,
    ResumeRejected,
)
from hitl_bus.ids import normalize_run_id, uuid4_text
from hitl_bus.inputs.keyset import current_actor
from hitl_bus.people.roles import Action, allows, is_assignee, person_of, refusal
from hitl_bus.people.store import PersonNotFound, get_person
from hitl_bus.schema_check import SchemaChecker, summarize


def _listed(assignees: list[str]) -> str:
    """``grace``, ``grace and role:finance``, ``ada, grace and role:finance``."""
    if len(assignees) == 1:
        return assignees[0]
    return f"{', '.join(assignees[:-1])} and {assignees[-1]}"


async def check_may_answer(actor: str | None, assignees: list[str] | None) -> None:
    """Refuse a person who may not answer a pause with these assignees.

    An actor that is not a person (``None``, a flow run, an inbox) is trusted.

    :raises NotAllowed: the person is unknown, lacks the responder role, or is not
        among the assignees.
    """
    name = person_of(actor)
    if name is None:
        return
    try:
        person = await get_person(name)
    except PersonNotFound:
        raise NotAllowed(f"{name} is not a known person; they may not answer") from None
    if not allows(person.role, Action.ANSWER):
        raise NotAllowed(refusal(name, person.role, Action.ANSWER))
    if not is_assignee(name, person.role, person.teams, assignees):
        listed = _listed(list(assignees or ()))
        raise NotAllowed(f"this pause is assigned to {listed}; {name} may not answer it")


async def aresume_flow_run(
    flow_run_id: uuid.UUID | str,
    run_input: dict[str, Any] | None = None,
    *,
    actor: str | None = None,
) -> None:
    """Resume a paused or suspended run, with ``run_input`` when its pause asked for input.

    ``run_input`` is a dict (``{"value": ...}`` for built-in types), checked against
    the saved JSON schema before anything changes. Returns once the resume is
    committed; the flow's own validators run in the flow afterwards.

    ``actor`` (beyond Prefect's signature) is who resumes: by default who is acting
    (``context.acting_as()``), else the current flow run, else nobody (a program).
    It is recorded on the state the resume writes and its ``state.changed`` event.

    :raises FlowRunNotFound: no such run.
    :raises NotPausedError: the run is not paused (or this pause was already resumed).
    :raises FlowPauseTimeout: the pause's deadline has passed; the run is now Failed.
    :raises ResumeRejected: the input fails the schema (``.errors`` per field); no input
        counts as ``{}``, so only a pause whose fields all have defaults takes none.
    :raises NotAllowed: (a ``PermissionError``) the actor is a person who may not
        answer this pause (not an assignee, or not a responder); nothing changed.
    """
    run_id = normalize_run_id(flow_run_id)
    actor = current_actor(actor)
    pause_key = ""  # whichever pause the run is in: the script checks the input against it
    deployment: str | None = None
    deployment_known = False  # a suspended run's queue: the script asks when it needs it
    suspended = False
    if person_of(actor) is not None:  # a person: first whether they may answer this pause
        record = await store.read_record(run_id)
        state = record.run.state
        if not state.is_paused():
            raise NotPausedError(f"flow run {run_id} is {state.type.value}, not paused")
        await check_may_answer(actor, record.pause_assignees)
        pause_key = record.pause_key  # the script resumes only this pause, theirs to answer
        deployment, deployment_known = record.run.deployment, True
        suspended = state.is_suspended()
    # No input is an empty one, as in Prefect: a form whose every field has a default
    # resumes with the defaults; one with a required field is refused.
    answer = {} if run_input is None else run_input
    try:
        response = codec.dumps(answer).decode()
    except TypeError as exc:
        raise ResumeRejected(f"input is not JSON: {exc}", [{"loc": [], "msg": str(exc)}]) from None
    request = store.ResumeRequest(
        pause_key=pause_key,
        response=response,
        gave_input=run_input is not None,
        checked=_SCHEMAS.passed_by(answer),
        running=state_json(StateType.RUNNING, actor=actor),
        request_id=uuid4_text(),
        deployment=deployment,
        deployment_known=deployment_known,
        actor=actor,
        resuming=_resuming(actor) if suspended else "",
    )
    while True:
        change = await store.resume(run_id, request)
        if change.outcome is store.Outcome.CHECK:  # a schema this process has not seen
            raw_schema, digest = change.reads
            errors = _SCHEMAS.check(bytes(raw_schema), bytes(digest), answer)
            if errors:
                raise ResumeRejected(f"input does not match the form: {summarize(errors)}", errors)
            request = replace(request, checked=[bytes(digest)])
        elif change.outcome is store.Outcome.NEEDS_QUEUE:  # suspended: a worker takes it on
            request = replace(
                request,
                deployment=change.detail or None,
                deployment_known=True,
                resuming=_resuming(actor),
            )
        elif change.outcome is store.Outcome.NEEDS_FAILED:  # too late: the run fails
            failed = state_json(StateType.FAILED, message="The pause was not resumed in time")
            request = replace(request, failed=failed)
        else:
            break
    if change.outcome is store.Outcome.NO_INPUT:
        raise ResumeRejected("this pause takes no input", [{"loc": [], "msg": "no input expected"}])
    if change.outcome is store.Outcome.MISSING:
        raise FlowRunNotFound(run_id)
    if change.outcome is store.Outcome.CONFLICT:
        current = change.previous.value if change.previous else "?"
        raise NotPausedError(f"flow run {run_id} is {current}, not paused")
    if change.outcome is store.Outcome.OTHER_PAUSE:
        raise NotPausedError(f"flow run {run_id} was resumed already, or paused again")
    if change.outcome is store.Outcome.EXPIRED:
        raise FlowPauseTimeout(f"flow run {run_id}: the pause {change.detail} timed out")


def _resuming(actor: str | None) -> str:
    """The state a resumed suspended run waits in for a worker."""
    return state_json(StateType.SCHEDULED, name="Resuming", actor=actor)


class _PauseSchemas:
    """The pause schemas this process has checked answers against, newest last.

    Only a hint, as for sends: the resume script stores an answer only when the pause's
    own schema is among those the answer passed here, and otherwise answers that schema,
    so a resume costs one round trip once its form's schema has been seen, two the first
    time, and never accepts an answer no check has passed.
    """

    LIMIT = 16

    def __init__(self) -> None:
        self._known: dict[bytes, SchemaChecker | None] = {}
        self._lock = threading.Lock()  # sync callers resume from threads of their own

    def passed_by(self, answer: Any) -> list[bytes]:
        """Digests of the known schemas ``answer`` passes."""
        with self._lock:
            known = list(self._known.items())
        # A schema that is not a JSON object (no checker) does not check answers.
        return [
            digest for digest, checker in known if checker is None or not checker.errors(answer)
        ]

    def check(self, raw_schema: bytes, digest: bytes, answer: Any) -> list[dict[str, Any]]:
        """Remember a pause's schema; how ``answer`` fails it (``[]``: it passes)."""
        try:
            schema = codec.loads(raw_schema)
        except ValueError:
            schema = None
        checker = SchemaChecker(schema) if isinstance(schema, dict) else None
        with self._lock:
            self._known.pop(digest, None)
            if len(self._known) >= self.LIMIT:
                del self._known[next(iter(self._known))]  # the oldest
            self._known[digest] = checker
        return checker.errors(answer) if checker is not None else []


_SCHEMAS = _PauseSchemas()


resume_flow_run = dual(aresume_flow_run)
