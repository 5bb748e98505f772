"""Prefect's ``prefect.input.run_input``: typed inputs, sending and receiving them.

Re-exports; each name is defined in :mod:`hitl_bus.inputs`.
"""

from hitl_bus.inputs import (
    AutomaticRunInput,
    InputReceiver,
    Keyset,
    RunInput,
    RunInputMetadata,
    asend_input,
    keyset_from_base_key,
    receive_input,
    run_input_subclass_from_type,
    send_input,
)
from hitl_bus.inputs.keyset import keyset_from_paused_state

#: Prefect's names for what ``receive_input`` and ``RunInput.receive`` return.
GetInputHandler = InputReceiver
GetAutomaticInputHandler = InputReceiver

__all__ = [
    "AutomaticRunInput",
    "GetAutomaticInputHandler",
    "GetInputHandler",
    "InputReceiver",
    "Keyset",
    "RunInput",
    "RunInputMetadata",
    "asend_input",
    "keyset_from_base_key",
    "keyset_from_paused_state",
    "receive_input",
    "run_input_subclass_from_type",
    "send_input",
]
