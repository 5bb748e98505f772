"""What a run has been sent, and which input types it receives: the read side for UIs."""

from __future__ import annotations

from typing import Any

from hitl_bus import keys
from hitl_bus.bus import codec, get_bus


def _entry_order(entry: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(part) for part in entry["id"].split("-"))


async def read_received_inputs(owner_id: str, per_prefix: int = 50) -> list[dict[str, Any]]:
    """The newest inputs sent to a run or inbox on every key prefix, oldest first.

    Each is ``{"id", "key_prefix", "key", "sender", "data"}`` (``data`` decoded JSON).
    """
    bus = get_bus()
    prefixes = sorted(p.decode() for p in await bus.client.smembers(keys.input_streams(owner_id)))
    if not prefixes:
        return []
    async with bus.client.pipeline(transaction=False) as pipe:
        for prefix in prefixes:
            pipe.xrevrange(keys.input_stream(owner_id, prefix), count=per_prefix)
        replies = await pipe.execute()
    received = [
        {
            "id": entry_id.decode(),
            "key_prefix": prefix,
            "key": codec.text(fields.get(b"key")),
            "sender": codec.text(fields.get(b"sender")),
            "data": codec.loads(fields.get(b"data", b"null")),
        }
        for prefix, entries in zip(prefixes, replies, strict=True)
        for entry_id, fields in entries
    ]
    return sorted(received, key=_entry_order)


async def read_receivers(run_id: str) -> dict[str, Any]:
    """Key prefix -> JSON schema of every input type the run has received on."""
    raw = await get_bus().client.hgetall(keys.run_receivers(run_id))
    return {prefix.decode(): codec.loads(schema) for prefix, schema in raw.items()}
