"""Prefect's ``prefect.input``: run inputs under Prefect's module path.

``from prefect.input import RunInput`` becomes ``from hitl_bus.input import RunInput``.
Re-exports; each name is defined in :mod:`hitl_bus.inputs`.
"""

from hitl_bus.input.actions import (
    FlowRunInput,
    acreate_flow_run_input,
    acreate_flow_run_input_from_model,
    adelete_flow_run_input,
    afilter_flow_run_input,
    aread_flow_run_input,
    create_flow_run_input,
    create_flow_run_input_from_model,
    delete_flow_run_input,
    filter_flow_run_input,
    read_flow_run_input,
)
from hitl_bus.input.run_input import (
    AutomaticRunInput,
    GetAutomaticInputHandler,
    GetInputHandler,
    InputReceiver,
    Keyset,
    RunInput,
    RunInputMetadata,
    asend_input,
    keyset_from_base_key,
    keyset_from_paused_state,
    receive_input,
    run_input_subclass_from_type,
    send_input,
)

__all__ = [
    "AutomaticRunInput",
    "FlowRunInput",
    "GetAutomaticInputHandler",
    "GetInputHandler",
    "InputReceiver",
    "Keyset",
    "RunInput",
    "RunInputMetadata",
    "acreate_flow_run_input",
    "acreate_flow_run_input_from_model",
    "adelete_flow_run_input",
    "afilter_flow_run_input",
    "aread_flow_run_input",
    "asend_input",
    "create_flow_run_input",
    "create_flow_run_input_from_model",
    "delete_flow_run_input",
    "filter_flow_run_input",
    "keyset_from_base_key",
    "keyset_from_paused_state",
    "read_flow_run_input",
    "receive_input",
    "run_input_subclass_from_type",
    "send_input",
]
