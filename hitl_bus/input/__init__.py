"""Prefect's ``prefect.input``: run inputs under Prefect's module path.

``from prefect.input import RunInput`` becomes ``from hitl_bus.input import RunInput``.
Re-exports; each name is defined in :mod:`hitl_bus.inputs`.
"""

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
