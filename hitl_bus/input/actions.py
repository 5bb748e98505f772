"""Prefect's ``prefect.input.actions``: inputs stored on a run, by key.

Re-exports; each function is defined in :mod:`hitl_bus.inputs.actions`.
"""

from hitl_bus.inputs.actions import (
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
from hitl_bus.inputs.run_input import FlowRunInput

__all__ = [
    "FlowRunInput",
    "acreate_flow_run_input",
    "acreate_flow_run_input_from_model",
    "adelete_flow_run_input",
    "afilter_flow_run_input",
    "aread_flow_run_input",
    "create_flow_run_input",
    "create_flow_run_input_from_model",
    "delete_flow_run_input",
    "filter_flow_run_input",
    "read_flow_run_input",
]
