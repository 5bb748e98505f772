"""``send_input`` and ``respond``: one script call per input.

The script checks that the receiving run (or inbox) exists, refuses a key it
has already accepted, appends the entry, records the stream's key prefix, and,
for a run, appends the ``input.received`` event: one round trip, atomic on the
run's slot. A send from outside any run also renews the sender's inbox, at most
every tenth of its TTL: in the same script on standalone Redis (which otherwise
only remakes a marker that is gone), separately in Cluster, where the inbox is on
another slot.

Safe to repeat: the input key is fixed before the first try (drawn once per
call, or the caller's ``key=``), so when the bus retries a send whose reply was
lost, or the application sends again with the same ``key=``, the script finds
the key accepted and answers "already there" instead of storing a second copy.

Every front door (``send_input``, ``respond``, the HTTP API, the CLI) sends through
:func:`deliver`, so every sent input is checked against the schema its receiver
announced in ``hitl:{run}:receivers``, in the same script call: the process keeps the
schemas it has seen with their digests, checks the input itself, and passes the digest
it checked against; the script stores the input only while the receiver's schema still
has that digest, and otherwise answers with the current schema (no write) for the
process to check again. A send therefore costs one round trip once the process knows
the receiver's schema, two the first time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from hitl_bus import keys
from hitl_bus.bus import Bus, Remembered, codec, get_bus, read_lua
from hitl_bus.bus.events import event_fields
from hitl_bus.context import current_run_id
from hitl_bus.errors import FlowRunNotFound, InboxNotFound, InputRejected, NotAnswerable
from hitl_bus.inputs import inbox
from hitl_bus.inputs.keyset import (
    FLOW_RUN,
    USER,
    Mailbox,
    acting_person,
    check_input_key,
    check_key_prefix,
    new_input_key,
)
from hitl_bus.schema_check import SchemaChecker, summarize

log = logging.getLogger("hitl_bus.inputs")

#: One input to a mailbox (its KEYS and ARGV are described in the file).
_SEND = read_lua(__file__, "send")
_ACCEPTED, _MISSING, _DUPLICATE, _CHECK = 1, 0, 2, 3

#: Many inputs to one mailbox in one call, all stored or none.
_SEND_MANY = read_lua(__file__, "send_many")

# Receiver schemas this process has seen: (run id, key prefix) -> (digest, a checker built
# once for it, or None when it is not JSON). Only a hint: the script
# confirms the digest on every send, and an input the cached schema refuses is checked
# against the current one before it is refused, so a stale entry costs a round trip,
# never a wrong answer.
_Known = tuple[bytes, SchemaChecker | None]
_SCHEMAS: dict[tuple[str, str], _Known] = {}
_SCHEMAS_LOCK = threading.Lock()  # sync flows send from threads of their own
_SCHEMAS_MAX = 1024


def _known_digest(owner: str, prefix: str, payload: Any) -> bytes:
    """The digest of the receiver schema ``payload`` passes, if this process knows one.

    ``b""`` when the schema is unknown or refuses the input: the script then answers
    with the current schema, so nothing is refused on a stale copy.
    """
    with _SCHEMAS_LOCK:
        known = _SCHEMAS.get((owner, prefix))
    if known is None:
        return b""
    digest, checker = known
    if checker is not None and checker.errors(payload):
        return b""
    return digest


def _check(
    owner: str,
    prefix: str,
    payload: Any,
    raw_schema: bytes,
    digest: bytes,
    *,
    index: int | None = None,
) -> bytes:
    """Check ``payload`` against the receiver's current schema; returns its digest.

    :raises InputRejected: the input does not match the schema (``index``: its place in
        a batch).
    """
    try:
        schema: dict[str, Any] | None = codec.loads(raw_schema)
    except ValueError:  # not UTF-8 or not JSON: readers leave it out, so does the check
        log.warning("receiver schema of %s on %s is not valid JSON; not checked", prefix, owner)
        schema = None
    if not isinstance(schema, dict):
        schema = None
    checker = None if schema is None else SchemaChecker(schema)
    with _SCHEMAS_LOCK:
        if len(_SCHEMAS) >= _SCHEMAS_MAX and (owner, prefix) not in _SCHEMAS:
            del _SCHEMAS[next(iter(_SCHEMAS))]  # the oldest entry
        _SCHEMAS[(owner, prefix)] = (digest, checker)
    errors = checker.errors(payload) if checker is not None else []
    if errors:
        raise InputRejected(prefix, errors, summarize(errors), index=index)
    return digest


class _SendKeys(Remembered[tuple[str, str, str], tuple[str, ...]]):
    """A bus's send script keys (without the sender inbox's) by receiver kind, owner and key
    prefix: made once, not on every send. Only names: nothing about Redis's contents."""

    limit = 1024


