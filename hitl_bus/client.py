"""``get_client()``: read runs, their events and logs (what the CLI and web UI show)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, cast, overload

from pydantic import ValidationError

from hitl_bus import keys
from hitl_bus._sync import run_blocking
from hitl_bus.bus import codec, get_bus
from hitl_bus.engine import logger as run_logs
from hitl_bus.engine import runs
from hitl_bus.engine.cancelling import acancel_flow_run
from hitl_bus.engine.pausing import PauseDetails, _defaults_key, read_pause
from hitl_bus.engine.runs import FlowRun
from hitl_bus.engine.states import State, StateType
from hitl_bus.ids import normalize_run_id
from hitl_bus.inputs import Keyset, received

log = logging.getLogger("hitl_bus.client")


class HitlClient:
    """Async reads of flow runs; usable with or without ``async with``."""

    async def __aenter__(self) -> HitlClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def read_flow_run(self, flow_run_id: uuid.UUID | str) -> FlowRun:
        """One run. :raises FlowRunNotFound: no such run."""
        return await runs.read_flow_run(flow_run_id)

    async def read_flow_runs(
        self,
        state: StateType | str | None = None,
        flow_name: str | None = None,
        limit: int = 100,
        deployment: str | None = None,
    ) -> list[FlowRun]:
        """The newest runs, optionally filtered by state type, flow name and deployment."""
        return await runs.read_flow_runs(
            state=state, flow_name=flow_name, limit=limit, deployment=deployment
        )

    async def wait_for_flow_run(
        self,
        flow_run_id: uuid.UUID | str,
        until: Callable[[State], bool] = State.is_final,
        timeout: float | None = None,
    ) -> FlowRun:
        """Wait (pushed, not polled) until the run's state satisfies ``until`` (default: final).

        Returns the run as it is then, also when ``timeout`` passed first.
        """
        return await runs.wait_for_state(flow_run_id, until, timeout)

    async def cancel_flow_run(self, flow_run_id: uuid.UUID | str) -> State:
        """Cancel a run (Cancelling until its code reaches a checkpoint; Cancelled if idle)."""
        return await acancel_flow_run(flow_run_id)

    async def read_events(self, flow_run_id: uuid.UUID | str) -> list[dict[str, Any]]:
        """A run's state changes and input arrivals, oldest first."""
        return await runs.read_events(flow_run_id)

    async def read_logs(self, flow_run_id: uuid.UUID | str) -> list[dict[str, Any]]:
        """A run's log records, oldest first."""
        return await run_logs.read_logs(normalize_run_id(flow_run_id))

    async def read_state_history(self, flow_run_id: uuid.UUID | str) -> list[State]:
        """Every state the run has been in, oldest first (an unreadable one logged, left out)."""
        stream = keys.run_events(normalize_run_id(flow_run_id))
        history = []
        for event in await runs.read_events(flow_run_id):
            if event["type"] != "state.changed":
                continue
            try:
                history.append(State.model_validate(event["data"].get("state")))
            except ValidationError:
                log.warning("skipping entry %s on %s: no valid state", event["id"], stream)
        return history

    async def read_pause(self, flow_run_id: uuid.UUID | str) -> PauseDetails | None:
        """The run's current pause (keyset, schema, description, defaults, deadline), if paused.

        A saved value that is not JSON is logged and left out, so the run can still be shown.
        """
        try:
            return await read_pause(flow_run_id)
        except ValueError:  # a corrupt saved value; read again, field by field
            return await _read_pause_leniently(normalize_run_id(flow_run_id))

    async def read_inputs(
        self, flow_run_id: uuid.UUID | str, per_prefix: int = 50
    ) -> list[dict[str, Any]]:
        """The newest inputs sent to the run, per key prefix, oldest first."""
        return await received.read_received_inputs(normalize_run_id(flow_run_id), per_prefix)

    async def read_receivers(self, flow_run_id: uuid.UUID | str) -> dict[str, Any]:
        """Key prefix -> JSON schema of each input type the run receives on."""
        return await received.read_receivers(normalize_run_id(flow_run_id))


def _json_or_none(raw: bytes | None, where: str, field: str) -> Any:
    if not raw:
        return None
    try:
        return codec.loads(raw)
    except ValueError as exc:
        log.warning("skipping field %s of %s: %s", field, where, exc)
        return None


