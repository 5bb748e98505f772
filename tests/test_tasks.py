"""``@task``: results kept for a re-executed run, replayed when the inputs match, recomputed
when they differ; JSON only; a plain call outside a run."""

from __future__ import annotations

import asyncio

import pytest

from hitl_bus import (
    StateType,
    execute_flow_run,
    flow,
    get_client,
    resume_flow_run,
    suspend_flow_run,
    task,
)
from hitl_bus.errors import FlowRunSuspended, TaskResultNotJSON

pytestmark = pytest.mark.usefixtures("bus_url")


CALLS: dict[str, int] = {}


@task
async def expensive(x: int) -> int:
    CALLS["expensive"] = CALLS.get("expensive", 0) + 1
    return x * 10


@flow
async def suspending(x: int) -> int:
    before = await expensive(x)
    extra = await suspend_flow_run(wait_for_input=int)
    return before + extra


async def test_suspend_ends_execution_and_resume_reexecutes_with_task_results_reused() -> None:
    CALLS.clear()
    with pytest.raises(FlowRunSuspended) as info:
        await suspending(4)
    run_id = info.value.flow_run_id
    run = await get_client().read_flow_run(run_id)
    assert run.state.is_suspended() and run.state.type is StateType.PAUSED
    pause = await get_client().read_pause(run_id)
    assert pause is not None and pause.suspended
    await resume_flow_run(run_id, {"value": 2})
    resumed = (await get_client().read_flow_run(run_id)).state
    assert resumed.type is StateType.SCHEDULED and resumed.name == "Resuming"
    assert await execute_flow_run(suspending, run_id) == 42
    assert CALLS["expensive"] == 1  # replayed, not recomputed
    assert (await get_client().read_flow_run(run_id)).state.is_completed()


async def test_polling_task_gets_fresh_values_each_call() -> None:
    counter = {"n": 0}

    @task
    async def poll() -> int:
        counter["n"] += 1
        return counter["n"]

    @flow
    async def poller() -> list[int]:
        return [await poll() for _ in range(3)]

    assert await poller() == [1, 2, 3]


async def test_changed_task_inputs_are_recomputed_on_reexecution() -> None:
    seen: list[int] = []

    @task
    async def square(x: int) -> int:
        seen.append(x)
        return x * x

    @flow
    async def squares(base: int) -> int:
        first = await square(base)
        await suspend_flow_run()
        return first + await square(base + 1)

    with pytest.raises(FlowRunSuspended) as info:
        await squares(2)
    await resume_flow_run(info.value.flow_run_id)
    assert await execute_flow_run(squares, info.value.flow_run_id) == 4 + 9
    assert seen == [2, 3]


async def test_task_result_that_is_not_json_is_a_clear_error() -> None:
    @task
    async def makes_object() -> object:
        return object()

    @flow
    async def bad() -> None:
        await makes_object()

    with pytest.raises(TaskResultNotJSON, match="not JSON"):
        await bad()


async def test_tasks_outside_a_run_are_plain_calls() -> None:
    assert await expensive(1) == 10


def test_sync_tasks_in_a_sync_flow_are_replayed() -> None:
    calls: list[int] = []

    @task
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    @flow
    def sync_suspender(x: int) -> int:
        first = double(x)
        extra = suspend_flow_run(wait_for_input=int)
        return first + int(extra)

    with pytest.raises(FlowRunSuspended) as info:
        sync_suspender(5)
    resume_flow_run(info.value.flow_run_id, {"value": 1})

    async def again() -> int:
        return int(await execute_flow_run(sync_suspender, info.value.flow_run_id))

    assert asyncio.run(again()) == 11
    assert calls == [5]
