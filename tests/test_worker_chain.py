"""A worker's slot goes from one queued run to the next in one step: the final state of
one run takes the next entry and, on standalone Redis, begins its run too."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hitl_bus import keys, resume_flow_run
from hitl_bus.bus import codec, get_bus
from hitl_bus.context import QueueEntry
from hitl_bus.deployments.registry import arun_deployment, register
from hitl_bus.deployments.worker import Worker
from hitl_bus.engine import store
from hitl_bus.engine.runs import read_run_record, wait_for_state
from hitl_bus.engine.states import Completed, State, StateType
from tests.worker_flows import asks, record_default


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


async def test_a_run_begun_in_a_step_whose_reply_was_lost_is_run_again_once(
    bus_url: str,
) -> None:
    if not get_bus().one_node:
        pytest.skip("in Cluster no step begins the next run")
    await register(record_default)
    first = await arun_deployment(record_default.full_name, {"tag": "lost-0"}, timeout=0)
    second = await arun_deployment(record_default.full_name, {"tag": "lost-1"}, timeout=0)
    queue = keys.deployment_queue(record_default.full_name)
    client = get_bus().client
    await client.xgroup_create(queue, keys.WORKERS_GROUP, id="0", mkstream=True)
    # A worker "w" takes the first run and ends it; that step takes and begins the second,
    # and its reply is lost: the worker never learns of the second run.
    [(_, [(entry_id, _)])] = await client.xreadgroup(keys.WORKERS_GROUP, "w", {queue: ">"}, count=1)
    start = await store.begin_reading(str(first.id), worker="w")
    entry = QueueEntry(queue, keys.WORKERS_GROUP, entry_id, consumer="w")
    await store.set_state(
        str(first.id), Completed(), expect=(StateType.RUNNING,), attempt=start.attempt,
        entry=entry,
    )  # fmt: skip
    assert isinstance(entry.next_start, store.Start)
    assert (await read_run_record(second.id)).run.state.is_running()
    # The live worker finds the entry pending under it, never started: the run goes back
    # on the queue, and runs once.
    worker = Worker([record_default], concurrency=1, name="w", dead_after=0.05)
    await asyncio.sleep(0.1)
    await worker._take_back_lost(record_default)
    assert (await read_run_record(second.id)).run.state.is_scheduled()
    serving = asyncio.create_task(worker.run(grace=5))
    try:
        await wait_for_state(str(second.id), State.is_final, 15)
    finally:
        worker.stop()
        await serving
    record = await read_run_record(second.id)
    assert record.run.state.is_completed() and record.attempt == 2
    assert len(await client.lrange("test:ran:lost-1", 0, -1)) == 1
    assert len(await client.lrange("test:ran:lost-0", 0, -1)) == 0  # ended by hand above


async def test_a_worker_with_a_run_waiting_still_takes_more_up_to_its_concurrency(
    bus_url: str,
) -> None:
    """A worker that has just taken a run leaves the next to an idle worker for a moment;
    with its own runs waiting (paused here) it still reads its queue again."""
    deployment = asks.to_deployment("busy")
    await register(deployment)
    worker = Worker([deployment], concurrency=2, name="busy")
    serving = asyncio.create_task(worker.run(grace=5))
    try:
        first = await arun_deployment(deployment.full_name, {"tag": "busy-1"}, timeout=0)
        await wait_for_state(str(first.id), State.is_paused, 15)
        second = await arun_deployment(deployment.full_name, {"tag": "busy-2"}, timeout=0)
        await wait_for_state(str(second.id), State.is_paused, 15)
        for run in (first, second):
            assert (await read_run_record(run.id)).worker == "busy"
            await resume_flow_run(run.id, {"value": 1})
        for run in (first, second):
            assert (await wait_for_state(str(run.id), State.is_final, 15)).state.is_completed()
    finally:
        worker.stop()
        await serving
