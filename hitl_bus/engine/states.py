"""Flow run states, as in Prefect: a type, a display name, a message, a time and details.

The constructors (``Paused(...)``, ``Suspended(...)``, ``Running()``...) take Prefect's
arguments, so code that builds or inspects states moves over with its imports.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from hitl_bus.ids import uuid4_text


class StateType(StrEnum):
    """What a run is doing; the names and values are Prefect's."""

    SCHEDULED = "SCHEDULED"  #: created, waiting to be picked up (also: resuming)
    PENDING = "PENDING"  #: picked up, about to run
    RUNNING = "RUNNING"  #: the flow's code runs
    PAUSED = "PAUSED"  #: waiting for a resume (name "Suspended": no process held)
    CANCELLING = "CANCELLING"  #: asked to stop; stops at its next checkpoint
    CANCELLED = "CANCELLED"  #: stopped on request
    COMPLETED = "COMPLETED"  #: returned
    FAILED = "FAILED"  #: raised, or a pause timed out
    CRASHED = "CRASHED"  #: its process died


TERMINAL_STATES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
)


def _now() -> datetime:
    return datetime.now(UTC)


class StateDetails(BaseModel):
    """Facts a state carries beyond its type: Prefect's field names and meanings.

    A pause fills ``pause_key``, ``pause_timeout`` (its deadline), ``pause_reschedule``
    (true when suspended: the execution ends and resuming runs it again) and
    ``run_input_keyset`` (where its input's schema and response are kept).

    Beyond Prefect: ``actor`` names who made the change (``hitl.user.<name>``, a
    ``hitl.flow-run.<id>`` or ``hitl.client.<id>``; ``None``: a program calling the
    library), on the states written by a start, a resume and a cancel; ``assignees``
    are who may answer a pause (``None``: any responder).
    """

    model_config = ConfigDict(extra="ignore")

    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    child_flow_run_id: uuid.UUID | None = None
    scheduled_time: datetime | None = None
    cache_key: str | None = None
    cache_expiration: datetime | None = None
    untrackable_result: bool = False
    pause_timeout: datetime | None = None
    pause_reschedule: bool = False
    pause_key: str | None = None
    run_input_keyset: dict[str, str] | None = None
    refresh_cache: bool | None = None
    retriable: bool | None = None
    transition_id: uuid.UUID | None = None
    actor: str | None = None
    assignees: list[str] | None = None


class State(BaseModel):
    """One state of a run.

    :ivar type: the :class:`StateType`.
    :ivar name: display name (``"Suspended"`` for a suspended run, else the type's title).
    :ivar message: why the run entered the state, e.g. an error text.
    :ivar timestamp: when it entered the state (UTC).
    :ivar state_details: extra facts (:class:`StateDetails`), e.g. a pause's key and deadline.
    :ivar id: this state's own id; a state write retried after a lost reply is
        recognised by it and not applied twice.
    """

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: StateType
    name: str = ""
    message: str | None = None
    timestamp: datetime = Field(default_factory=_now)
    state_details: StateDetails = Field(default_factory=StateDetails)

    #: What the run's body gave, for :meth:`result`: ``(value, None)`` or ``(None, error)``.
    #: Held in this process only, never stored: a state read from Redis has none.
    _outcome: tuple[Any, BaseException | None] | None = PrivateAttr(default=None)

    def model_post_init(self, __context: Any) -> None:
        if not self.name:
            self.name = self.type.value.title()

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's return value, as Prefect's ``State.result()``.

        A Failed (or Cancelled) state raises the run's exception, or returns it with
        ``raise_on_failure=False``; a Paused state gives ``None``, as it has no result yet.
        Flow results are not stored in Redis, so only the state a call returned
        (``my_flow(..., return_state=True)``) holds one.

        :raises ValueError: this state holds no result (it was read from Redis).
        """
        if self.is_paused():
            return None
        if self._outcome is None:
            raise ValueError(
                f"this {self.name} state holds no result: flow results are not stored, only "
                "the state a flow call returns (return_state=True) carries its value"
            )
        value, error = self._outcome
        if error is not None:
            if raise_on_failure:
                raise error
            return error
        return value

    def is_scheduled(self) -> bool:
        return self.type is StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        return self.type is StateType.RUNNING

    def is_paused(self) -> bool:
        return self.type is StateType.PAUSED

    def is_suspended(self) -> bool:
        return self.type is StateType.PAUSED and self.name == "Suspended"

    def is_cancelling(self) -> bool:
        return self.type is StateType.CANCELLING

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_completed(self) -> bool:
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_final(self) -> bool:
        return self.type in TERMINAL_STATES


def state_json(
    state_type: StateType,
    *,
    name: str | None = None,
    message: str | None = None,
    actor: str | None = None,
    state_id: str | None = None,
) -> str:
    """A new state's JSON, as ``State(...).model_dump_json()`` writes it, without a model.

    For the paths that write a state with default details (an actor at most) and keep no
    :class:`State` of it: a resume, a worker's run. A fifth of the cost of a model.
    """
    details = _DEFAULT_DETAILS
    if actor is not None:
        details = _DEFAULT_DETAILS.replace(_NO_ACTOR, f'"actor":{_text(actor)}', 1)
    stamp = datetime.now(UTC).isoformat()
    return (
        f'{{"id":"{state_id or uuid4_text()}","type":"{state_type.value}",'
        f'"name":{_text(name or state_type.value.title())},'
        f'"message":{"null" if message is None else _text(message)},'
        f'"timestamp":"{stamp[:-6]}Z","state_details":{details}}}'
    )


def _text(value: str) -> str:
    return orjson.dumps(value).decode()


_DEFAULT_DETAILS = StateDetails().model_dump_json()
_NO_ACTOR = '"actor":null'


def with_outcome(state: State, value: Any = None, error: BaseException | None = None) -> State:
    """``state``, holding what the run's body returned or raised (for :meth:`State.result`)."""
    state._outcome = (value, error)
    return state


