"""Every error hitl_bus raises on purpose.

    HitlBusError                 (Prefect's PrefectException)
    ├── ObjectNotFound           something named does not exist (LookupError)
    │   ├── FlowRunNotFound      the run id names no flow run (or is not a run id)
    │   ├── InboxNotFound        a reply went to a client inbox that expired
    │   ├── DeploymentNotFound   no deployment of that name
    │   ├── BlockNotFound        no block saved under that name
    │   └── InputNotFound        no response saved, and the type has no defaults
    ├── NotAnswerable            respond() on an input whose sender has no mailbox (RuntimeError)
    ├── NotPausedError           resume of a run that is not paused
    ├── ResumeRejected           resume input failed the saved schema (ValueError)
    ├── InputRejected            a sent input failed its receiver's schema (ValueError)
    ├── ObjectAlreadyExists      a run already has an input under that key
    ├── FlowPauseTimeout         a pause was not resumed in time (TimeoutError)
    ├── ReceiveTimeout           no input arrived within receive_input's timeout (TimeoutError)
    ├── FlowRunWaitTimeout       wait_for_flow_run's timeout passed first (TimeoutError)
    ├── FlowRunTimeoutError      a flow's body ran past its timeout_seconds (TimeoutError)
    ├── PayloadTooLarge          an encoded input is over the size limit (ValueError)
    ├── ParameterMismatch        parameters do not fit the flow's signature (TypeError)
    ├── FlowRunSuspended         a directly called flow's run suspended
    ├── SubflowSuspendError      suspend_flow_run() in a subflow's run (RuntimeError)
    ├── FlowRunCancelled         a directly called flow's run was cancelled
    ├── MissingContextError      a run-only function was called outside a flow run
    ├── StateConflict            a run was not in a state the change may follow
    ├── TaskResultNotJSON        a task returned something that cannot be kept as JSON (TypeError)
    ├── ReplicationTimeout       a write was not confirmed by HITL_BUS_MIN_REPLICAS replicas
    └── BusConnectionError       Redis could not be reached (ConnectionError)

Redis client errors are translated to these only in ``hitl_bus.bus``. Where Prefect has
a name for one, ``hitl_bus.exceptions`` gives it under that name too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class HitlBusError(Exception):
    """Base class of every error hitl_bus raises on purpose."""


class ObjectNotFound(HitlBusError, LookupError):
    """Something named (a run, an inbox, a deployment, a block) does not exist."""


class FlowRunNotFound(ObjectNotFound):
    """The id names no flow run, or is not a flow run id at all."""

    def __init__(self, flow_run_id: object, reason: str | None = None) -> None:
        self.flow_run_id = flow_run_id
        super().__init__(reason or f"flow run {flow_run_id!s} does not exist")


class InboxNotFound(ObjectNotFound):
    """A message went to a client inbox that expired or never existed."""

    def __init__(self, inbox_id: str) -> None:
        self.inbox_id = inbox_id
        super().__init__(f"client inbox {inbox_id} does not exist (it expires an hour after use)")


class NotAnswerable(HitlBusError, RuntimeError):
    """``respond()`` was called on an input whose sender has no mailbox to answer.

    A ``RuntimeError`` too, as Prefect raises for an input not sent by a flow run.
    """

    def __init__(self, sender: str | None) -> None:
        self.sender = sender
        who = "it has no sender" if sender is None else f"its sender is {sender!r}"
        super().__init__(
            f"cannot respond to this input: {who}; only inputs sent by 'hitl.flow-run.<id>' "
            "or 'hitl.client.<id>' can be answered"
        )


class NotAllowed(HitlBusError, PermissionError):
    """The acting person may not do this (their role, or a pause's assignees); nothing changed.

    The message is the plain reason, fit to show them (the API answers 403 with it).
    """


class NotPausedError(HitlBusError):
    """A resume was attempted on a run that is not paused (or already resumed)."""


class ResumeRejected(HitlBusError, ValueError):
    """Resume input does not match the pause's saved JSON schema; nothing changed."""

    def __init__(self, message: str, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        self.errors = list(errors)
        super().__init__(message)


class InputRejected(HitlBusError, ValueError):
    """A sent input does not match the schema its receiver announced; nothing was stored.

    ``errors`` names each failing field (``{"loc": [...], "msg": ...}``, as for
    ``ResumeRejected``); ``reason`` is the message without them, for a form that
    shows the fields beside their boxes. From ``send_inputs``, ``index`` is the
    position of the refused input in the batch (none of the batch was stored).
    """

    reason = "the input does not match the receiver's type"

    def __init__(
        self,
        key_prefix: str,
        errors: Sequence[Mapping[str, Any]],
        summary: str = "",
        *,
        index: int | None = None,
    ) -> None:
        self.key_prefix = key_prefix
        self.errors = list(errors)
        self.index = index
        message = self.reason
        if index is not None:
            message = f"input {index} of the batch: {message}"
        super().__init__(f"{message} ({key_prefix}): {summary}" if summary else message)


class ObjectAlreadyExists(HitlBusError):
    """A run already has an input under that key; nothing was changed (Prefect's name)."""

    def __init__(self, flow_run_id: str, key: str) -> None:
        self.flow_run_id = flow_run_id
        self.key = key
        super().__init__(f"flow run {flow_run_id} already has an input under key {key!r}")


class InputNotFound(ObjectNotFound):
    """Nothing is saved under a key, and the input type cannot be built from its defaults."""


class FlowPauseTimeout(HitlBusError, TimeoutError):
    """A paused run was not resumed before its deadline."""


class ReceiveTimeout(HitlBusError, TimeoutError):
    """No input arrived within ``receive_input``'s timeout."""


class FlowRunWaitTimeout(HitlBusError, TimeoutError):
    """A run did not reach a final state within ``wait_for_flow_run``'s timeout."""


class FlowRunTimeoutError(HitlBusError, TimeoutError):
    """A flow's body ran longer than its ``timeout_seconds``; the run is Failed ("TimedOut")."""


class PayloadTooLarge(HitlBusError, ValueError):
    """An encoded input is larger than ``HITL_BUS_MAX_PAYLOAD_BYTES``."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"input is {size} bytes encoded, over the limit of {limit} bytes")


class DeploymentNotFound(ObjectNotFound):
    """No deployment is registered under that name."""


class ParameterMismatch(HitlBusError, TypeError):
    """Parameters do not fit a flow's signature; no run was created or queued.

    Raised by ``run_deployment`` and by calling a flow that validates its parameters.
    ``errors`` names the failing parameters (``{"loc": [...], "msg": ...}``) when their
    values do not match the flow's annotations.
    """

    def __init__(self, message: str, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        self.errors = list(errors)
        super().__init__(message)


class BlockNotFound(ObjectNotFound):
    """No block is saved under that name."""


class FlowRunSuspended(HitlBusError):
    """The run of a directly called flow suspended; resume it to continue."""

    def __init__(self, flow_run_id: str) -> None:
        self.flow_run_id = flow_run_id
        super().__init__(f"flow run {flow_run_id} suspended")


class SubflowSuspendError(HitlBusError, RuntimeError):
    """``suspend_flow_run()`` was called in a subflow: only a top-level run can suspend."""


class FlowRunCancelled(HitlBusError):
    """The run of a directly called flow was cancelled; it stopped at a checkpoint."""

    def __init__(self, flow_run_id: str) -> None:
        self.flow_run_id = flow_run_id
        super().__init__(f"flow run {flow_run_id} was cancelled")


class MissingContextError(HitlBusError, RuntimeError):
    """A function that needs a flow run was called outside one."""


class StateConflict(HitlBusError):
    """A run was not in a state the requested change may follow (e.g. completing a paused run)."""

    def __init__(self, flow_run_id: str, current: str, wanted: str) -> None:
        self.flow_run_id = flow_run_id
        self.current = current
        super().__init__(f"flow run {flow_run_id} is {current}; it cannot become {wanted}")


class TaskResultNotJSON(HitlBusError, TypeError):
    """A task returned a value that cannot be stored as JSON for replay."""


class ReplicationTimeout(HitlBusError):
    """The primary stored a write, but fewer replicas than ``HITL_BUS_MIN_REPLICAS`` confirmed
    it in time: it may be lost if the primary fails now. Retrying the call is safe (sends and
    state changes are recognised when repeated) and waits for the replicas again."""

    def __init__(self, confirmed: int, wanted: int, timeout_ms: int) -> None:
        self.confirmed = confirmed
        self.wanted = wanted
        super().__init__(
            f"stored on the primary, but only {confirmed} of {wanted} replica(s) confirmed it "
            f"within {timeout_ms} ms; it could be lost in a failover (retrying is safe)"
        )


class BusConnectionError(HitlBusError, ConnectionError):
    """Redis could not be reached at the configured URL."""
