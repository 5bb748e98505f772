"""How a run-store script is called: its keys and first arguments, and its reply.

Every script (``lua/<name>.lua``) is prefixed with ``lua/prelude.lua``, whose header says
which KEYS and ARGV they share; :mod:`hitl_bus.engine.store` wraps each in a typed call.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from hitl_bus import keys
from hitl_bus.bus import Bus, Remembered, codec, get_bus, read_lua
from hitl_bus.engine import indexes
from hitl_bus.engine.indexes import retention_ms
from hitl_bus.engine.states import State, StateType
from hitl_bus.errors import FlowRunNotFound, StateConflict

#: The check-and-set scripts (``lua/<name>.lua``), each prefixed with ``lua/prelude.lua``
#: whose header says which KEYS and ARGV they share.
SCRIPTS: dict[str, str] = {
    name: read_lua(__file__, "prelude") + read_lua(__file__, name)
    for name in ("create", "set_state", "begin", "pause", "resume", "expire", "cancel", "release")
}


class Outcome(IntEnum):
    """What a script did."""

    MISSING = 0  #: no such run
    OK = 1  #: the change was made (or had been made by this very call before)
    CONFLICT = 2  #: the run is not in a state that allows the change
    EXPIRED = 3  #: a resume found the pause past its deadline; the run is now Failed
    OTHER_PAUSE = 4  #: a resume named a pause the run is not in
    SUSPENDED_RESUMED = 5  #: a suspended run was resumed (or cancelled at once)
    SUPERSEDED = 6  #: the write came from an execution that no longer owns the run
    STALE = 7  #: a create found the deployment's record changed since the caller read it
    #: resume outcomes that write nothing and ask the caller for more
    CHECK = 8  #: the input was not checked against the pause's schema (``reads``: it, digest)
    NO_INPUT = 9  #: the pause takes no input and one was given
    NEEDS_QUEUE = 15  #: a suspended run, and no queue or Resuming state given (``detail``:
    #: its deployment)
    NEEDS_FAILED = 16  #: the pause is past its deadline, and no Failed state was given
    #: release outcomes
    NOTHING = 10  #: the run needs nothing (final, or already suspended)
    REQUEUED = 11  #: the run is Scheduled again and queued
    SUSPENDED = 12  #: a paused run is now Suspended, still answerable
    CANCELLED = 13  #: a cancelling run is now Cancelled
    CRASHED = 14  #: out of retries: the run is Crashed


@dataclass(frozen=True)
class Change:
    """The reply of one script: what happened, and the state type the run had before."""

    outcome: Outcome
    previous: StateType | None
    #: Script-specific detail (the attempt number from ``store.begin``).
    detail: str = ""
    #: The run was queued inside the script (standalone Redis).
    queued: bool = False
    #: The script kept the global indexes and event stream too (standalone Redis); else
    #: the caller follows with :func:`follow`.
    indexed: bool = False
    #: What the script read in the same step (``begin``'s starting point), as Redis answered.
    reads: Any = None


def run_keys(run_id: str) -> list[str]:
    """KEYS[1..11] of every run script, in the prelude's order."""
    return [
        keys.run(run_id), keys.run_events(run_id), keys.run_control(run_id),
        keys.run_values(run_id), keys.run_logs(run_id), keys.run_receivers(run_id),
        keys.run_tasks(run_id), keys.input_streams(run_id), keys.input_keys(run_id),
        keys.run_value_meta(run_id), keys.input_index(run_id),
    ]  # fmt: skip


class _RunArguments(Remembered[str, tuple[list[str], list[Any]]]):
    """Per bus, run id -> its keys and the arguments every run script starts with."""


def _common(bus: Bus, run_id: str) -> tuple[list[str], list[Any]]:
    """A run's keys and the arguments every run script starts with (remembered per bus)."""
    known = bus.kept(_RunArguments)
    common = known.get(run_id)
    if common is None:
        common = known.remember(
            run_id,
            (
                run_keys(run_id),
                [
                    run_id,
                    bus.settings.events_maxlen,
                    retention_ms(bus),
                    keys.input_stream(run_id, ""),
                    keys.index_prefix(run_id, bus.index_shards) if bus.one_node else "",
                ],
            ),
        )
    return common


async def run_script(
    script: str,
    run_id: str,
    args: list[Any],
    *,
    queue: str | None = None,
    extra_keys: list[str] | None = None,
    bus: Bus | None = None,
) -> Change:
    """Run ``script`` on ``run_id``'s keys (and ``queue`` where the script can reach it), on
    ``bus`` (the running loop's when not given)."""
    bus = bus or get_bus()
    in_script = queue is not None and bus.one_node
    script_keys, common = _common(bus, run_id)
    if in_script and queue is not None:
        script_keys = [*script_keys, queue]
    if extra_keys:
        script_keys = [*script_keys, *extra_keys]
    reply = await bus.eval(SCRIPTS[script], script_keys, [*common, *args], replicated=True)
    outcome = Outcome(int(reply[0]))
    previous_text = codec.text(reply[1]) if len(reply) > 1 else ""
    previous = StateType(previous_text) if previous_text else None
    detail = (codec.text(reply[2]) or "") if len(reply) > 2 else ""
    requeued = outcome in (Outcome.REQUEUED, Outcome.SUSPENDED_RESUMED)
    if queue is not None and not in_script and requeued:
        await bus.client.xadd(queue, {"run_id": run_id})  # Cluster: the queue is on its own slot
        detail = "1"
    queued = detail == "1" and queue is not None
    reads = reply[3] if len(reply) > 3 else None
    return Change(outcome, previous, detail, queued=queued, indexed=bus.one_node, reads=reads)


def raise_for(run_id: str, change: Change, wanted: StateType) -> None:
    """The error a refused change means to its caller, if any."""
    if change.outcome is Outcome.MISSING:
        raise FlowRunNotFound(run_id)
    if change.outcome in (Outcome.CONFLICT, Outcome.SUPERSEDED):
        current = change.previous.value if change.previous else "?"
        raise StateConflict(run_id, current, wanted.value)


async def follow(
    change: Change,
    run_id: str,
    state: State,
    *,
    previous: StateType | None = None,
    pause_deadline_ms: int | None = None,
) -> None:
    """In Cluster, follow a script's state change in the global indexes and event stream
    (on standalone Redis the script kept them itself)."""
    if not change.indexed:
        await indexes.index_state(
            run_id,
            state,
            previous=previous or change.previous,
            pause_deadline_ms=pause_deadline_ms,
        )
