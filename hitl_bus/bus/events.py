"""The audit trail: events appended to a run's stream and to the global one."""

from __future__ import annotations

import time
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