def _send_keys(bus: Bus, target: Mailbox, prefix: str) -> tuple[str, ...]:
    """The keys ``_SEND`` takes for an input of ``prefix`` to ``target``, up to its events."""
    known = bus.kept(_SendKeys)
    found = known.get((target.kind, target.id, prefix))
    if found is not None:
        return found
    owner = target.owner
    script_keys = [
        target.marker_key,
        keys.input_stream(owner, prefix),
        keys.input_streams(owner),
        keys.input_keys(owner),
        keys.run_receivers(owner),
        keys.inbox_prefixes(owner),
        keys.input_index(owner),
    ]
    if target.kind == FLOW_RUN:
        script_keys.append(keys.run_events(owner))
        if bus.one_node:  # in Cluster the global stream is on a slot of its own
            script_keys.append(keys.events_of(owner, bus.index_shards))
    return known.remember((target.kind, target.id, prefix), tuple(script_keys))


class _Recorded(Remembered[tuple[str, str, str], bool]):
    """Key prefixes a bus has stored an input of, by receiving run: their send skips the
    prefix set's write. A hint about this process's own past writes, which Redis keeps with
    the target's other keys."""


def _recorded(bus: Bus, target: Mailbox, prefix: str) -> bool:
    """Whether this bus stored an input of ``prefix`` to the run ``target`` before. Runs
    only: an inbox or mailbox that expired may be made again, with an empty prefix set
    whose new prefixes must be announced."""
    return (target.kind, target.id, prefix) in bus.kept(_Recorded)


def _note_recorded(bus: Bus, target: Mailbox, prefix: str) -> None:
    if target.kind != FLOW_RUN:
        return
    bus.kept(_Recorded).remember((target.kind, target.id, prefix), True)


def _renewal_due_at(bus: Bus) -> float | None:
    """The loop time now when the sender's inbox is due for renewal, else None.

    The time is taken before the script runs, so the next renewal never comes late.
    """
    if not inbox.is_due(bus):
        return None
    return asyncio.get_running_loop().time()


#: Entries kept per key prefix in a person's mailbox (approximately: ``MAXLEN ~``).
PERSON_MAILBOX_MAXLEN = 1000


def default_sender() -> tuple[str, bool]:
    """Who sends: the person acting (``hitl.user.<name>``), else the current run, else this
    process's inbox (and whether it is the inbox)."""
    person = acting_person()
    if person is not None:
        return person.name, False
    run_id = current_run_id()
    if run_id is not None:
        return Mailbox(FLOW_RUN, run_id).name, False
    return inbox.inbox().name, True


