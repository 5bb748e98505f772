"""The audit trail: events appended to a run's stream and to the global one."""

from __future__ import annotations

import time
from typing import Any

from hitl_bus import keys
from hitl_bus.bus.codec import dumps


def event_fields(kind: str, run_id: str, data: dict[str, Any]) -> dict[str, bytes | str]:
    """The fields of one event entry: its kind, the run, a timestamp (ms) and JSON data."""
    return {"type": kind, "run_id": run_id, "ts": str(int(time.time() * 1000)), "data": dumps(data)}


def append_event(pipe: Any, run_id: str, kind: str, data: dict[str, Any], maxlen: int) -> None:
    """Queue the XADDs of one event, to the run's event stream and the global one, on ``pipe``."""
    fields = event_fields(kind, run_id, data)
    pipe.xadd(keys.run_events(run_id), fields, maxlen=maxlen, approximate=True)
    pipe.xadd(keys.EVENTS, fields, maxlen=maxlen, approximate=True)
