"""Named JSON values kept on a run: a pause's schema, description and response, and
Prefect's flow run inputs (``create_flow_run_input``).

Each is a field of the run's ``values`` hash, under the run's hash tag, holding the JSON
as is (the engine and forms read it there). Its metadata (creation time on Redis's
clock, sender, record id) is a field of the same name in ``values-meta``: pauses and
resumes stamp theirs in their own scripts, so every value is ordered by when it was
written, together with the inputs sent to the run.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from hitl_bus import keys
from hitl_bus.bus import codec, get_bus
from hitl_bus.context import current_run_id
from hitl_bus.errors import FlowRunNotFound, MissingContextError, ObjectAlreadyExists
from hitl_bus.ids import normalize_run_id
from hitl_bus.inputs.keyset import Keyset

R = TypeVar("R", bound=BaseModel)
log = logging.getLogger("hitl_bus.inputs")

#: Prefect's rule for a flow run input's key.
_KEY_RE = re.compile(r"^[a-z0-9-]+$")

# KEYS: run hash, values, values metadata, the run's input-key set.
# ARGV: mode ("create": refuse a key the run has, as a value or a sent input; "put":
#       overwrite), record id ("" none), sender ("" none), then key/JSON pairs.
# A create retried after a lost reply finds its own record id on the key and answers
# "created" again. On a finished run the keys written get the run's remaining lifetime.
_PUT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == 'create' then
  local key = ARGV[4]
  if redis.call('HEXISTS', KEYS[2], key) == 1 then
    local ok, meta = pcall(cjson.decode, redis.call('HGET', KEYS[3], key) or '')
    if ok and type(meta) == 'table' and meta['id'] == ARGV[2] then return 1 end
    return 2
  end
  if redis.call('SISMEMBER', KEYS[4], key) == 1 then return 2 end
end
local t = redis.call('TIME')
local meta = {created = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
if ARGV[2] ~= '' then meta['id'] = ARGV[2] end
if ARGV[3] ~= '' then meta['sender'] = ARGV[3] end
meta = cjson.encode(meta)
local stamps = {}
for i = 4, #ARGV, 2 do
  stamps[#stamps + 1] = ARGV[i]
  stamps[#stamps + 1] = meta
end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('HSET', KEYS[3], unpack(stamps))
local left = redis.call('PTTL', KEYS[1])
if left > 0 then
  redis.call('PEXPIRE', KEYS[2], left)
  redis.call('PEXPIRE', KEYS[3], left)
end
return 1
"""
_MISSING, _STORED, _EXISTS = 0, 1, 2


def resolve_run_id(flow_run_id: uuid.UUID | str | None) -> str:
    """The given run id, or the current run's; outside a run one must be given.

    :raises MissingContextError: (a ``RuntimeError``) none given, outside a run.
    """
    if flow_run_id is not None:
        return normalize_run_id(flow_run_id)
    run_id = current_run_id()
    if run_id is None:
        raise MissingContextError("no flow_run_id given and not inside a flow run")
    return run_id


def check_value_key(key: str) -> str:
    """A flow run input's key, by Prefect's rule: lowercase letters, digits and dashes."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"input key {key!r} must be lowercase letters, digits and dashes")
    return key


def _script_keys(run_id: str) -> list[str]:
    return [
        keys.run(run_id),
        keys.run_values(run_id),
        keys.run_value_meta(run_id),
        keys.input_keys(run_id),
    ]


async def aset_values(flow_run_id: uuid.UUID | str | None, values: dict[str, Any]) -> None:
    """Write values (overwriting), stamped with when they were written.

    :raises FlowRunNotFound: no such run.
    """
    run_id = resolve_run_id(flow_run_id)
    pairs = [item for k, v in values.items() for item in (k, codec.dumps(v))]
    status = await get_bus().eval(
        _PUT, _script_keys(run_id), ["put", "", "", *pairs], replicated=True
    )
    if status == _MISSING:
        raise FlowRunNotFound(run_id)


async def acreate_value(
    run_id: str, key: str, data: bytes, sender: str | None, record_id: uuid.UUID
) -> None:
    """Store a new value under ``key``; ``record_id`` is drawn by the caller before the first try.

    :raises FlowRunNotFound: no such run.
    :raises ObjectAlreadyExists: the run has a value or a sent input under ``key``.
    """
    args = ["create", str(record_id), sender or "", key, data]
    status = await get_bus().eval(_PUT, _script_keys(run_id), args, replicated=True)
    if status == _MISSING:
        raise FlowRunNotFound(run_id)
    if status == _EXISTS:
        raise ObjectAlreadyExists(run_id, key)


async def aget_value(flow_run_id: uuid.UUID | str | None, key: str) -> Any:
    """A saved value, or ``None`` when nothing is saved under ``key``."""
    run_id = resolve_run_id(flow_run_id)
    raw = await get_bus().client.hget(keys.run_values(run_id), key)
    return None if raw is None else codec.loads(raw)


@dataclass(frozen=True, slots=True)
class ValueMeta:
    """When a value was written, by whom, and its record id (``None`` if none was stored)."""

    created_ms: int
    sender: str | None
    id: uuid.UUID | None


def decode_meta(run_id: str, key: str, raw: bytes | None) -> ValueMeta:
    """A value's metadata; none stored, or corrupt (logged), reads as created at 0."""
    if raw is None:
        return ValueMeta(0, None, None)
    try:
        meta = codec.loads(raw)
        record_id = meta.get("id")
        return ValueMeta(
            int(meta["created"]),
            meta.get("sender"),
            None if record_id is None else uuid.UUID(record_id),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("bad metadata for %r on %s: %s", key, keys.run_value_meta(run_id), exc)
        return ValueMeta(0, None, None)


async def asave_schema(
    cls: type[BaseModel], keyset: Keyset, flow_run_id: uuid.UUID | str | None
) -> None:
    values: dict[str, Any] = {keyset["schema"]: cls.model_json_schema()}
    description = getattr(cls, "_description", None)  # a RunInput's form description
    if description is not None:
        values[keyset["description"]] = description
    await aset_values(flow_run_id, values)
