"""Run ids: one canonical text form for whatever a caller passes (a leaf any layer uses)."""

from __future__ import annotations

import os
import uuid

from hitl_bus.errors import FlowRunNotFound


def uuid4_text() -> str:
    """A random UUID's text, as ``str(uuid.uuid4())`` gives it, at a third of the cost.

    Made from 16 random bytes directly, with the version 4 and variant bits set as
    ``uuid.uuid4()`` sets them: ids drawn on every send and state change.
    """
    raw = int.from_bytes(os.urandom(16)) & _UUID4_CLEAR | _UUID4_SET
    h = f"{raw:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


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
