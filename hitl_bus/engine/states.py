"""Flow run states, as in Prefect: a type, a display name, a message and a time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


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


class State(BaseModel):
    """One state of a run.

    :ivar type: the :class:`StateType`.
    :ivar name: display name (``"Suspended"`` for a suspended run, else the type's title).
    :ivar message: why the run entered the state, e.g. an error text.
    :ivar timestamp: when it entered the state (UTC).
    :ivar state_details: extra facts, e.g. a pause's key and deadline.
    :ivar id: this state's own id; a state write retried after a lost reply is
        recognised by it and not applied twice.
    """

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: StateType
    name: str = ""
    message: str | None = None
    timestamp: datetime = Field(default_factory=_now)
    state_details: dict[str, Any] = Field(default_factory=dict)

    def model_post_init(self, __context: Any) -> None:
        if not self.name:
            self.name = self.type.value.title()

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


def Pending(message: str | None = None) -> State:
    return State(type=StateType.PENDING, message=message)


def Running(message: str | None = None) -> State:
    return State(type=StateType.RUNNING, message=message)


def Completed(message: str | None = None) -> State:
    return State(type=StateType.COMPLETED, message=message)


def Failed(message: str | None = None) -> State:
    return State(type=StateType.FAILED, message=message)


def Cancelled(message: str | None = None) -> State:
    return State(type=StateType.CANCELLED, message=message)
