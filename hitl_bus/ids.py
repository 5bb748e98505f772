"""Run ids: one canonical text form for whatever a caller passes (a leaf any layer uses)."""

from __future__ import annotations

import uuid

from hitl_bus.errors import FlowRunNotFound


def normalize_run_id(flow_run_id: uuid.UUID | str) -> str:
    """The canonical string form of a run id; anything else is an unknown run."""
    try:
        return str(flow_run_id if isinstance(flow_run_id, uuid.UUID) else uuid.UUID(flow_run_id))
    except (TypeError, ValueError, AttributeError):
        raise FlowRunNotFound(
            flow_run_id, f"{flow_run_id!r} is not a flow run id (expected a UUID)"
        ) from None
