"""The global run indexes and the global event stream, from outside the run store's scripts.

On standalone Redis the scripts keep them in the step that changes the run. In Cluster they
live on other slots (one bucket per ``keys.index_shard``), so a state change is followed
here in a pipeline, and runs whose keys have expired are forgotten by a sweep: the run's
own keys expire in Redis, their index entries do not.
"""

from __future__ import annotations

import time
from datetime import datetime

from hitl_bus import keys
from hitl_bus.bus import Bus, get_bus
from hitl_bus.bus.events import event_fields
from hitl_bus.engine.records import state_event
from hitl_bus.engine.states import State, StateType


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def local_ms() -> int:
    return int(time.time() * 1000)


def retention_ms(bus: Bus) -> int:
    """How long a finished run's keys are kept (``HITL_BUS_RUN_RETENTION``), in ms."""
    return int(bus.settings.run_retention * 1000)


async def index_state(
    run_id: str,
    state: State,
    *,
    previous: StateType | None = None,
    pause_deadline_ms: int | None = None,
) -> None:
    """Follow a committed state change in the global indexes and the global event stream.

    ``previous`` (the state the script saw) limits the index removal to one key. A
    final state also schedules the run's removal from the indexes once it expires.
    """
    bus = get_bus()
    ts = ms(state.timestamp)
    at = (keys.index_shard(run_id, bus.index_shards), bus.index_shards)
    async with bus.client.pipeline(transaction=False) as pipe:
        for other in StateType if previous is None else (previous,):
            if other is not state.type:
                pipe.zrem(keys.runs_by_state(other.value, *at), run_id)
        pipe.zadd(keys.runs_by_state(state.type.value, *at), {run_id: ts})
        if pause_deadline_ms:
            pipe.zadd(keys.pause_deadlines(*at), {run_id: pause_deadline_ms})
        elif previous in (None, StateType.PAUSED):
            pipe.zrem(keys.pause_deadlines(*at), run_id)
        if state.is_final() and retention_ms(bus) > 0:
            pipe.zadd(keys.runs_expiring(*at), {run_id: local_ms() + retention_ms(bus)})
        pipe.xadd(
            keys.events(*at),
            event_fields("state.changed", run_id, state_event(state)),
            maxlen=bus.settings.events_maxlen,
            approximate=True,
        )
        await pipe.execute()


async def forget_expired(limit: int = 500) -> int:
    """Remove runs whose keys have expired from every index; returns how many.

    The run's own keys expire in Redis; the indexes live on other slots, so a
    sweep (workers run it with their upkeep) drops the ids whose time has come.
    """
    bus = get_bus()
    forgotten = 0
    for shard in range(bus.index_shards):
        forgotten += await _forget_expired_in(bus, (shard, bus.index_shards), limit)
    return forgotten


async def _forget_expired_in(bus: Bus, at: tuple[int, int], limit: int) -> int:
    """:func:`forget_expired` in one bucket of the indexes (``at``: bucket, buckets)."""
    due = await bus.client.zrangebyscore(keys.runs_expiring(*at), "-inf", local_ms(), 0, limit)
    if not due:
        return 0
    async with bus.client.pipeline(transaction=False) as pipe:
        for raw_id in due:
            pipe.exists(keys.run(raw_id.decode()))
        alive = await pipe.execute()
    gone = [raw_id for raw_id, exists in zip(due, alive, strict=True) if not exists]
    # A run still present (its expiry is a little later on Redis's clock) waits for the next sweep.
    if not gone:
        return 0
    async with bus.client.pipeline(transaction=False) as pipe:
        pipe.zrem(keys.runs(*at), *gone)
        pipe.zrem(keys.pause_deadlines(*at), *gone)
        for state_type in StateType:
            pipe.zrem(keys.runs_by_state(state_type.value, *at), *gone)
        pipe.zrem(keys.runs_expiring(*at), *gone)
        await pipe.execute()
    return len(gone)
