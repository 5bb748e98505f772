"""What a run or inbox has been sent, and which input types a run receives: the read side.

:func:`decode_input` is the one decoder of an input stream entry for readers that
show inputs (the client's ``read_inputs`` and ``follow_replies``); receivers
validate entries into ``RunInput`` models on their own path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hitl_bus import keys
from hitl_bus.bus import codec, get_bus

log = logging.getLogger("hitl_bus.inputs")


@dataclass(frozen=True, slots=True)
class ReceivedInput:
    """One stored input: its entry id, key prefix, input key, sender and decoded data."""

    id: str
    key_prefix: str
    key: str
    sender: str
    data: Any

    def as_dict(self) -> dict[str, Any]:
        """The JSON form UIs show: ``{"id", "key_prefix", "key", "sender", "data"}``."""
        return {
            "id": self.id,
            "key_prefix": self.key_prefix,
            "key": self.key,
            "sender": self.sender,
            "data": self.data,
        }


def decode_input(
    stream: str, prefix: str, entry_id: bytes, fields: dict[bytes, bytes]
) -> ReceivedInput | None:
    """One input entry; ``None`` (logged, naming stream and entry) for a corrupt one.

    A corrupt entry is skipped rather than raised, so one bad write does not hide the
    inputs around it or end a live stream.
    """
    try:
        return ReceivedInput(
            id=entry_id.decode(),
            key_prefix=prefix,
            key=codec.text(fields.get(b"key")) or "",
            sender=codec.text(fields.get(b"sender")) or "",
            data=codec.loads(fields.get(b"data", b"null")),
        )
    except ValueError as exc:  # not UTF-8, or not JSON
        log.warning("skipping entry %s on %s: %s", entry_id.decode(), stream, exc)
        return None


def _entry_order(item: ReceivedInput) -> tuple[int, ...]:
    return tuple(int(part) for part in item.id.split("-"))


async def read_prefixes(owner_id: str) -> list[str]:
    """The key prefixes that have an input stream under a run or inbox, sorted.

    A prefix that is not UTF-8 text is logged and left out.
    """
    raw = await get_bus().client.smembers(keys.input_streams(owner_id))
    return sorted(p.decode() for p in raw if _utf8(p))


async def read_received(owner_id: str, per_prefix: int = 50) -> list[ReceivedInput]:
    """The newest inputs sent to a run or inbox on every key prefix, oldest first.

    A corrupt entry is logged and left out, so the rest can still be shown.
    """
    prefixes = await read_prefixes(owner_id)
    if not prefixes:
        return []
    streams = [keys.input_stream(owner_id, prefix) for prefix in prefixes]
    async with get_bus().client.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xrevrange(stream, count=per_prefix)
        replies = await pipe.execute()
    received = [
        item
        for stream, prefix, entries in zip(streams, prefixes, replies, strict=True)
        for entry_id, fields in entries
        if (item := decode_input(stream, prefix, entry_id, fields)) is not None
    ]
    return sorted(received, key=_entry_order)


async def read_received_inputs(owner_id: str, per_prefix: int = 50) -> list[dict[str, Any]]:
    """:func:`read_received` as JSON: ``{"id", "key_prefix", "key", "sender", "data"}`` each."""
    return [item.as_dict() for item in await read_received(owner_id, per_prefix)]


async def read_sent_by(owner_id: str, sender: str, per_prefix: int = 200) -> list[ReceivedInput]:
    """What ``sender`` sent to a run or inbox (among its newest inputs), oldest first."""
    return [item for item in await read_received(owner_id, per_prefix) if item.sender == sender]


async def entry_id(owner_id: str, key: str) -> str | None:
    """The stream entry id of the input stored under ``key``, if it is (still) there."""
    raw = await get_bus().client.hget(keys.input_index(owner_id), key)
    text = codec.text(raw) if raw is not None else None
    return text.split(" ", 1)[0] if text else None


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
