"""Flow runs: states, the ``@flow`` decorator, run context and run logs."""

from hitl_bus.engine.flows import Flow, flow, run_flow, start_flow_run
from hitl_bus.engine.logger import get_run_logger
from hitl_bus.engine.runs import FlowRun, create_flow_run, read_flow_run, read_flow_runs, set_state
from hitl_bus.engine.states import TERMINAL_STATES, State, StateType

__all__ = [
    "TERMINAL_STATES",
    "Flow",
    "FlowRun",
    "State",
    "StateType",
    "create_flow_run",
    "flow",
    "get_run_logger",
    "read_flow_run",
    "read_flow_runs",
    "run_flow",
    "set_state",
    "start_flow_run",
]
