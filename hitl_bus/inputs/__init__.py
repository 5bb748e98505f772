"""Typed inputs: ``RunInput``, sending, receiving, responding, inboxes."""

from hitl_bus._sync import dual
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
from hitl_bus.inputs.keyset import Keyset, keyset_from_base_key
from hitl_bus.inputs.messaging import asend_input, asend_inputs, receive_input
from hitl_bus.inputs.outcomes import areject_input, reject_input
from hitl_bus.inputs.receiving import InputReceiver
from hitl_bus.inputs.run_input import (
    AutomaticRunInput,
    FlowRunInput,
    RunInput,
    RunInputMetadata,
    run_input_subclass_from_type,
)

send_input = dual(asend_input)
send_inputs = dual(asend_inputs)

__all__ = [
    "AutomaticRunInput",
    "FlowRunInput",
    "InputReceiver",
    "Keyset",
    "RunInput",
    "RunInputMetadata",
    "acreate_flow_run_input",
    "acreate_flow_run_input_from_model",
    "adelete_flow_run_input",
    "afilter_flow_run_input",
    "aread_flow_run_input",
    "areject_input",
    "asend_input",
    "asend_inputs",
    "create_flow_run_input",
    "create_flow_run_input_from_model",
    "delete_flow_run_input",
    "filter_flow_run_input",
    "keyset_from_base_key",
    "read_flow_run_input",
    "receive_input",
    "reject_input",
    "run_input_subclass_from_type",
    "send_input",
    "send_inputs",
]
