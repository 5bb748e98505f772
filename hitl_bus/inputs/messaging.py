"""The front doors of the input layer: ``send_input``, ``respond``, ``receive_input``.

They take what a user has (a plain value, a pydantic model, a ``RunInput``, a type)
and turn it into the ``RunInput`` that travels, then hand it to the mechanics below
(``sending``, ``receiving``), which know nothing of ``RunInput`` itself.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypeVar, overload

from pydantic import BaseModel

from hitl_bus.inputs import sending
from hitl_bus.inputs.keyset import Mailbox
from hitl_bus.inputs.receiving import InputReceiver
from hitl_bus.inputs.run_input import (
    AutomaticRunInput,
    RunInput,
    is_automatic,
    run_input_subclass_from_type,
    wire_form,
)

T = TypeVar("T")
RI = TypeVar("RI", bound=RunInput)
M = TypeVar("M", bound=BaseModel)


async def deliver(
    target: Mailbox,
    value: Any,
    *,
    sender: str | None = None,
    key_prefix: str | None = None,
    key: str | None = None,
) -> str:
    """Append ``value`` (any value ``send_input`` takes) to ``target``; returns its key.

    See :func:`hitl_bus.inputs.sending.deliver_payload` for the checks every input passes.
    """
    payload, default_prefix = wire_form(value)
    return await sending.deliver_payload(
        target, payload, key_prefix=key_prefix or default_prefix, sender=sender, key=key
    )


async def asend_input(
    run_input: Any,
    flow_run_id: uuid.UUID | str,
    sender: str | None = None,
    key_prefix: str | None = None,
    key: str | None = None,
) -> None:
    """Send ``run_input`` to a flow run; returns once Redis has acknowledged it.

    ``run_input`` is a ``RunInput``/``BaseModel`` instance or a plain value (sent as an
    automatic input with one field ``value``). ``sender`` defaults to the person acting
    (``hitl.user.<name>``: ``context.acting(...)``), else the current run, else this
    process's inbox, so the receiver can ``respond()`` (to a person, into their mailbox).

    ``key`` is the input's key (lowercase letters, digits, single dashes), else one is
    drawn as ``{key_prefix}-{uuid4}``. A run stores each key once: sending again with a
    key it already has succeeds without a second copy, so an application that got
    ``BusConnectionError`` (the send may or may not have landed) can simply repeat it.

    :raises FlowRunNotFound: no such run.
    :raises InputRejected: the run receives on this key prefix and the input does not
        match its type (``.errors`` per field); nothing was stored. A run that has not
        started receiving yet accepts any input.
    :raises PayloadTooLarge: the encoded input is over ``HITL_BUS_MAX_PAYLOAD_BYTES``.
    :raises BusConnectionError: Redis stayed unreachable for ``HITL_BUS_RECONNECT_TIMEOUT``.
    """
    await deliver(
        Mailbox.for_run(flow_run_id), run_input, sender=sender, key_prefix=key_prefix, key=key
    )


async def asend_inputs(
    run_inputs: Iterable[Any],
    flow_run_id: uuid.UUID | str,
    key_prefix: str | None = None,
    sender: str | None = None,
    keys: Sequence[str | None] | None = None,
) -> list[str]:
    """Send many inputs to one flow run in one round trip; returns their keys, in order.

    Each of ``run_inputs`` is what ``send_input`` takes (a value, a model or a
    ``RunInput``); ``key_prefix`` applies to all of them (default: each input's own),
    ``keys`` gives each input's key (``None`` in it, or no ``keys``: drawn). The batch
    is stored in one atomic step with ``send_input``'s guarantees per input: each is
    checked against the receiver's type, a key the run already has is not stored
    again (so a batch sent again after ``BusConnectionError`` is stored once), and the
    inputs reach each receiver in the order given.

    :raises FlowRunNotFound: no such run; nothing stored.
    :raises InputRejected: an input does not match its receiver's type; ``.index`` is
        its position in ``run_inputs``. None of the batch was stored.
    :raises PayloadTooLarge: an encoded input is over ``HITL_BUS_MAX_PAYLOAD_BYTES``.
    :raises ValueError: ``keys`` is not as long as ``run_inputs``.
    """
    forms = [wire_form(value) for value in run_inputs]
    given: Sequence[str | None] = [None] * len(forms) if keys is None else list(keys)
    if len(given) != len(forms):
        raise ValueError(f"{len(given)} keys for {len(forms)} inputs")
    items = [
        (payload, key_prefix or default_prefix, key)
        for (payload, default_prefix), key in zip(forms, given, strict=True)
    ]
    return await sending.deliver_payloads(Mailbox.for_run(flow_run_id), items, sender=sender)


async def arespond(
    received: RunInput,
    run_input: Any,
    sender: str | None = None,
    key_prefix: str | None = None,
    key: str | None = None,
) -> None:
    """Send ``run_input`` to the sender of ``received`` (its flow run or its client inbox).

    ``key`` as for ``send_input``: a reply sent again with the same key is stored once.
    A run receiving on the key prefix refuses a reply that does not match its type
    (``InputRejected``), as for ``send_input``.

    :raises NotAnswerable: (a ``RuntimeError``) ``received`` has no sender to answer.
    """
    await received.arespond(run_input, sender=sender, key_prefix=key_prefix, key=key)


@functools.lru_cache(maxsize=1024)
def _receiving_as(input_cls: type[RunInput]) -> tuple[bool, str]:
    """Whether receivers of ``input_cls`` hand out ``.value``, and its default key prefix:
    worked out once per class, not per receiver (10,000 receivers started at once)."""
    return is_automatic(input_cls), input_cls.default_key_prefix()


# Typed by what the iterator yields: an instance of a model class, a plain value of a
# built-in type, or that value's automatic input (``.value``, ``.metadata``, ``.respond``)
# with ``with_metadata=True``. A model class matches before the plain-type overloads.
@overload
def receive_input(  # type: ignore[overload-overlap]
    input_type: type[RI],
    timeout: float | None = 3600,
    poll_interval: float = 10,
    raise_timeout_error: bool = False,
    exclude_keys: Iterable[str] | None = None,
    key_prefix: str | None = None,
    flow_run_id: uuid.UUID | str | None = None,
    with_metadata: bool = False,
    consumer: str | None = None,
) -> InputReceiver[RI]: ...
@overload
def receive_input(  # type: ignore[overload-overlap]
    input_type: type[M],
    timeout: float | None = 3600,
    poll_interval: float = 10,
    raise_timeout_error: bool = False,
    exclude_keys: Iterable[str] | None = None,
    key_prefix: str | None = None,
    flow_run_id: uuid.UUID | str | None = None,
    with_metadata: bool = False,
    consumer: str | None = None,
) -> InputReceiver[M]: ...
@overload
def receive_input(
    input_type: type[T],
    timeout: float | None = 3600,
    poll_interval: float = 10,
    raise_timeout_error: bool = False,
    exclude_keys: Iterable[str] | None = None,
    key_prefix: str | None = None,
    flow_run_id: uuid.UUID | str | None = None,
    with_metadata: Literal[False] = False,
    consumer: str | None = None,
) -> InputReceiver[T]: ...
@overload
def receive_input(
    input_type: type[T],
    timeout: float | None = 3600,
    poll_interval: float = 10,
    raise_timeout_error: bool = False,
    exclude_keys: Iterable[str] | None = None,
    key_prefix: str | None = None,
    flow_run_id: uuid.UUID | str | None = None,
    *,
    with_metadata: Literal[True],
    consumer: str | None = None,
) -> InputReceiver[AutomaticRunInput[T]]: ...
@overload
def receive_input(
    input_type: Any,
    timeout: float | None = 3600,
    poll_interval: float = 10,
    raise_timeout_error: bool = False,
    exclude_keys: Iterable[str] | None = None,
    key_prefix: str | None = None,
    flow_run_id: uuid.UUID | str | None = None,
    with_metadata: bool = False,
    consumer: str | None = None,
) -> InputReceiver[Any]: ...
def receive_input(
    input_type: Any,
    timeout: float | None = 3600,
    poll_interval: float = 10,
    raise_timeout_error: bool = False,
    exclude_keys: Iterable[str] | None = None,
    key_prefix: str | None = None,
    flow_run_id: uuid.UUID | str | None = None,
    with_metadata: bool = False,
    consumer: str | None = None,
) -> InputReceiver[Any]:
    """Iterate every input of ``input_type`` sent to a run, oldest first.

    The run is ``flow_run_id``, else the current run, else (outside any run) this
    process's inbox. ``timeout`` bounds each wait for the next input (``None``:
    forever); on timeout iteration ends, or raises ``TimeoutError`` with
    ``raise_timeout_error=True``. An input that fails validation raises
    ``pydantic.ValidationError`` once and is skipped after that. ``consumer``
    names a server-side cursor (a consumer group) that survives restarts.
    ``poll_interval`` is accepted for compatibility: delivery is pushed.
    """
    del poll_interval
    input_cls = run_input_subclass_from_type(input_type)
    unwrap, default_prefix = _receiving_as(input_cls)
    return InputReceiver(
        input_cls,
        unwrap=unwrap,
        key_prefix=key_prefix or default_prefix,
        timeout=timeout,
        raise_timeout_error=raise_timeout_error,
        exclude_keys=exclude_keys,
        flow_run_id=flow_run_id,
        with_metadata=with_metadata,
        consumer=consumer,
    )