def _state(
    state_type: StateType, cls: type[State], name: str | None, kwargs: dict[str, Any]
) -> State:
    if name is not None:
        kwargs["name"] = name
    return cls(type=state_type, **kwargs)


def Scheduled(
    cls: type[State] = State, scheduled_time: datetime | None = None, **kwargs: Any
) -> State:
    """A run waiting to be picked up (at ``scheduled_time``, now when not given)."""
    details = StateDetails.model_validate(kwargs.pop("state_details", {}))
    details.scheduled_time = scheduled_time or details.scheduled_time or _now()
    return _state(StateType.SCHEDULED, cls, None, {**kwargs, "state_details": details})


def AwaitingRetry(
    cls: type[State] = State, scheduled_time: datetime | None = None, **kwargs: Any
) -> State:
    """Scheduled again after a failure, for the flow's next retry."""
    return Scheduled(cls, scheduled_time, name="AwaitingRetry", **kwargs)


def Pending(cls: type[State] = State, **kwargs: Any) -> State:
    return _state(StateType.PENDING, cls, None, kwargs)


def Running(cls: type[State] = State, **kwargs: Any) -> State:
    return _state(StateType.RUNNING, cls, None, kwargs)


def Retrying(cls: type[State] = State, **kwargs: Any) -> State:
    """Running again after a failure (the flow's ``retries``)."""
    return _state(StateType.RUNNING, cls, "Retrying", kwargs)


def Completed(cls: type[State] = State, **kwargs: Any) -> State:
    return _state(StateType.COMPLETED, cls, None, kwargs)


def Failed(cls: type[State] = State, **kwargs: Any) -> State:
    return _state(StateType.FAILED, cls, None, kwargs)


def Crashed(cls: type[State] = State, **kwargs: Any) -> State:
    return _state(StateType.CRASHED, cls, None, kwargs)


def Cancelling(cls: type[State] = State, **kwargs: Any) -> State:
    return _state(StateType.CANCELLING, cls, None, kwargs)


def Cancelled(cls: type[State] = State, **kwargs: Any) -> State:
    return _state(StateType.CANCELLED, cls, None, kwargs)


def Paused(
    cls: type[State] = State,
    timeout_seconds: float | None = None,
    pause_expiration_time: datetime | None = None,
    reschedule: bool = False,
    pause_key: str | None = None,
    **kwargs: Any,
) -> State:
    """A paused run; ``timeout_seconds`` or ``pause_expiration_time`` sets its deadline.

    :raises ValueError: both deadlines given, or one given in ``state_details`` too.
    """
    details = StateDetails.model_validate(kwargs.pop("state_details", {}))
    if details.pause_timeout is not None:
        raise ValueError("a pause timeout was given in state_details as well")
    if pause_expiration_time is not None and timeout_seconds is not None:
        raise ValueError("give pause_expiration_time or timeout_seconds, not both")
    if timeout_seconds is not None:
        details.pause_timeout = _now() + timedelta(seconds=timeout_seconds)
    else:
        details.pause_timeout = pause_expiration_time
    details.pause_reschedule = reschedule
    details.pause_key = pause_key
    return _state(StateType.PAUSED, cls, None, {**kwargs, "state_details": details})


def Suspended(
    cls: type[State] = State,
    timeout_seconds: float | None = None,
    pause_expiration_time: datetime | None = None,
    pause_key: str | None = None,
    **kwargs: Any,
) -> State:
    """A paused run whose execution ended: resuming runs it again (Paused, "Suspended")."""
    return Paused(
        cls,
        timeout_seconds=timeout_seconds,
        pause_expiration_time=pause_expiration_time,
        reschedule=True,
        pause_key=pause_key,
        name="Suspended",
        **kwargs,
    )
