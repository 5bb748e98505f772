"""A worker's slot goes from one queued run to the next in one step: the final state of
one run takes the next entry and, on standalone Redis, begins its run too."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hitl_bus import keys
from hitl_bus.bus import codec, get_bus
from hitl_bus.deployments.registry import arun_deployment, register
from hitl_bus.deployments.worker import Worker
from hitl_bus.engine import store
from hitl_bus.engine.runs import read_run_record, wait_for_state
from hitl_bus.engine.states import State
from tests.worker_flows import record_default


async def _history(run_id: str) -> list[str]:
    """The names of the states a run went through, from its event stream."""
    entries = await get_bus().client.xrange(keys.run_events(run_id))
    return [
        codec.loads(fields[b"data"])["state"]["name"]
        for _, fields in entries
        if fields.get(b"type") == b"state.changed"
    ]


async def test_a_worker_begins_the_next_queued_run_in_the_step_that_ends_the_last(
    bus_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await register(record_default)
    runs = [
        await arun_deployment(record_default.full_name, {"tag": f"chain-{i}"}, timeout=0)
        for i in range(3)
    ]
    begun_by_the_worker: list[str] = []
    begin_reading = store.begin_reading

    async def counted(run_id: str, *args: Any, **kwargs: Any) -> store.Start:
        begun_by_the_worker.append(run_id)
        return await begin_reading(run_id, *args, **kwargs)

    monkeypatch.setattr(store, "begin_reading", counted)
    worker = Worker([record_default], concurrency=1, name="chain")
    serving = asyncio.create_task(worker.run(grace=5))
    try:
        for run in runs:
            await wait_for_state(str(run.id), State.is_final, 15)
    finally:
        worker.stop()
        await serving
    for i, run in enumerate(runs):
        record = await read_run_record(run.id)
        assert record.run.state.is_completed()
        assert record.attempt == 1 and record.worker == "chain"
        assert await _history(str(run.id)) == ["Scheduled", "Running", "Completed"]
        assert len(await get_bus().client.lrange(f"test:ran:chain-{i}", 0, -1)) == 1
    if get_bus().one_node:  # the second and third were begun by the step before them
        assert begun_by_the_worker == [str(runs[0].id)]
    else:  # in Cluster the queue is on a slot of its own: the worker begins each
        assert begun_by_the_worker == [str(run.id) for run in runs]
