"""A flow run's hash read back as typed records: one decoder for every reader.

``FlowRun`` is what a run is to its readers; ``RunRecord`` adds what the engine keeps
beside it (the current pause, its keyset, schema and assignees). The field names of the
hash are known here and in the run store (``store.py``), which writes them.
"""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from hitl_bus.bus import codec
from hitl_bus.engine.states import State, StateType
from hitl_bus.inputs.keyset import Keyset

log = logging.getLogger("hitl_bus.store")


#: Namespace of the ids derived from deployment names.
_DEPLOYMENTS = uuid.UUID("6f1d8c52-3f1e-4d0b-9a43-2c7e5b9d1a10")


@functools.lru_cache(maxsize=1024)
def deployment_uuid(name: str) -> uuid.UUID:
    """A deployment's id: the same for its name everywhere, with nothing stored."""
    return uuid.uuid5(_DEPLOYMENTS, name)


class FlowRun(BaseModel):
    """A flow run as stored: who it is, what it was called with, where it stands."""

    id: uuid.UUID
    name: str
    flow_name: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    state: State
    created: datetime
    deployment: str | None = None

    @property
    def deployment_id(self) -> uuid.UUID | None:
        """The deployment's id (Prefect's field): a deployment is named, so derived from it."""
        return deployment_uuid(self.deployment) if self.deployment else None

    @property
    def state_type(self) -> StateType:
        return self.state.type

    @property
    def pause_assignees(self) -> list[str] | None:
        """Who may answer the run's current pause (``None``: any responder, or not paused)."""
        return self.state.state_details.assignees if self.state.is_paused() else None


@dataclass(frozen=True)
class RunRecord:
    """Everything the run's hash holds, typed: the run plus its pause and execution fields."""

    run: FlowRun
    #: Key of the current (or last) pause, e.g. ``1`` (the first pause of the run).
    pause_key: str
    #: The pause's deadline in ms on Redis's clock; 0 when there is none.
    pause_deadline_ms: int
    pause_keyset: Keyset | None
    #: The pause's input schema as stored (JSON), ``None`` for a pause without input.
    pause_schema: bytes | None
    suspended: bool
    #: Number of the current execution (0: never started).
    attempt: int
    #: Worker that owns the current execution ("" for an in-process run).
    worker: str
    #: Worker deaths counted against the deployment's retries.
    crashes: int
    #: Who may answer the current pause (names and ``role:<x>``); ``None``: any responder.
    pause_assignees: list[str] | None = None


def state_event(state: State) -> dict[str, Any]:
    """The data of a ``state.changed`` event: the state, and its actor when it has one."""
    data: dict[str, Any] = {"state": state.model_dump(mode="json")}
    if state.state_details.actor is not None:
        data["actor"] = state.state_details.actor
    return data


def decode_run(raw: dict[bytes, bytes]) -> FlowRun:
    """A :class:`FlowRun` from the run hash's fields."""
    fields = {k.decode(): v for k, v in raw.items()}
    return FlowRun(
        id=uuid.UUID(fields["id"].decode()),
        name=fields["name"].decode(),
        flow_name=fields["flow_name"].decode(),
        parameters=codec.loads(fields.get("parameters", b"{}")),
        state=State.model_validate_json(fields["state"]),
        created=datetime.fromisoformat(fields["created"].decode()),
        deployment=codec.text(fields.get("deployment")),
    )


def decode_record(raw: dict[bytes, bytes]) -> RunRecord:
    """A :class:`RunRecord` from the run hash's fields."""
    run = decode_run(raw)
    keyset: Keyset | None = None
    if raw.get(b"pause_keyset"):
        try:
            keyset = codec.loads(raw[b"pause_keyset"])
        except ValueError as exc:  # a corrupt field: the run still loads, without its form
            log.warning("skipping field pause_keyset of run %s: %s", run.id, exc)
    return RunRecord(
        run=run,
        pause_key=codec.text(raw.get(b"pause_key")) or "",
        pause_deadline_ms=int(raw.get(b"pause_deadline") or 0),
        pause_keyset=keyset,
        pause_schema=raw.get(b"pause_schema") or None,
        suspended=raw.get(b"suspended") == b"1",
        attempt=int(raw.get(b"attempt") or 0),
        worker=codec.text(raw.get(b"worker")) or "",
        crashes=int(raw.get(b"crashes") or 0),
        pause_assignees=_assignees(raw.get(b"pause_assignees"), run.id),
    )


def _assignees(raw: bytes | None, run_id: uuid.UUID) -> list[str] | None:
    """The ``pause_assignees`` field: a JSON list of strings (``None``: none, or corrupt)."""
    if not raw:
        return None
    try:
        value = codec.loads(raw)
    except ValueError as exc:
        value = exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        # Unreadable: the pause is left unassigned rather than unanswerable; say so.
        log.warning("skipping field pause_assignees of run %s: not a list of names", run_id)
        return None
    return value or None
