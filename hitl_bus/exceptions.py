"""Prefect's ``prefect.exceptions``: hitl_bus's errors, also under Prefect's names.

``except prefect.exceptions.X`` becomes ``except hitl_bus.exceptions.X`` for every X
Prefect raises from its interactive-workflow API. Re-exports; each error is defined in
:mod:`hitl_bus.errors`, whose docstring draws the tree.
"""

from hitl_bus.errors import (
    BlockNotFound,
    BusConnectionError,
    DeploymentNotFound,
    FlowPauseTimeout,
    FlowRunCancelled,
    FlowRunNotFound,
    FlowRunSuspended,
    FlowRunTimeoutError,
    FlowRunWaitTimeout,
    HitlBusError,
    InboxNotFound,
    InputNotFound,
    InputRejected,
    MissingContextError,
    NotAnswerable,
    NotPausedError,
    ObjectAlreadyExists,
    ObjectNotFound,
    ParameterMismatch,
    PayloadTooLarge,
    ReceiveTimeout,
    ResumeRejected,
    StateConflict,
    SubflowSuspendError,
    TaskResultNotJSON,
)

#: Prefect's base class of its errors.
PrefectException = HitlBusError
#: Prefect's signal that a run suspended and its execution ended.
Pause = FlowRunSuspended
#: Prefect's error for a run that was cancelled.
CancelledRun = FlowRunCancelled
#: Prefect's error for parameters that fail the flow's annotations.
ParameterTypeError = ParameterMismatch

__all__ = [
    "BlockNotFound",
    "BusConnectionError",
    "CancelledRun",
    "DeploymentNotFound",
    "FlowPauseTimeout",
    "FlowRunCancelled",
    "FlowRunNotFound",
    "FlowRunSuspended",
    "FlowRunTimeoutError",
    "FlowRunWaitTimeout",
    "HitlBusError",
    "InboxNotFound",
    "InputNotFound",
    "InputRejected",
    "MissingContextError",
    "NotAnswerable",
    "NotPausedError",
    "ObjectAlreadyExists",
    "ObjectNotFound",
    "ParameterMismatch",
    "ParameterTypeError",
    "Pause",
    "PayloadTooLarge",
    "PrefectException",
    "ReceiveTimeout",
    "ResumeRejected",
    "StateConflict",
    "SubflowSuspendError",
    "TaskResultNotJSON",
]
