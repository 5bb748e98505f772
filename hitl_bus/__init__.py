"""hitl_bus: human-in-the-loop flows and typed messages over Redis streams.

The names are Prefect's interactive-workflow API; see README.md.
"""

from hitl_bus import errors as errors
from hitl_bus.client import HitlClient, SyncHitlClient, get_client
from hitl_bus.context import FlowRunContext, get_run_context
from hitl_bus.deployments import (
    Deployment,
    Flow,
    Worker,
    arun_deployment,
    flow,
    run_deployment,
    serve,
)
from hitl_bus.engine import (
    TERMINAL_STATES,
    FlowRun,
    State,
    StateType,
    Task,
    apause_flow_run,
    aresume_flow_run,
    asuspend_flow_run,
    execute_flow_run,
    get_run_logger,
    pause_flow_run,
    resume_flow_run,
    start_flow_run,
    suspend_flow_run,
    sweep_expired,
    task,
)
from hitl_bus.inputs import (
    AutomaticRunInput,
    InputReceiver,
    Keyset,
    RunInput,
    RunInputMetadata,
    asend_input,
    asend_inputs,
    keyset_from_base_key,
    receive_input,
    send_input,
    send_inputs,
)
from hitl_bus.version import __version__ as __version__

__all__ = [
    "TERMINAL_STATES",
    "AutomaticRunInput",
    "Deployment",
    "Flow",
    "FlowRun",
    "FlowRunContext",
    "HitlClient",
    "InputReceiver",
    "Keyset",
    "RunInput",
    "RunInputMetadata",
    "State",
    "StateType",
    "SyncHitlClient",
    "Task",
    "Worker",
    "apause_flow_run",
    "aresume_flow_run",
    "arun_deployment",
    "asend_input",
    "asend_inputs",
    "asuspend_flow_run",
    "errors",
    "execute_flow_run",
    "flow",
    "get_client",
    "get_run_context",
    "get_run_logger",
    "keyset_from_base_key",
    "pause_flow_run",
    "receive_input",
    "resume_flow_run",
    "run_deployment",
    "send_input",
    "send_inputs",
    "serve",
    "start_flow_run",
    "suspend_flow_run",
    "sweep_expired",
    "task",
]
