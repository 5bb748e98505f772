"""``hitl_bus.runtime.flow_run.id`` and friends: the current run, or ``None`` outside one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hitl_bus.context import current_run

__all__ = ["flow_name", "id", "name", "parameters", "parent_flow_run_id"]  # served by __getattr__

if TYPE_CHECKING:  # what ``__getattr__`` serves, for type checkers
    id: str | None
    name: str | None
    flow_name: str | None
    parameters: dict[str, Any]
    parent_flow_run_id: str | None


def __getattr__(attribute: str) -> Any:
    if attribute not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
    ctx = current_run()
    if ctx is None:
        return {} if attribute == "parameters" else None
    if attribute == "id":  # Prefect's runtime gives the id as text
        return ctx.flow_run.run_id
    return getattr(ctx.flow_run, attribute)