async def deliver_payload(
    target: Mailbox,
    payload: Any,
    *,
    key_prefix: str,
    sender: str | None = None,
    key: str | None = None,
) -> str:
    """Append one input (``payload``, JSON-safe) to ``target``'s stream for its key prefix;
    returns the input key.

    The one way in for every sender, so every input is checked the same way: when the
    receiving run has announced a receiver for the key prefix, the input must match its
    schema. With no receiver known the input is accepted unchecked, because inputs may
    be sent before the receiver starts (they wait in the stream). A ``key`` already
    accepted by ``target`` is not stored again and counts as delivered.

    :raises InputRejected: the input does not match the receiver's schema; nothing stored.
    """
    bus = get_bus()
    prefix = check_key_prefix(key_prefix)
    # Chosen once, before the first try: every retry of this call carries the same key.
    input_key = new_input_key(prefix) if key is None else check_input_key(key)
    from_inbox = False
    if sender is None:
        sender, from_inbox = default_sender()
    data = codec.check_size(codec.dumps(payload), bus.settings.max_payload_bytes)
    owner = target.owner
    person = target.kind == USER
    script_keys = list(_send_keys(bus, target, prefix))
    is_run = target.kind == FLOW_RUN
    inbox_ttl_ms = int(bus.settings.inbox_ttl * 1000)
    target_ttl_ms = 0 if is_run else inbox_ttl_ms
    if person:  # a person's replies are kept as long as runs are
        target_ttl_ms = int(bus.settings.run_retention * 1000)
    now_ms = int(time.time() * 1000)
    args: list[Any] = [
        input_key, sender, data, prefix, target_ttl_ms,
        bus.settings.events_maxlen, now_ms, owner, len(script_keys) - 7, 0,
        _known_digest(owner, prefix, payload) if is_run else b"", "", "",
        "1" if person else "0", PERSON_MAILBOX_MAXLEN,
        "1" if _recorded(bus, target, prefix) else "0",
    ]  # fmt: skip
    renewing_at = None
    if from_inbox:  # renew the sender's inbox, so replies can reach it
        if not bus.one_node:  # in Cluster the inbox is on a slot of its own
            await inbox.renew_if_due(bus)
        else:
            renewing_at = _renewal_due_at(bus)
            renew_keys, renew_args = inbox.renewal(due=renewing_at is not None)
            script_keys += renew_keys
            args[9] = inbox_ttl_ms
            args[11:13] = renew_args
    reply = await bus.eval(_SEND, script_keys, args, replicated=True)
    if renewing_at is not None:
        inbox.renewed(bus, renewing_at)
    while reply[0] == _CHECK:  # the receiver's schema is new to this process, or changed
        args[10] = _check(owner, prefix, payload, reply[1], reply[2])
        reply = await bus.eval(_SEND, script_keys, args, replicated=True)
    status = reply[0]
    if status == _MISSING:
        if is_run:
            raise FlowRunNotFound(owner)
        raise InboxNotFound(owner)
    if status == _ACCEPTED:
        _note_recorded(bus, target, prefix)
    # In Cluster the global event follows on its own: after this call's script stored the
    # input (also when a retry found its own key there: the first try's reply was lost).
    # A doubled ``input.received`` there is harmless: readers of ``hitl:events`` use it as
    # a hint to re-read the run, never as a count.
    stored_now = status == _ACCEPTED or (status == _DUPLICATE and key is None)
    if stored_now and is_run and not bus.one_node:
        event = {"key": input_key, "key_prefix": prefix, "sender": sender}
        await bus.client.xadd(
            keys.events_of(owner, bus.index_shards),
            event_fields("input.received", owner, event),
            maxlen=bus.settings.events_maxlen,
            approximate=True,
        )
    return input_key


async def deliver_reply(
    origin: str | None,
    payload: Any,
    *,
    key_prefix: str,
    sender: str | None = None,
    key: str | None = None,
) -> str:
    """Deliver ``payload`` (JSON-safe) to ``origin``, the sender named on a received input.

    :raises NotAnswerable: ``origin`` is not a flow run, a client inbox or a person.
    """
    target = Mailbox.parse(origin)
    if target is None:
        raise NotAnswerable(origin)
    return await deliver_payload(target, payload, key_prefix=key_prefix, sender=sender, key=key)


