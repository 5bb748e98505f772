"""Which paused runs wait for a given person: the "Waiting for me" view, for the UI and CLI.

A pause names who may answer it in its run's ``pause_assignees`` field (a JSON list
of names and ``role:<role or team>`` entries; absent or empty: any responder). The
list is read from each paused run's stored hash and matched with
``people.roles.is_assignee``, the rule the resume itself is held to.
"""

from __future__ import annotations

import logging

import orjson

from hitl_bus.client import HitlClient
from hitl_bus.engine.states import StateType
from hitl_bus.engine.store import FlowRun, read_raw_many
from hitl_bus.people.roles import is_assignee
from hitl_bus.people.store import Person

log = logging.getLogger("hitl_bus.web")
_FIELD = b"pause_assignees"
#: Paused runs looked at, newest first, to find the ones waiting for someone.
_SCAN = 1000


def assignees_of(raw: dict[bytes, bytes]) -> list[str] | None:
    """A run hash's pause assignees: a list (empty: anyone who may answer), or None when
    the stored value cannot be read (then the run waits for no one in particular)."""
    value = raw.get(_FIELD)
    if not value:
        return []
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, list) or not all(isinstance(entry, str) for entry in parsed):
        log.warning("run %s: pause_assignees is not a JSON list of names", raw.get(b"id"))
        return None
    return parsed


async def waiting_for(
    person: Person,
    *,
    limit: int = 100,
    deployment: str | None = None,
    flow_name: str | None = None,
) -> list[FlowRun]:
    """The newest paused runs ``person`` may answer (by role and by the pause's assignees)."""
    paused = await HitlClient().read_flow_runs(
        state=StateType.PAUSED, flow_name=flow_name, deployment=deployment, limit=_SCAN
    )
    raws = await read_raw_many([str(run.id) for run in paused])
    mine: list[FlowRun] = []
    for run, raw in zip(paused, raws, strict=True):
        assignees = assignees_of(raw)
        if assignees is None or not raw:
            continue
        if is_assignee(person.name, person.role, person.teams, assignees):
            mine.append(run)
            if len(mine) == limit:
                break
    return mine
