"""Prefect's flow and task options: generator tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from hitl_bus import (
    execute_flow_run,
    flow,
    get_client,
    resume_flow_run,
    suspend_flow_run,
    task,
)
from hitl_bus.errors import FlowRunSuspended

pytestmark = pytest.mark.usefixtures("bus_url")

CALLS: dict[str, int] = {}


# -- generator tasks -------------------------------------------------------------------------


@task
async def letters(word: str) -> AsyncIterator[str]:
    CALLS["letters"] = CALLS.get("letters", 0) + 1
    for char in word:
        yield char


@flow
async def spells(word: str) -> str:
    got = [char async for char in letters(word)]
    answer = await suspend_flow_run(wait_for_input=str)
    return "".join(got) + answer


async def test_an_async_generator_task_yields_its_values_and_runs_again_when_re_executed() -> None:
    CALLS.clear()
    with pytest.raises(FlowRunSuspended) as info:
        await spells("ab")
    run_id = info.value.flow_run_id
    await resume_flow_run(run_id, {"value": "!"})
    assert await execute_flow_run(spells, run_id) == "ab!"
    assert CALLS["letters"] == 2  # not replayed: generator results are not kept
    assert (await get_client().read_flow_run(run_id)).state.is_completed()


def test_a_generator_task_in_a_sync_flow_yields_its_values() -> None:
    @task
    def countdown(n: int) -> Iterator[int]:
        yield from range(n, 0, -1)

    @flow
    def launches() -> list[int]:
        return list(countdown(3))

    assert launches() == [3, 2, 1]
