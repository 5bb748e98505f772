"""Prefect's ``prefect.states``: state types, details and constructors.

Re-exports; each name is defined in :mod:`hitl_bus.engine.states`.
"""

from hitl_bus.engine.states import (
    TERMINAL_STATES,
    AwaitingRetry,
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    StateDetails,
    StateType,
    Suspended,
)

__all__ = [
    "TERMINAL_STATES",
    "AwaitingRetry",
    "Cancelled",
    "Cancelling",
    "Completed",
    "Crashed",
    "Failed",
    "Paused",
    "Pending",
    "Retrying",
    "Running",
    "Scheduled",
    "State",
    "StateDetails",
    "StateType",
    "Suspended",
]
