"""``send_input`` and ``respond``: one script call per input.

The script checks that the receiving run (or inbox) exists, refuses a key it
has already accepted, appends the entry, records the stream's key prefix, and,
for a run, appends the ``input.received`` event: one round trip, atomic on the
run's slot. A send from outside any run also renews the sender's inbox in the
same script on standalone Redis (in Cluster the inbox is on another slot, so it
is renewed separately, at most every tenth of its TTL).

Safe to repeat: the input key is fixed before the first try (drawn once per
call, or the caller's ``key=``), so when the bus retries a send whose reply was
lost, or the application sends again with the same ``key=``, the script finds
the key accepted and answers "already there" instead of storing a second copy.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from hitl_bus import keys
from hitl_bus.bus import codec, get_bus
from hitl_bus.bus.events import event_fields
from hitl_bus.context import current_run_id
from hitl_bus.errors import FlowRunNotFound, InboxNotFound, NotAnswerable
from hitl_bus.inputs import inbox
from hitl_bus.inputs.keyset import (
    FLOW_RUN,
    Mailbox,
    check_input_key,
    check_key_prefix,
    new_input_key,
)
from hitl_bus.inputs.run_input import RunInput, as_run_input

# KEYS: target marker, stream, prefix set, key set; then ARGV[9] event streams;
#       then, when ARGV[10] > 0, the sender inbox's marker, prefix set and key set.
# ARGV: key, sender, data, prefix, target ttl ms (0: none), events maxlen, ts ms,
#       owner id, number of event streams, sender inbox ttl ms (0: none), pid, host.
_SEND = """
local nevents = tonumber(ARGV[9])
local renew = tonumber(ARGV[10])
if renew > 0 then
  local first = 5 + nevents
  redis.call('HSET', KEYS[first], 'pid', ARGV[11], 'host', ARGV[12])
  for i = first, first + 2 do redis.call('PEXPIRE', KEYS[i], renew) end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
if redis.call('SADD', KEYS[4], ARGV[1]) == 0 then return {2, ''} end
local id = redis.call('XADD', KEYS[2], '*', 'key', ARGV[1], 'sender', ARGV[2], 'data', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
if nevents > 0 then
  local event = cjson.encode({key = ARGV[1], key_prefix = ARGV[4], sender = ARGV[2]})
  for i = 5, 4 + nevents do
    redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[6], '*',
               'type', 'input.received', 'run_id', ARGV[8], 'ts', ARGV[7], 'data', event)
  end
end
return {1, id}
"""
_ACCEPTED, _MISSING, _DUPLICATE = 1, 0, 2


def default_sender() -> tuple[str, bool]:
    """Who sends: the current run, else this process's inbox (and whether it is the inbox)."""
    run_id = current_run_id()
    if run_id is not None:
        return Mailbox(FLOW_RUN, run_id).name, False
    return inbox.inbox().name, True


async def deliver(
    target: Mailbox,
    value: Any,
    *,
    sender: str | None = None,
    key_prefix: str | None = None,
    key: str | None = None,
) -> str:
    """Append one input to ``target``'s stream for its key prefix; returns the input key.

    A ``key`` already accepted by ``target`` is not stored again and counts as delivered.
    """
    bus = get_bus()
    instance = as_run_input(value)
    prefix = check_key_prefix(key_prefix or type(instance).default_key_prefix())
    # Chosen once, before the first try: every retry of this call carries the same key.
    input_key = new_input_key(prefix) if key is None else check_input_key(key)
    from_inbox = False
    if sender is None:
        sender, from_inbox = default_sender()
    data = codec.check_size(
        codec.dumps(instance.model_dump(mode="json")), bus.settings.max_payload_bytes
    )
    owner = target.id
    script_keys = [
        target.marker_key,
        keys.input_stream(owner, prefix),
        keys.input_streams(owner),
        keys.input_keys(owner),
    ]
    is_run = target.kind == FLOW_RUN
    if is_run:
        script_keys.append(keys.run_events(owner))
        if not bus.cluster:  # the global stream is on another slot in Cluster
            script_keys.append(keys.EVENTS)
    inbox_ttl_ms = int(bus.settings.inbox_ttl * 1000)
    now_ms = int(time.time() * 1000)
    args: list[Any] = [
        input_key, sender, data, prefix, 0 if is_run else inbox_ttl_ms,
        bus.settings.events_maxlen, now_ms, owner, len(script_keys) - 4, 0,
    ]  # fmt: skip
    if from_inbox:  # renew the sender's inbox, so replies can reach it
        if bus.cluster:
            await inbox.renew_if_due(bus)
        else:
            renew_keys, renew_args = inbox.renewal(bus)
            script_keys += renew_keys
            args[9] = inbox_ttl_ms
            args += renew_args
    status = (await bus.eval(_SEND, script_keys, args))[0]
    if status == _MISSING:
        if is_run:
            raise FlowRunNotFound(owner)
        raise InboxNotFound(owner)
    # In Cluster the global event follows on its own: after this call's script stored the
    # input (also when a retry found its own key there: the first try's reply was lost).
    # A doubled ``input.received`` there is harmless: readers of ``hitl:events`` use it as
    # a hint to re-read the run, never as a count.
    stored_now = status == _ACCEPTED or (status == _DUPLICATE and key is None)
    if stored_now and is_run and bus.cluster:
        event = {"key": input_key, "key_prefix": prefix, "sender": sender}
        await bus.client.xadd(
            keys.EVENTS,
            event_fields("input.received", owner, event),
            maxlen=bus.settings.events_maxlen,
            approximate=True,
        )
    return input_key


async def asend_input(
    run_input: Any,
    flow_run_id: uuid.UUID | str,
    sender: str | None = None,
    key_prefix: str | None = None,
    key: str | None = None,
) -> None:
    """Send ``run_input`` to a flow run; returns once Redis has acknowledged it.

    ``run_input`` is a ``RunInput``/``BaseModel`` instance or a plain value (sent as an
    automatic input with one field ``value``). ``sender`` defaults to the current run,
    or outside a run to this process's inbox, so the receiver can ``respond()``.

    ``key`` is the input's key (lowercase letters, digits, single dashes), else one is
    drawn as ``{key_prefix}-{uuid4}``. A run stores each key once: sending again with a
    key it already has succeeds without a second copy, so an application that got
    ``BusConnectionError`` (the send may or may not have landed) can simply repeat it.

    :raises FlowRunNotFound: no such run.
    :raises PayloadTooLarge: the encoded input is over ``HITL_BUS_MAX_PAYLOAD_BYTES``.
    :raises BusConnectionError: Redis stayed unreachable for ``HITL_BUS_RECONNECT_TIMEOUT``.
    """
    await deliver(
        Mailbox.for_run(flow_run_id), run_input, sender=sender, key_prefix=key_prefix, key=key
    )


async def arespond(
    received: RunInput,
    run_input: Any,
    sender: str | None = None,
    key_prefix: str | None = None,
    key: str | None = None,
) -> None:
    """Send ``run_input`` to the sender of ``received`` (its flow run or its client inbox).

    ``key`` as for ``send_input``: a reply sent again with the same key is stored once.
    """
    origin = received.metadata.sender
    target = Mailbox.parse(origin)
    if target is None:
        raise NotAnswerable(origin)
    await deliver(target, run_input, sender=sender, key_prefix=key_prefix, key=key)
