"""Typed inputs: ``RunInput``, sending, receiving, responding, inboxes."""

from hitl_bus._sync import dual
from hitl_bus.inputs.keyset import Keyset, keyset_from_base_key
from hitl_bus.inputs.messaging import asend_input, receive_input
from hitl_bus.inputs.receiving import InputReceiver
from hitl_bus.inputs.run_input import (
    AutomaticRunInput,
    RunInput,
    RunInputMetadata,
    run_input_subclass_from_type,
)

send_input = dual(asend_input)

__all__ = [
    "AutomaticRunInput",
    "InputReceiver",
    "Keyset",
    "RunInput",
    "RunInputMetadata",
    "asend_input",
    "keyset_from_base_key",
    "receive_input",
    "run_input_subclass_from_type",
    "send_input",
]
