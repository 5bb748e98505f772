"""Named JSON values kept on a run: a pause's schema, description and response.

Prefect calls these flow run inputs (``create_flow_run_input``); here they
are fields of the run's ``values`` hash, under the run's hash tag.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from pydantic import BaseModel

from hitl_bus import keys
from hitl_bus.bus import codec, get_bus
from hitl_bus.context import current_run_id
from hitl_bus.errors import FlowRunNotFound, MissingContextError
from hitl_bus.ids import normalize_run_id
from hitl_bus.inputs.keyset import Keyset

R = TypeVar("R", bound=BaseModel)


def resolve_run_id(flow_run_id: uuid.UUID | str | None) -> str:
    """The given run id, or the current run's; outside a run one must be given."""
    if flow_run_id is not None:
        return normalize_run_id(flow_run_id)
    run_id = current_run_id()
    if run_id is None:
        raise MissingContextError("no flow_run_id given and not inside a flow run")
    return run_id


async def aset_values(flow_run_id: uuid.UUID | str | None, values: dict[str, Any]) -> None:
    run_id = resolve_run_id(flow_run_id)
    bus = get_bus()
    if not await bus.client.exists(keys.run(run_id)):
        raise FlowRunNotFound(run_id)
    await bus.client.hset(
        keys.run_values(run_id), mapping={k: codec.dumps(v) for k, v in values.items()}
    )


async def aget_value(flow_run_id: uuid.UUID | str | None, key: str) -> Any:
    """A saved value, or ``None`` when nothing is saved under ``key``."""
    run_id = resolve_run_id(flow_run_id)
    raw = await get_bus().client.hget(keys.run_values(run_id), key)
    return None if raw is None else codec.loads(raw)


async def asave_schema(
    cls: type[BaseModel], keyset: Keyset, flow_run_id: uuid.UUID | str | None
) -> None:
    values: dict[str, Any] = {keyset["schema"]: cls.model_json_schema()}
    description = getattr(cls, "_description", None)  # a RunInput's form description
    if description is not None:
        values[keyset["description"]] = description
    await aset_values(flow_run_id, values)


async def aload_response(cls: type[R], keyset: Keyset, flow_run_id: uuid.UUID | str | None) -> R:
    value = await aget_value(flow_run_id, keyset["response"])
    if value is None:
        raise LookupError(f"no response saved under {keyset['response']!r}")
    return cls.model_validate(value)
