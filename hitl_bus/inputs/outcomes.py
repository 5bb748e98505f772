"""What became of an input a run received: taken by its receiver, or skipped and why.

A receiver records ``input.taken`` (the input's key) on the run's event stream when it
hands an input out; flow code that reads an input and decides not to act on it says so
with :func:`reject_input`, which records ``input.skipped`` with the key and the reason.
A UI shows the sender what happened to each input from these events.
"""

from __future__ import annotations

import uuid
from typing import Any

from hitl_bus._sync import dual
from hitl_bus.bus import get_bus
from hitl_bus.bus.events import record_event
from hitl_bus.context import current_run_id
from hitl_bus.inputs.keyset import FLOW_RUN, Mailbox
from hitl_bus.inputs.receiving import InputReceiver, record_taken_now

#: A reason is a sentence for a person; a longer one is cut here.
MAX_REASON = 500


def _which(received: Any, flow_run_id: uuid.UUID | str | None) -> tuple[str | None, str]:
    """The run that received the input (``None``: not a run) and the input's key."""
    if isinstance(received, InputReceiver):
        if received.last_key is None:
            raise ValueError("this receiver has not read an input yet")
        run = received.mailbox.id if received.mailbox.kind == FLOW_RUN else None
        return run, received.last_key
    if isinstance(received, str):
        run_id = flow_run_id if flow_run_id is not None else current_run_id()
        if run_id is None:
            raise ValueError("give flow_run_id: outside a flow run the receiving run is unknown")
        return str(run_id), received
    metadata = getattr(received, "_metadata", None)
    if metadata is None or not getattr(metadata, "key", None):
        raise ValueError(
            "reject_input takes a received input (with its metadata), the receiver that "
            "read it, or an input key"
        )
    receiver = metadata.receiver if flow_run_id is None else flow_run_id
    return (str(receiver) if receiver is not None else None), str(metadata.key)


async def areject_input(
    received: Any, reason: str, *, flow_run_id: uuid.UUID | str | None = None
) -> None:
    """Say that a received input is not taken, and why, on the receiving run's events.

    ``received`` is what the flow got: a received ``RunInput`` (with its metadata), the
    ``InputReceiver`` that read it last (also when its data did not fit the type and
    reading raised ``ValidationError``), or an input key (of the current run, else of
    ``flow_run_id``). The sender sees "Not taken: <reason>". Inputs to an inbox have no
    event stream: nothing is recorded for them.

    :raises ValueError: nothing says which input is meant.
    """
    run_id, key = _which(received, flow_run_id)
    if run_id is None or not await get_bus().client.exists(Mailbox.for_run(run_id).marker_key):
        return  # an inbox's input (or a run that is gone): no event stream to tell
    text = " ".join(str(reason).split())
    if len(text) > MAX_REASON:
        text = f"{text[: MAX_REASON - 1]}…"
    await record_taken_now(str(run_id))  # the input was taken before it was skipped
    await record_event(get_bus(), str(run_id), "input.skipped", {"key": key, "reason": text})


reject_input = dual(areject_input)
