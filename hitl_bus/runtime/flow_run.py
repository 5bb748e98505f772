"""``hitl_bus.runtime.flow_run.id`` and friends: the current run, or ``None`` outside one."""

from __future__ import annotations

from typing import Any

from hitl_bus.context import current_run

__all__ = ["flow_name", "id", "name", "parameters"]  # noqa: F822 - served by __getattr__


def __getattr__(attribute: str) -> Any:
    if attribute not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
    ctx = current_run()
    if ctx is None:
        return {} if attribute == "parameters" else None
    return getattr(ctx.flow_run, attribute)
