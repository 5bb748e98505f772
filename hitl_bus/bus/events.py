"""The audit trail: events appended to a run's stream and to the global one."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from hitl_bus import keys
from hitl_bus.bus.codec import dumps
from hitl_bus.bus.core import Bus


def event_fields(kind: str, run_id: str, data: dict[str, Any]) -> dict[str, bytes | str]:
    """The fields of one event entry: its kind, the run, a timestamp (ms) and JSON data."""
    return {"type": kind, "run_id": run_id, "ts": str(int(time.time() * 1000)), "data": dumps(data)}


def append_event(pipe: Any, bus: Bus, run_id: str, kind: str, data: dict[str, Any]) -> None:
    """Queue the XADDs of one event, to the run's event stream and to the run's bucket of
    the global one, on ``pipe``."""
    fields = event_fields(kind, run_id, data)
    maxlen = bus.settings.events_maxlen
    pipe.xadd(keys.run_events(run_id), fields, maxlen=maxlen, approximate=True)
    pipe.xadd(keys.events_of(run_id, bus.index_shards), fields, maxlen=maxlen, approximate=True)


# KEYS: the streams to append the events to. ARGV: maxlen, type, run id, ts (ms), then each
# event's data JSON.
_APPEND = """
for i = 1, #KEYS do
  for j = 5, #ARGV do
    redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], '*',
               'type', ARGV[2], 'run_id', ARGV[3], 'ts', ARGV[4], 'data', ARGV[j])
  end
end
return #KEYS
"""


async def record_event(bus: Bus, run_id: str, kind: str, data: dict[str, Any]) -> None:
    """Append one event to the run's event stream and to its bucket of the global one."""
    await record_events(bus, run_id, kind, [data])


async def record_events(bus: Bus, run_id: str, kind: str, datas: Sequence[dict[str, Any]]) -> None:
    """Append events of one kind, in order, to the run's event stream and to its bucket of
    the global one.

    One script call where both are on one node (a pipeline costs several times more
    Python); in Cluster, where they are on two slots, a pipeline of the XADDs. Retried
    like any command, so a lost reply may double an event: readers take events as news
    of a change, never as a count.
    """
    if not datas:
        return
    if bus.one_node:
        ts = str(int(time.time() * 1000))
        streams = [keys.run_events(run_id), keys.events_of(run_id, bus.index_shards)]
        args = [bus.settings.events_maxlen, kind, run_id, ts, *(dumps(d) for d in datas)]
        await bus.eval(_APPEND, streams, args)
        return
    async with bus.client.pipeline(transaction=False) as pipe:
        for data in datas:
            append_event(pipe, bus, run_id, kind, data)
        await pipe.execute()
