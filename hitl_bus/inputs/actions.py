"""Prefect's ``prefect.input.actions``: a run's inputs, by key.

A run's inputs are of two kinds, seen here as one: named values (``create_flow_run_input``,
a pause's schema and response), kept in the run's ``values`` hash; and inputs sent with
``send_input``, kept in the run's input streams and found by key through its input index.
A key names one of them (a create refuses a key the run has either way). Records are
ordered by creation time on Redis's clock: a value's stamp, a sent input's entry id.

Each function is a coroutine (``a``-prefixed) and a dual face that is awaited in async
code and blocks in sync code. ``flow_run_id`` defaults to the current run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from hitl_bus import keys
from hitl_bus._sync import dual
from hitl_bus.bus import codec, get_bus
from hitl_bus.context import current_run_id
from hitl_bus.inputs import values
from hitl_bus.inputs.keyset import FLOW_RUN, Mailbox
from hitl_bus.inputs.shapes import (
    FlowRunInput,
    derived_id,
    entry_ms,
    from_ms,
    record_from_entry,
)

log = logging.getLogger("hitl_bus.inputs")

# KEYS: values, values metadata, input index, input-key set.
# ARGV: key, the run's input stream key without its prefix.
# Deletes the value and its metadata, or the sent input's entry, index field and key (so
# the key may be used again). Deleting what is not there changes nothing: safe to retry.
_DELETE = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local at = redis.call('HGET', KEYS[3], ARGV[1])
if at then
  local space = string.find(at, ' ', 1, true)
  if space then
    redis.call('XDEL', ARGV[2] .. string.sub(at, space + 1), string.sub(at, 1, space - 1))
  end
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('SREM', KEYS[4], ARGV[1])
end
return 1
"""


async def acreate_flow_run_input(
    key: str, value: Any, flow_run_id: uuid.UUID | str | None = None, sender: str | None = None
) -> None:
    """Store ``value`` (anything JSON can hold) on a run under a new ``key``.

    Safe to retry: the record's id is drawn before the first try, and a retry that finds
    it answers as the first call did.

    :raises ValueError: ``key`` is not lowercase letters, digits and dashes.
    :raises ObjectAlreadyExists: the run has an input under ``key``; nothing changed.
    :raises FlowRunNotFound: no such run.
    :raises MissingContextError: no ``flow_run_id`` given, outside a run.
    :raises PayloadTooLarge: the encoded value is over ``HITL_BUS_MAX_PAYLOAD_BYTES``.
    """
    values.check_value_key(key)
    run_id = values.resolve_run_id(flow_run_id)
    data = codec.check_size(codec.dumps(value), get_bus().settings.max_payload_bytes)
    await values.acreate_value(run_id, key, data, sender, uuid.uuid4())


async def acreate_flow_run_input_from_model(
    key: str,
    model_instance: BaseModel,
    flow_run_id: uuid.UUID | str | None = None,
    sender: str | None = None,
) -> None:
    """Store a pydantic model's JSON form under ``key``; inside a run the sender is that run."""
    if sender is None and (run_id := current_run_id()) is not None:
        sender = Mailbox(FLOW_RUN, run_id).name
    await acreate_flow_run_input(
        key, model_instance.model_dump(mode="json"), flow_run_id=flow_run_id, sender=sender
    )


async def aread_flow_run_input(key: str, flow_run_id: uuid.UUID | str | None = None) -> Any:
    """The decoded value stored under ``key``, or ``None`` when there is none.

    A value that is not JSON is logged and read as ``None``.
    """
    run_id = values.resolve_run_id(flow_run_id)
    client = get_bus().client
    async with client.pipeline(transaction=False) as pipe:
        pipe.hget(keys.run_values(run_id), key)
        pipe.hget(keys.input_index(run_id), key)
        raw, located = await pipe.execute()
    where = keys.run_values(run_id)
    if raw is None and located is not None and (at := _parse_index(run_id, key, located)):
        entry_id, prefix = at
        where = keys.input_stream(run_id, prefix)
        entries = await client.xrange(where, min=entry_id, max=entry_id)
        raw = entries[0][1].get(b"data") if entries and entries[0][1] else None
    if raw is None:
        return None
    try:
        return codec.loads(raw)
    except ValueError as exc:
        log.warning("skipping %r on %s: %s", key, where, exc)
        return None


@dataclass(frozen=True, slots=True)
class _Found:
    """A record to read: where it is, and when it was made."""

    key: str
    order: tuple[int, int]  # creation ms, then a stream entry's sequence
    entry: tuple[str, str] | None  # a sent input's (entry id, key prefix); None: a value
    meta: values.ValueMeta | None


