"""What a run has been sent, and which input types it receives: the read side for UIs."""

from __future__ import annotations

import logging
from typing import Any

from hitl_bus import keys
from hitl_bus.bus import codec, get_bus

log = logging.getLogger("hitl_bus.inputs")


def _entry_order(entry: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(part) for part in entry["id"].split("-"))


def _received(stream: str, prefix: str, entry_id: bytes, fields: dict[bytes, bytes]) -> Any:
    """One sent input as the UI shows it; ``None`` (logged) for a corrupt entry."""
    try:
        return {
            "id": entry_id.decode(),
            "key_prefix": prefix,
            "key": codec.text(fields.get(b"key")),
            "sender": codec.text(fields.get(b"sender")),
            "data": codec.loads(fields.get(b"data", b"null")),
        }
    except ValueError as exc:  # not UTF-8, or not JSON
        log.warning("skipping entry %s on %s: %s", entry_id.decode(), stream, exc)
        return None


async def read_received_inputs(owner_id: str, per_prefix: int = 50) -> list[dict[str, Any]]:
    """The newest inputs sent to a run or inbox on every key prefix, oldest first.

    Each is ``{"id", "key_prefix", "key", "sender", "data"}`` (``data`` decoded JSON).
    A corrupt entry is logged and left out, so the rest can still be shown.
    """
    bus = get_bus()
    prefixes = sorted(
        p.decode() for p in await bus.client.smembers(keys.input_streams(owner_id)) if _utf8(p)
    )
    if not prefixes:
        return []
    streams = [keys.input_stream(owner_id, prefix) for prefix in prefixes]
    async with bus.client.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xrevrange(stream, count=per_prefix)
        replies = await pipe.execute()
    received = [
        item
        for stream, prefix, entries in zip(streams, prefixes, replies, strict=True)
        for entry_id, fields in entries
        if (item := _received(stream, prefix, entry_id, fields)) is not None
    ]
    return sorted(received, key=_entry_order)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        log.warning("skipping a key prefix that is not UTF-8 text: %r", raw)
        return False
    return True


async def read_receivers(run_id: str) -> dict[str, Any]:
    """Key prefix -> JSON schema of every input type the run has received on.

    A corrupt schema is logged and left out (that send box is not offered).
    """
    key = keys.run_receivers(run_id)
    receivers: dict[str, Any] = {}
    for prefix, schema in (await get_bus().client.hgetall(key)).items():
        try:
            receivers[prefix.decode()] = codec.loads(schema)
        except ValueError as exc:
            log.warning("skipping field %r of %s: %s", prefix, key, exc)
    return receivers