async def _read_pause_leniently(run_id: str) -> PauseDetails | None:
    """The pause with its unreadable saved values left out (each one logged)."""
    run = await runs.read_flow_run(run_id)
    if not run.state.is_paused():
        return None
    bus = get_bus()
    key, keyset_raw, deadline, suspended = await bus.client.hmget(
        keys.run(run_id), ["pause_key", "pause_keyset", "pause_deadline", "suspended"]
    )
    keyset = _json_or_none(keyset_raw, keys.run(run_id), "pause_keyset")
    values: list[Any] = [None, None, None]
    if isinstance(keyset, dict) and {"schema", "description"} <= keyset.keys():
        names = [keyset["schema"], keyset["description"], _defaults_key(cast(Keyset, keyset))]
        raws = await bus.client.hmget(keys.run_values(run_id), names)
        values = [
            _json_or_none(raw, keys.run_values(run_id), name)
            for name, raw in zip(names, raws, strict=True)
        ]
    schema, description, defaults = values
    deadline_ms = int(deadline or 0)
    return PauseDetails(
        pause_key=codec.text(key) or "",
        suspended=suspended == b"1",
        keyset=keyset if isinstance(schema, dict) else None,
        schema=schema if isinstance(schema, dict) else None,
        description=description if isinstance(description, str) else None,
        defaults=defaults if isinstance(defaults, dict) else {},
        deadline=datetime.fromtimestamp(deadline_ms / 1000, UTC) if deadline_ms else None,
    )


class SyncHitlClient:
    """The same reads as :class:`HitlClient`, blocking."""

    def __init__(self) -> None:
        self._client = HitlClient()

    def __enter__(self) -> SyncHitlClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def read_flow_run(self, flow_run_id: uuid.UUID | str) -> FlowRun:
        return run_blocking(self._client.read_flow_run(flow_run_id))

    def read_flow_runs(
        self,
        state: StateType | str | None = None,
        flow_name: str | None = None,
        limit: int = 100,
        deployment: str | None = None,
    ) -> list[FlowRun]:
        return run_blocking(self._client.read_flow_runs(state, flow_name, limit, deployment))

    def cancel_flow_run(self, flow_run_id: uuid.UUID | str) -> State:
        return run_blocking(self._client.cancel_flow_run(flow_run_id))

    def wait_for_flow_run(
        self,
        flow_run_id: uuid.UUID | str,
        until: Callable[[State], bool] = State.is_final,
        timeout: float | None = None,
    ) -> FlowRun:
        return run_blocking(self._client.wait_for_flow_run(flow_run_id, until, timeout))

    def read_events(self, flow_run_id: uuid.UUID | str) -> list[dict[str, Any]]:
        return run_blocking(self._client.read_events(flow_run_id))

    def read_logs(self, flow_run_id: uuid.UUID | str) -> list[dict[str, Any]]:
        return run_blocking(self._client.read_logs(flow_run_id))

    def read_state_history(self, flow_run_id: uuid.UUID | str) -> list[State]:
        return run_blocking(self._client.read_state_history(flow_run_id))

    def read_pause(self, flow_run_id: uuid.UUID | str) -> PauseDetails | None:
        return run_blocking(self._client.read_pause(flow_run_id))

    def read_inputs(
        self, flow_run_id: uuid.UUID | str, per_prefix: int = 50
    ) -> list[dict[str, Any]]:
        return run_blocking(self._client.read_inputs(flow_run_id, per_prefix))

    def read_receivers(self, flow_run_id: uuid.UUID | str) -> dict[str, Any]:
        return run_blocking(self._client.read_receivers(flow_run_id))


@overload
def get_client(sync_client: Literal[False] = False) -> HitlClient: ...
@overload
def get_client(sync_client: Literal[True]) -> SyncHitlClient: ...
@overload
def get_client(sync_client: bool) -> HitlClient | SyncHitlClient: ...
def get_client(sync_client: bool = False) -> HitlClient | SyncHitlClient:
    """An async client, or with ``sync_client=True`` a blocking one with the same methods."""
    return SyncHitlClient() if sync_client else HitlClient()
