"""JSON on the wire: orjson in, orjson out, a size limit, and no pickle anywhere."""

from __future__ import annotations

from typing import Any

import orjson

from hitl_bus.errors import PayloadTooLarge


def dumps(value: Any) -> bytes:
    """Encode plain data (already JSON-compatible) to bytes."""
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    """Decode JSON; raises ``orjson.JSONDecodeError`` (a ``ValueError``) on garbage."""
    return orjson.loads(data)


def check_size(data: bytes, limit: int) -> bytes:
    """Return ``data`` if it fits the payload limit, else raise :class:`PayloadTooLarge`."""
    if len(data) > limit:
        raise PayloadTooLarge(len(data), limit)
    return data


def text(value: bytes | str | None) -> str | None:
    """A reply field as ``str`` (Redis hands back bytes)."""
    if value is None or isinstance(value, str):
        return value
    return value.decode()