async def afilter_flow_run_input(
    key_prefix: str,
    limit: int = 1,
    exclude_keys: Iterable[str] | None = None,
    flow_run_id: uuid.UUID | str | None = None,
) -> list[FlowRunInput]:
    """Up to ``limit`` records whose key starts with ``key_prefix``, oldest first.

    Keys in ``exclude_keys`` are passed over. A record that is corrupt, or deleted while
    this reads, is left out (a corrupt one with a warning) and the next one taken.
    """
    run_id = values.resolve_run_id(flow_run_id)
    excluded = set(exclude_keys or ())
    found = [
        item
        for item in await _find(run_id)
        if item.key.startswith(key_prefix) and item.key not in excluded
    ]
    found.sort(key=lambda item: (item.order, item.key))
    records: list[FlowRunInput] = []
    while found and len(records) < limit:
        batch, found = found[: limit - len(records)], found[limit - len(records) :]
        records += [record for record in await _read(run_id, batch) if record is not None]
    return records


async def adelete_flow_run_input(key: str, flow_run_id: uuid.UUID | str | None = None) -> None:
    """Delete the input stored under ``key``; nothing there (or no such run) is no error."""
    run_id = values.resolve_run_id(flow_run_id)
    script_keys = [
        keys.run_values(run_id),
        keys.run_value_meta(run_id),
        keys.input_index(run_id),
        keys.input_keys(run_id),
    ]
    await get_bus().eval(_DELETE, script_keys, [key, keys.input_stream(run_id, "")])


def _parse_index(run_id: str, key: str, raw: bytes) -> tuple[str, str] | None:
    """An input index field as (entry id, key prefix); ``None`` (logged) when corrupt."""
    try:
        entry_id, _, prefix = raw.decode().partition(" ")
        entry_ms(entry_id)
    except ValueError:  # not UTF-8, or not an entry id
        prefix = ""
    if not prefix:
        log.warning("skipping %r on %s: not an entry id and prefix", key, keys.input_index(run_id))
        return None
    return entry_id, prefix


async def _find(run_id: str) -> list[_Found]:
    """Every record's key and creation time, values and sent inputs, in one round trip."""
    async with get_bus().client.pipeline(transaction=False) as pipe:
        pipe.hkeys(keys.run_values(run_id))
        pipe.hgetall(keys.run_value_meta(run_id))
        pipe.hgetall(keys.input_index(run_id))
        names, metas, index = await pipe.execute()
    found: list[_Found] = []
    for raw_name in names:
        if (name := _text(run_id, raw_name)) is not None:
            meta = values.decode_meta(run_id, name, metas.get(raw_name))
            found.append(_Found(name, (meta.created_ms, 0), None, meta))
    for raw_name, raw_at in index.items():
        name = _text(run_id, raw_name)
        if name is not None and (at := _parse_index(run_id, name, raw_at)) is not None:
            found.append(_Found(name, entry_ms(at[0]), at, None))
    return found


async def _read(run_id: str, batch: list[_Found]) -> list[FlowRunInput | None]:
    """The records of ``batch``, in its order; ``None`` for one gone or corrupt."""
    async with get_bus().client.pipeline(transaction=False) as pipe:
        for item in batch:
            if item.entry is None:
                pipe.hget(keys.run_values(run_id), item.key)
            else:
                entry_id, prefix = item.entry
                pipe.xrange(keys.input_stream(run_id, prefix), min=entry_id, max=entry_id)
        replies = await pipe.execute()
    return [_record(run_id, item, reply) for item, reply in zip(batch, replies, strict=True)]


def _record(run_id: str, item: _Found, reply: Any) -> FlowRunInput | None:
    """One record from what :func:`_read` got; ``None`` when it is gone or corrupt (logged)."""
    try:
        if item.entry is not None:
            return record_from_entry(run_id, *reply[0]) if reply else None
        if reply is None or item.meta is None:
            return None  # deleted meanwhile
        created = item.meta.created_ms
        return FlowRunInput(
            id=item.meta.id or derived_id(run_id, item.key, created),
            created=from_ms(created),
            flow_run_id=uuid.UUID(run_id),
            key=item.key,
            value=reply.decode(),
            sender=item.meta.sender,
        )
    except UnicodeDecodeError as exc:
        where = keys.run_values(run_id)
        if item.entry is not None:
            where = keys.input_stream(run_id, item.entry[1])
        log.warning("skipping %r on %s: %s", item.key, where, exc)
        return None


def _text(run_id: str, raw: bytes) -> str | None:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        log.warning("skipping a key that is not UTF-8 text on run %s: %r", run_id, raw)
        return None


create_flow_run_input = dual(acreate_flow_run_input)
create_flow_run_input_from_model = dual(acreate_flow_run_input_from_model)
read_flow_run_input = dual(aread_flow_run_input)
filter_flow_run_input = dual(afilter_flow_run_input)
delete_flow_run_input = dual(adelete_flow_run_input)
