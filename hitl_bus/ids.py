"""Run ids: one canonical text form for whatever a caller passes (a leaf any layer uses)."""

from __future__ import annotations

import uuid

from hitl_bus.errors import FlowRunNotFound


def normalize_run_id(flow_run_id: uuid.UUID | str) -> str:
    """The canonical string form of a run id; anything else is an unknown run."""
    if type(flow_run_id) is str:  # the common case, remembered: a program sends to few runs
        known = _canonical.get(flow_run_id)
        if known is not None:
            return known
        canonical = _parse(flow_run_id)
        if len(_canonical) >= _REMEMBERED:
            _canonical.clear()
        _canonical[flow_run_id] = canonical
        return canonical
    return _parse(flow_run_id)


#: Run ids as given -> their canonical form (emptied when full: a cache, never a record).
_canonical: dict[str, str] = {}
_REMEMBERED = 4096


def _parse(flow_run_id: uuid.UUID | str) -> str:
    try:
        return str(flow_run_id if isinstance(flow_run_id, uuid.UUID) else uuid.UUID(flow_run_id))
    except (TypeError, ValueError, AttributeError):
        raise FlowRunNotFound(
            flow_run_id, f"{flow_run_id!r} is not a flow run id (expected a UUID)"
        ) from None
