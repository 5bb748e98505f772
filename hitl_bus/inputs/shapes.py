"""What every input carries, whatever its type: its metadata, its type's JSON schema, and
the stored record of one input (Prefect's ``FlowRunInput``).

Below the modules that send and receive, so they need no ``RunInput``.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from hitl_bus.bus import codec

#: Names the ids of records stored without one (see :func:`derived_id`).
_RECORD_IDS = uuid.UUID("5f0c2a57-8e1b-4c47-9a4e-2b8f1d3c6e90")


class RunInputMetadata(BaseModel):
    """Where an input came from: its key, its sender, and the run (or inbox) that received it."""

    key: str
    sender: str | None = None
    receiver: uuid.UUID


class FlowRunInput(BaseModel):
    """One input stored on a run, as Prefect's client returns it: ``value`` is the JSON text."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    created: datetime
    flow_run_id: uuid.UUID
    key: str
    value: str
    sender: str | None = None

    @property
    def decoded_value(self) -> Any:
        """``value`` decoded from JSON."""
        return codec.loads(self.value)


def derived_id(owner_id: str, key: str, created_ms: int) -> uuid.UUID:
    """A stable id for a record stored without one (a sent input, a pause's value).

    Stable so that reading the same record twice gives the same id.
    """
    return uuid.uuid5(_RECORD_IDS, f"{owner_id}/{key}/{created_ms}")


def from_ms(ms: int) -> datetime:
    """A Redis millisecond time (a stream entry id's first part) as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def entry_ms(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id as (milliseconds, sequence): its order, and its creation time."""
    ms, _, seq = (codec.text(entry_id) or "0-0").partition("-")
    return int(ms), int(seq or 0)


def record_from_entry(
    owner_id: str, entry_id: bytes, fields: dict[bytes, bytes] | None
) -> FlowRunInput | None:
    """The record of one input stream entry; ``None`` for an entry missing a field.

    :raises UnicodeDecodeError: a field is not UTF-8 (the caller logs and skips it).
    """
    raw_key = fields.get(b"key") if fields else None
    data = fields.get(b"data") if fields else None
    if raw_key is None or data is None or fields is None:
        return None
    key = raw_key.decode()
    ms, _ = entry_ms(entry_id)
    return FlowRunInput(
        id=derived_id(owner_id, key, ms),
        created=from_ms(ms),
        flow_run_id=uuid.UUID(owner_id),
        key=key,
        value=data.decode(),
        sender=codec.text(fields.get(b"sender")) or None,
    )


@functools.lru_cache(maxsize=256)
def schema_json(input_cls: type[BaseModel]) -> bytes:
    """The input class's JSON schema, encoded (building it is slow; classes are reused)."""
    return codec.dumps(input_cls.model_json_schema())
