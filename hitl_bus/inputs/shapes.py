"""What every input carries, whatever its type: its metadata, and its type's JSON schema.

Below the modules that send and receive, so they need no ``RunInput``.
"""

from __future__ import annotations

import functools

from pydantic import BaseModel

from hitl_bus.bus import codec


class RunInputMetadata(BaseModel):
    """Where a received input came from: its key, its sender and its receiver."""

    key: str
    sender: str | None
    receiver: str


@functools.lru_cache(maxsize=256)
def schema_json(input_cls: type[BaseModel]) -> bytes:
    """The input class's JSON schema, encoded (building it is slow; classes are reused)."""
    return codec.dumps(input_cls.model_json_schema())
