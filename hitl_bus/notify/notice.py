"""What a notification says: the event, its run, and for a pause who may answer it.

An event of the global stream becomes a :class:`Notice`. For a pause it reads the
run as it is now (the pause's key, deadline, description and schema) and the
pause's assignees (the run's ``pause_assignees`` field: a JSON list of people's
names and ``role:<role or team>`` entries), resolved to the people they name.
A pause that is over by the time its event is read (answered, expired, or a
later pause) gets no notice: there is nothing left to answer.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hitl_bus.client.pauses import PauseDetails, pause_of
from hitl_bus.client.records import RunEvent
from hitl_bus.engine import records, runs, store
from hitl_bus.engine.runs import FlowRun
from hitl_bus.errors import FlowRunNotFound
from hitl_bus.people import links
from hitl_bus.people.roles import ROLE_PREFIX, is_assignee
from hitl_bus.people.store import Person, list_people
from hitl_bus.settings import get_settings

log = logging.getLogger("hitl_bus.notify")

#: How long an answer link lives when its pause has no deadline (seconds).
UNBOUNDED_LINK_TTL = 7 * 24 * 3600.0


def event_name(event: RunEvent) -> str:
    """The name a sink asks for: the state entered (``paused``), else the event's type."""
    if event.type == "state.changed":
        state = event.data.get("state")
        if isinstance(state, dict) and isinstance(state.get("type"), str):
            return str(state["type"]).lower()
    return event.type


def _state_pause_key(event: RunEvent) -> str | None:
    state = event.data.get("state")
    details = state.get("state_details") if isinstance(state, dict) else None
    key = details.get("pause_key") if isinstance(details, dict) else None
    return str(key) if key is not None else None


@dataclass(frozen=True)
class Notice:
    """One event to tell the sinks about, with what every sink needs to say it."""

    event: RunEvent
    name: str
    run: FlowRun
    pause: PauseDetails | None = None
    assignees: list[str] = field(default_factory=list)
    #: The people the assignees name (people's names, then everyone a role or team names).
    people: list[Person] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.run.id)

    @property
    def delivery(self) -> str:
        """What a sink is sent once: a pause once (however many events show it), else
        the event."""
        if self.pause is not None:
            return f"{self.run_id}:pause:{self.pause.pause_key}"
        return f"event:{self.event.id}"

    @property
    def run_url(self) -> str:
        return f"{public_url()}/runs/{self.run_id}"

    @property
    def named_people(self) -> list[Person]:
        """The assignees that name a person (not a role or a team)."""
        named = {a for a in self.assignees if not a.startswith(ROLE_PREFIX)}
        return [p for p in self.people if p.name in named]

    def first_line(self) -> str:
        description = (self.pause.description if self.pause else None) or ""
        for line in description.splitlines():
            if line.strip():
                return line.strip().lstrip("#").strip()
        return ""

    def headline(self) -> str:
        """One line: what happened to which run."""
        if self.pause is not None:
            what = self.first_line()
            return f"Flow run {self.run.name} is waiting for input" + (f": {what}" if what else "")
        return f"Flow run {self.run.name}: {self.name}"

    def link_ttl(self) -> float:
        """Seconds an answer link lives: until the pause's deadline."""
        deadline = self.pause.deadline if self.pause else None
        if deadline is None:
            return UNBOUNDED_LINK_TTL
        return max(1.0, deadline.timestamp() - time.time())

    async def answer_link(self, person: str) -> str:
        """A new single-use link for ``person`` to answer this pause."""
        assert self.pause is not None
        token = await links.mint(
            links.AnswerLink(self.run_id, self.pause.pause_key, person),
            expires_in_s=self.link_ttl(),
        )
        return f"{public_url()}/answer/{token}"

    def deadline(self) -> datetime | None:
        return self.pause.deadline if self.pause else None


def public_url() -> str:
    return get_settings().public_url.rstrip("/")


def resolve(assignees: list[str], people: list[Person]) -> list[Person]:
    """The people ``assignees`` name: each person named, and those a role or team names."""
    if not assignees:
        return []
    return [p for p in people if is_assignee(p.name, p.role, p.teams, assignees)]


async def notice_for(event: RunEvent, name: str) -> Notice | None:
    """The notice of ``event`` (named ``name``), or None when there is nothing to say."""
    try:
        if name != "paused":
            return Notice(event, name, records.decode_run(await store.read_raw(event.run_id)))
        record = await runs.read_run_record(event.run_id)  # one read: the run and its pause
        pause = await pause_of(record)
    except (FlowRunNotFound, KeyError):
        log.info("run %s is gone; nothing to tell of event %s", event.run_id, event.id)
        return None
    wanted = _state_pause_key(event)
    if pause is None or (wanted is not None and wanted != pause.pause_key):
        log.info("the pause of event %s is over; nothing to tell", event.id)
        return None
    assignees = pause.assignees or []
    people = resolve(assignees, await list_people()) if assignees else []
    return Notice(event, name, record.run, pause, assignees, people)


def summary(notice: Notice) -> dict[str, Any]:
    """The notice as JSON (without links): what a webhook body carries."""
    run = notice.run
    body: dict[str, Any] = {
        "type": notice.name,
        "event": {
            "id": notice.event.id,
            "type": notice.event.type,
            "ts": notice.event.ts,
            "data": notice.event.data,
        },
        "run": {
            "id": notice.run_id,
            "name": run.name,
            "flow_name": run.flow_name,
            "deployment": run.deployment,
            "state": {"type": run.state.type.value, "name": run.state.name},
            "url": notice.run_url,
        },
    }
    if notice.pause is not None:
        deadline = notice.deadline()
        body["pause"] = {
            "key": notice.pause.pause_key,
            "description": notice.pause.description,
            "deadline": deadline.isoformat() if deadline else None,
            "schema": notice.pause.schema_,
            "assignees": notice.assignees,
        }
    return body