async def deliver_payloads(
    target: Mailbox,
    items: Sequence[tuple[Any, str, str | None]],
    *,
    sender: str | None = None,
) -> list[str]:
    """Append many inputs to ``target`` in one script call; returns their keys, in order.

    ``items`` are ``(payload, key prefix, key or None)``, each payload JSON-safe. Each
    input is checked and stored as by :func:`deliver_payload`, all in one atomic step:
    the inputs land in the given order (one stream per key prefix), a key ``target``
    already has is skipped (so repeating a batch stores nothing twice), and when one
    input does not match its receiver's schema none of the batch is stored. One round
    trip once the process knows the receivers' schemas, one more per key prefix whose
    schema it has not seen.

    :raises InputRejected: an input does not match its receiver's schema (``.index`` is
        its position); nothing stored.
    """
    if not items:
        return []
    bus = get_bus()
    owner = target.owner
    is_run = target.kind == FLOW_RUN
    from_inbox = False
    if sender is None:
        sender, from_inbox = default_sender()
    # Keys, prefixes and payloads are settled before the first try, as for one input.
    input_keys: list[str] = []
    prefixes: list[str] = []
    payloads: list[Any] = []
    streams: dict[str, int] = {}  # key prefix -> number of its stream among KEYS
    args: list[Any] = []
    limit = bus.settings.max_payload_bytes
    for payload, key_prefix, key in items:
        prefix = check_key_prefix(key_prefix)
        input_key = new_input_key(prefix) if key is None else check_input_key(key)
        data = codec.check_size(codec.dumps(payload), limit)
        number = streams.setdefault(prefix, len(streams) + 1)
        digest = _known_digest(owner, prefix, payload) if is_run else b""
        args += [input_key, prefix, number, data, digest]
        input_keys.append(input_key)
        prefixes.append(prefix)
        payloads.append(payload)
    script_keys = [
        target.marker_key,
        keys.input_streams(owner),
        keys.input_keys(owner),
        keys.run_receivers(owner),
        keys.inbox_prefixes(owner),
        keys.input_index(owner),
    ]
    if is_run:
        script_keys.append(keys.run_events(owner))
        if bus.one_node:  # in Cluster the global stream is on a slot of its own
            script_keys.append(keys.events_of(owner, bus.index_shards))
    nevents = len(script_keys) - 6
    script_keys += [keys.input_stream(owner, prefix) for prefix in streams]
    inbox_ttl_ms = int(bus.settings.inbox_ttl * 1000)
    head: list[Any] = [
        sender, 0 if is_run else inbox_ttl_ms, bus.settings.events_maxlen,
        int(time.time() * 1000), owner, nevents, len(streams), 0, 0, "",
    ]  # fmt: skip
    renewing_at = None
    if from_inbox:  # renew the sender's inbox, so replies can reach it
        if not bus.one_node:  # in Cluster the inbox is on a slot of its own
            await inbox.renew_if_due(bus)
        else:
            renewing_at = _renewal_due_at(bus)
            renew_keys, (pid, host) = inbox.renewal(due=renewing_at is not None)
            script_keys += renew_keys
            head[7:10] = [inbox_ttl_ms, pid, host]
    reply = await bus.eval(_SEND_MANY, script_keys, head + args, replicated=True)
    if renewing_at is not None:
        inbox.renewed(bus, renewing_at)
    while reply[0] == _CHECK:  # a receiver's schema is new to this process, or changed
        prefix = prefixes[int(reply[1])]
        raw_schema, digest = reply[2], reply[3]
        for index, payload in enumerate(payloads):
            if prefixes[index] == prefix:
                args[5 * index + 4] = _check(
                    owner, prefix, payload, raw_schema, digest, index=index
                )
        reply = await bus.eval(_SEND_MANY, script_keys, head + args, replicated=True)
    if reply[0] == _MISSING:
        if is_run:
            raise FlowRunNotFound(owner)
        raise InboxNotFound(owner)
    if is_run and not bus.one_node:  # the global events follow, as for one input
        given = [key for _, _, key in items]
        async with bus.client.pipeline(transaction=False) as pipe:
            for index, entry_id in enumerate(reply[1:]):
                if entry_id or given[index] is None:  # stored now, or by a lost first try
                    event = {"key": input_keys[index], "key_prefix": prefixes[index],
                             "sender": sender}  # fmt: skip
                    pipe.xadd(
                        keys.events_of(owner, bus.index_shards),
                        event_fields("input.received", owner, event),
                        maxlen=bus.settings.events_maxlen,
                        approximate=True,
                    )
            await pipe.execute()
    return input_keys
