"""Flow runs: states, the ``@flow`` decorator, run context and run logs."""

from hitl_bus.engine.cancelling import acancel_flow_run, cancel_flow_run
from hitl_bus.engine.flows import Flow, execute_flow_run, run_flow, start_flow_run
from hitl_bus.engine.logger import get_run_logger
from hitl_bus.engine.pausing import (
    apause_flow_run,
    asuspend_flow_run,
    pause_flow_run,
    suspend_flow_run,
)
from hitl_bus.engine.resuming import aresume_flow_run, resume_flow_run
from hitl_bus.engine.runs import (
    FlowRun,
    create_flow_run,
    read_flow_run,
    read_flow_runs,
    set_state,
    sweep_expired,
)
from hitl_bus.engine.states import TERMINAL_STATES, State, StateType
from hitl_bus.engine.tasks import Task, task

__all__ = [
    "TERMINAL_STATES",
    "Flow",
    "FlowRun",
    "State",
    "StateType",
    "Task",
    "acancel_flow_run",
    "apause_flow_run",
    "aresume_flow_run",
    "asuspend_flow_run",
    "cancel_flow_run",
    "create_flow_run",
    "execute_flow_run",
    "get_run_logger",
    "pause_flow_run",
    "read_flow_run",
    "read_flow_runs",
    "resume_flow_run",
    "run_flow",
    "set_state",
    "start_flow_run",
    "suspend_flow_run",
    "sweep_expired",
    "task",
]
