"""The pause as a form reads it: keyset, schema, description, defaults and deadline."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hitl_bus import keys
from hitl_bus.bus import codec
from hitl_bus.engine import runs, store
from hitl_bus.engine.records import RunRecord
from hitl_bus.engine.states import StateType
from hitl_bus.inputs.keyset import defaults_key
from hitl_bus.people.roles import Action, allows, is_assignee
from hitl_bus.people.store import PersonNotFound, get_person

log = logging.getLogger("hitl_bus.client")


class PauseDetails(BaseModel):
    """What a form needs to resume a run: the pause's keyset, schema, description, defaults."""

    pause_key: str
    suspended: bool
    keyset: dict[str, str] | None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    defaults: dict[str, Any] = Field(default_factory=dict)
    deadline: datetime | None = None
    #: Who may answer it: names and ``role:<x>`` (``None``: any responder).
    assignees: list[str] | None = None

    model_config = ConfigDict(populate_by_name=True)


def _json_or_none(raw: bytes | None, where: str, field: str) -> Any:
    if not raw:
        return None
    try:
        return codec.loads(raw)
    except ValueError as exc:
        log.warning("skipping field %s of %s: %s", field, where, exc)
        return None


async def read_pause(flow_run_id: uuid.UUID | str) -> PauseDetails | None:
    """The run's current pause; a saved value that is not JSON is logged and left out."""
    record = await runs.read_run_record(flow_run_id)  # also fails an expired pause
    return await pause_of(record)


async def pause_of(record: RunRecord) -> PauseDetails | None:
    """The pause ``record`` (a run's record as read) is in, with the form's saved values."""
    if not record.run.state.is_paused():
        return None
    run_id = str(record.run.id)
    keyset = record.pause_keyset
    values: list[Any] = [None, None, None]
    if isinstance(keyset, dict) and {"schema", "description"} <= keyset.keys():
        names = [keyset["schema"], keyset["description"], defaults_key(keyset)]
        raws = await store.read_values(run_id, names)
        values = [
            _json_or_none(raw, keys.run_values(run_id), name)
            for name, raw in zip(names, raws, strict=True)
        ]
    schema, description, defaults = values
    deadline_ms = record.pause_deadline_ms
    return PauseDetails(
        pause_key=record.pause_key,
        suspended=record.suspended,
        keyset=dict(keyset) if keyset is not None and isinstance(schema, dict) else None,
        schema=schema if isinstance(schema, dict) else None,
        description=description if isinstance(description, str) else None,
        defaults=defaults if isinstance(defaults, dict) else {},
        deadline=datetime.fromtimestamp(deadline_ms / 1000, UTC) if deadline_ms else None,
        assignees=record.pause_assignees,
    )


async def runs_waiting_for(
    person: str,
    limit: int = 100,
    *,
    flow_name: str | None = None,
    deployment: str | None = None,
) -> list[runs.FlowRun]:
    """The newest paused runs ``person`` may answer: those whose assignees name them (by
    name, role or team) or that have none. Empty for an unknown person or one without
    the responder role (``admin`` is the bootstrap admin)."""
    try:
        who = await get_person(person)
    except PersonNotFound:
        return []
    if not allows(who.role, Action.ANSWER):
        return []

    def answerable(run: runs.FlowRun) -> bool:
        return is_assignee(who.name, who.role, who.teams, run.pause_assignees)

    return await runs.read_flow_runs(
        state=StateType.PAUSED,
        flow_name=flow_name,
        limit=limit,
        deployment=deployment,
        where=answerable,
    )
