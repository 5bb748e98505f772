"""Cancelling runs: running, paused, receiving, sync, queued and suspended ones."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from hitl_bus import (
    StateType,
    flow,
    get_client,
    get_run_context,
    get_run_logger,
    pause_flow_run,
    receive_input,
    start_flow_run,
    suspend_flow_run,
    task,
)
from hitl_bus.engine import create_flow_run
from hitl_bus.engine.states import State
from hitl_bus.errors import FlowRunCancelled, FlowRunSuspended
from tests.helpers import eventually

pytestmark = pytest.mark.usefixtures("bus_url")


async def final_state(run_id: Any) -> State:
    async def final() -> bool:
        return (await get_client().read_flow_run(run_id)).state.is_final()

    await eventually(final)
    return (await get_client().read_flow_run(run_id)).state


async def test_a_running_async_flow_stops_and_the_next_task_never_runs() -> None:
    done: list[int] = []

    @task
    async def step(i: int) -> int:
        done.append(i)
        return i

    @flow
    async def busy() -> None:
        for i in range(10_000):
            await step(i)
            await asyncio.sleep(0.01)

    run = await start_flow_run(busy)
    await eventually(lambda: _now(len(done) > 3))
    state = await get_client().cancel_flow_run(run.id)
    assert state.type is StateType.CANCELLING
    assert (await final_state(run.id)).is_cancelled()
    count = len(done)
    await asyncio.sleep(0.1)
    assert len(done) == count < 10_000  # nothing after the cancel point ran
    types = [s.type for s in await get_client().read_state_history(run.id)]
    assert types[-2:] == [StateType.CANCELLING, StateType.CANCELLED]


async def test_a_paused_run_is_cancelled_and_does_not_continue() -> None:
    after: list[str] = []

    @flow
    async def waits() -> None:
        await pause_flow_run(wait_for_input=int, timeout=60)
        after.append("continued")

    run = await start_flow_run(waits)

    async def paused() -> bool:
        return (await get_client().read_flow_run(run.id)).state.is_paused()

    await eventually(paused)
    await get_client().cancel_flow_run(run.id)
    assert (await final_state(run.id)).is_cancelled()
    assert after == []


async def test_a_waiting_receiver_is_interrupted() -> None:
    @flow
    async def listens() -> None:
        async for _ in receive_input(str, timeout=None):
            pass

    run = await start_flow_run(listens)
    await eventually(lambda: _running(run.id))
    await asyncio.sleep(0.05)
    await get_client().cancel_flow_run(run.id)
    async with asyncio.timeout(2):
        assert (await final_state(run.id)).is_cancelled()


def test_a_sync_flow_stops_at_its_next_checkpoint() -> None:
    done: list[int] = []
    ids: list[str] = []

    @task
    def step(i: int) -> int:
        done.append(i)
        return i

    @flow
    def sync_busy() -> None:
        ids.append(get_run_context().flow_run.id)
        for i in range(10_000):
            step(i)
            threading.Event().wait(0.01)
            get_run_logger().info("step %d", i)

    errors: list[BaseException] = []

    def call() -> None:
        try:
            sync_busy()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    client = get_client(sync_client=True)
    for _ in range(500):
        if len(done) > 3:
            break
        threading.Event().wait(0.01)
    client.cancel_flow_run(ids[0])
    thread.join(10)
    assert isinstance(errors[0], FlowRunCancelled)
    assert client.read_flow_run(ids[0]).state.is_cancelled()
    count = len(done)
    threading.Event().wait(0.1)
    assert len(done) == count


async def test_queued_and_suspended_runs_are_cancelled_at_once() -> None:
    queued = await create_flow_run("never", state=State(type=StateType.SCHEDULED))
    assert (await get_client().cancel_flow_run(queued.id)).is_cancelled()

    @flow
    async def sleeper() -> None:
        await suspend_flow_run()

    with pytest.raises(FlowRunSuspended) as info:
        await sleeper()
    assert (await get_client().cancel_flow_run(info.value.flow_run_id)).is_cancelled()
    # Cancelling a finished run changes nothing.
    assert (await get_client().cancel_flow_run(queued.id)).is_cancelled()


async def test_a_directly_called_flow_raises_when_cancelled() -> None:
    ids: list[str] = []

    @flow
    async def direct() -> None:
        ids.append(get_run_context().flow_run.id)
        await asyncio.sleep(30)

    call = asyncio.create_task(direct())
    await eventually(lambda: _now(bool(ids)))
    await get_client().cancel_flow_run(ids[0])
    with pytest.raises(FlowRunCancelled):
        await call
    assert not call.cancelled()


async def _now(value: bool) -> bool:
    return value


async def _running(run_id: Any) -> bool:
    return (await get_client().read_flow_run(run_id)).state.is_running()


async def test_a_cancel_in_the_first_moments_of_a_run_is_not_missed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An execution starts watching for a cancel a little after it begins; a cancel that
    lands before that is read from where the execution began, and stops it all the same."""
    from hitl_bus import keys
    from hitl_bus.bus import get_bus
    from hitl_bus.engine import cancelling

    monkeypatch.setattr(cancelling, "WATCH_AFTER", 1.0)  # wide enough to cancel within
    reached: list[str] = []

    @flow
    async def long_wait() -> None:
        reached.append("started")
        await asyncio.sleep(30)
        reached.append("slept through")

    run = await start_flow_run(long_wait)
    await eventually(lambda: _now(reached == ["started"]))
    assert not get_bus().dispatcher.is_watching(keys.run_control(str(run.id)))
    await get_client().cancel_flow_run(run.id)  # before its watch began
    assert (await final_state(run.id)).is_cancelled()
    assert reached == ["started"]
