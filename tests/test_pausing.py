"""Pause, suspend and resume with typed input (the seed's scenarios)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from hitl_bus import (
    StateType,
    execute_flow_run,
    flow,
    get_client,
    get_run_context,
    get_run_logger,
    pause_flow_run,
    resume_flow_run,
    start_flow_run,
    suspend_flow_run,
    sweep_expired,
    task,
)
from hitl_bus.errors import (
    FlowPauseTimeout,
    FlowRunNotFound,
    NotPausedError,
    ResumeRejected,
)
from hitl_bus.input.actions import aread_flow_run_input
from tests.helpers import eventually
from tests.models import ShirtOrder, UserName

pytestmark = pytest.mark.usefixtures("bus_url")


async def until_paused(run_id: Any, name: str = "Paused") -> None:
    async def paused() -> bool:
        state = (await get_client().read_flow_run(run_id)).state
        return state.is_paused() and state.name == name

    await eventually(paused)


async def result_of(run_id: Any) -> Any:
    async def final() -> bool:
        return (await get_client().read_flow_run(run_id)).state.is_final()

    await eventually(final)
    return (await get_client().read_flow_run(run_id)).state


async def test_builtin_type_pause_shows_one_value_field_and_returns_the_value() -> None:
    got: list[str] = []

    @flow
    async def greet_user() -> None:
        got.append(await pause_flow_run(wait_for_input=str))

    run = await start_flow_run(greet_user)
    await until_paused(run.id)
    pause = await get_client().read_pause(run.id)
    assert pause is not None and pause.pause_key == "1"
    assert list(pause.schema_["properties"]) == ["value"]
    assert pause.deadline is not None
    await resume_flow_run(run.id, {"value": "Ada"})
    assert (await result_of(run.id)).is_completed()
    assert got == ["Ada"]


async def test_base_model_and_initial_data_with_description() -> None:
    class Order(BaseModel):
        qty: int = Field(gt=0, description="How many")

    results: list[Any] = []

    @flow
    async def two_pauses() -> None:
        described = UserName.with_initial_data(description="**Who** are you?", name="anonymous")
        user = await pause_flow_run(wait_for_input=described, timeout=600)
        order = await pause_flow_run(wait_for_input=Order)
        results.extend([user, order])

    run = await start_flow_run(two_pauses)
    await until_paused(run.id)
    pause = await get_client().read_pause(run.id)
    assert pause is not None
    assert pause.description == "**Who** are you?"
    assert pause.defaults == {"name": "anonymous"}
    assert pause.schema_["properties"]["name"]["description"] == "What people call you"
    await resume_flow_run(run.id, {"name": "Ada"})

    async def second_pause() -> bool:
        p = await get_client().read_pause(run.id)
        return p is not None and p.pause_key == "2"

    await eventually(second_pause)
    await resume_flow_run(run.id, {"qty": 3})
    assert (await result_of(run.id)).is_completed()
    user, order = results
    assert isinstance(user, UserName) and user.name == "Ada"
    assert isinstance(order, Order) and order.qty == 3


async def test_shirt_order_validator_loop_records_the_rejection() -> None:
    @flow
    async def shirt() -> str:
        while True:
            try:
                order = await pause_flow_run(wait_for_input=ShirtOrder)
                return f"{order.size}/{order.color}"
            except ValidationError as exc:
                get_run_logger().error("Invalid order: %s", exc)

    run = await start_flow_run(shirt)
    await until_paused(run.id)
    await resume_flow_run(run.id, {"size": "small", "color": "green"})  # passes the schema

    async def repaused_with_reason() -> bool:
        state = (await get_client().read_flow_run(run.id)).state
        return state.is_paused() and "Green is only in stock" in (state.message or "")

    await eventually(repaused_with_reason)
    pause = await get_client().read_pause(run.id)
    assert pause is not None and pause.pause_key == "2"
    await resume_flow_run(run.id, {"size": "medium", "color": "green"})
    assert (await result_of(run.id)).is_completed()
    history = [s.type for s in await get_client().read_state_history(run.id)]
    assert history.count(StateType.PAUSED) == 2
    messages = [s.message or "" for s in await get_client().read_state_history(run.id)]
    assert any(m.startswith("Input rejected:") for m in messages)
    logs = await get_client().read_logs(run.id)
    assert any("Invalid order" in r["message"] for r in logs)


async def test_resume_errors_are_typed_and_change_nothing() -> None:
    @flow
    async def waits() -> Any:
        return await pause_flow_run(wait_for_input=ShirtOrder)

    with pytest.raises(FlowRunNotFound):
        await resume_flow_run(uuid.uuid4(), {"size": "small", "color": "red"})
    run = await start_flow_run(waits)
    await until_paused(run.id)
    with pytest.raises(ResumeRejected) as missing:
        await resume_flow_run(run.id)
    assert missing.value.errors
    with pytest.raises(ResumeRejected) as bad:
        await resume_flow_run(run.id, {"size": "huge"})
    messages = {tuple(e["loc"]): e["msg"] for e in bad.value.errors}
    assert messages == {  # plain words, on the field they are about
        ("size",): "must be one of: small, medium, large, xlarge",
        ("color",): "is required",
    }
    assert (await get_client().read_flow_run(run.id)).state.is_paused()  # left as it was
    await resume_flow_run(run.id, {"size": "large", "color": "red"})
    with pytest.raises(NotPausedError):
        await resume_flow_run(run.id, {"size": "large", "color": "red"})  # a second resume
    assert (await result_of(run.id)).is_completed()
    with pytest.raises(NotPausedError):
        await resume_flow_run(run.id, {"size": "large", "color": "red"})


async def test_a_resume_is_checked_against_the_pause_it_meets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The process remembers the forms it has checked answers against, but an answer is
    stored only after a check against the schema of the pause the script finds: one a
    remembered form lets through and the pause's own refuses is refused, nothing stored."""
    from hitl_bus.bus import get_bus
    from hitl_bus.engine import store

    @flow
    async def counts() -> Any:
        return await pause_flow_run(wait_for_input=int)

    @flow
    async def names() -> Any:
        return await pause_flow_run(wait_for_input=str)

    bus = get_bus()
    scripts: list[int] = []
    real_eval = bus.eval

    async def counted(source: str, keys: Any, args: Any, **options: Any) -> Any:
        if source == store.SCRIPTS["resume"]:
            scripts.append(len(args))
        return await real_eval(source, keys, args, **options)

    monkeypatch.setattr(bus, "eval", counted)
    first, second = await start_flow_run(counts), await start_flow_run(counts)
    await until_paused(first.id)
    await until_paused(second.id)
    await resume_flow_run(first.id, {"value": 1})  # a form new to this process
    scripts.clear()
    await resume_flow_run(second.id, {"value": 2})  # the same form again: one script call
    assert len(scripts) == 1
    assert (await result_of(first.id)).is_completed()
    assert (await result_of(second.id)).is_completed()

    run = await start_flow_run(names)
    await until_paused(run.id)
    with pytest.raises(ResumeRejected) as refused:  # passes the int form, not this str one
        await resume_flow_run(run.id, {"value": 3})
    assert [e["loc"] for e in refused.value.errors] == [["value"]]
    assert (await get_client().read_flow_run(run.id)).state.is_paused()
    assert await get_client().read_pause(run.id) is not None
    await resume_flow_run(run.id, {"value": "three"})
    assert (await result_of(run.id)).is_completed()


async def test_an_answer_that_is_not_json_is_refused_and_changes_nothing() -> None:
    @flow
    async def waits() -> Any:
        return await pause_flow_run(wait_for_input=dict[str, int])

    run = await start_flow_run(waits)
    await until_paused(run.id)
    for answer in ({"value": {1: 2}}, {"value": {"a": object()}}):
        with pytest.raises(ResumeRejected, match="not JSON"):
            await resume_flow_run(run.id, answer)
    assert (await get_client().read_flow_run(run.id)).state.is_paused()
    await resume_flow_run(run.id, {"value": {"a": 2}})
    assert (await result_of(run.id)).is_completed()


async def test_pause_without_input_and_push_wake() -> None:
    woke = asyncio.Event()

    @flow
    async def approve() -> None:
        assert await pause_flow_run(poll_interval=3600) is None
        woke.set()

    run = await start_flow_run(approve)
    await until_paused(run.id)
    with pytest.raises(ResumeRejected):
        await resume_flow_run(run.id, {"value": 1})  # this pause takes no input
    await resume_flow_run(run.id)
    async with asyncio.timeout(1.0):  # push, not a poll
        await woke.wait()


async def test_pause_timeout_fails_the_run_and_raises_in_the_flow() -> None:
    seen: list[BaseException] = []

    @flow
    async def impatient() -> None:
        try:
            await pause_flow_run(wait_for_input=int, timeout=0.3)
        except FlowPauseTimeout as exc:
            seen.append(exc)
            raise

    run = await start_flow_run(impatient)
    state = await result_of(run.id)
    assert state.is_failed()
    await eventually(lambda: _truthy_value(len(seen) == 1))  # the flow saw it too
    with pytest.raises(NotPausedError):
        await resume_flow_run(run.id, {"value": 1})


async def _paused_and_abandoned(paused_flow: Any, flow_name: str) -> tuple[str, float]:
    """Start ``paused_flow`` (it pauses at once), then end its process: the run stays Paused
    in Redis with no one to expire it. Returns the run's id and its pause's deadline."""
    task_ = asyncio.ensure_future(paused_flow())

    async def run_id() -> str:
        runs = await get_client().read_flow_runs(flow_name=flow_name)
        return str(runs[0].id) if runs else ""

    await eventually(lambda: _truthy(run_id()))
    rid = await run_id()
    await until_paused(rid)
    task_.cancel()  # the process is gone; the run stays Paused in Redis
    with pytest.raises(asyncio.CancelledError):
        await task_
    paused = (await get_client().read_flow_run(rid)).state
    assert paused.is_paused() and paused.state_details.pause_timeout is not None
    return rid, paused.state_details.pause_timeout.timestamp()


async def _past(deadline: float) -> None:
    """Until just past ``deadline`` (by this machine's clock; Redis's is the same here)."""
    await asyncio.sleep(max(0.0, deadline - time.time() + 0.1))


async def test_an_expired_pause_reads_failed_with_no_process_left() -> None:
    @flow
    async def abandoned() -> None:
        await pause_flow_run(wait_for_input=int, timeout=0.5)

    rid, deadline = await _paused_and_abandoned(abandoned, "abandoned")
    await _past(deadline)
    assert await sweep_expired() == [rid]
    assert await sweep_expired() == []
    state = (await get_client().read_flow_run(rid)).state
    assert state.is_failed() and "not resumed in time" in (state.message or "")


async def test_a_resume_past_the_deadline_fails_the_run_and_says_so() -> None:
    @flow
    async def too_late() -> None:
        await pause_flow_run(wait_for_input=int, timeout=0.4)

    rid, deadline = await _paused_and_abandoned(too_late, "too-late")
    await _past(deadline)  # no process to expire it: the resume finds the deadline passed
    with pytest.raises(FlowPauseTimeout):
        await resume_flow_run(rid, {"value": 1})
    state = (await get_client().read_flow_run(rid)).state
    assert state.is_failed() and state.message == "The pause was not resumed in time"
    assert await aread_flow_run_input("paused-1-response", rid) is None  # the answer is not kept


async def test_reading_an_expired_pause_fails_it() -> None:
    @flow
    async def abandoned_too() -> None:
        await pause_flow_run(timeout=0.3)

    task_ = asyncio.ensure_future(abandoned_too())
    runs: list[Any] = []

    async def paused() -> bool:
        runs[:] = await get_client().read_flow_runs(state=StateType.PAUSED)
        return bool(runs)

    await eventually(paused)
    task_.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task_
    await asyncio.sleep(0.4)
    assert (await get_client().read_flow_run(runs[0].id)).state.is_failed()  # checked on read
    with pytest.raises(FlowPauseTimeout):
        # Resuming also checks: here the read already failed it, so it is not paused.
        try:
            await resume_flow_run(runs[0].id)
        except NotPausedError as exc:
            raise FlowPauseTimeout(str(exc)) from exc


async def test_pause_inside_a_task() -> None:
    @task
    async def ask() -> str:
        return str(await pause_flow_run(wait_for_input=str))

    @flow
    async def asks() -> str:
        return await ask()

    run = await start_flow_run(asks)
    await until_paused(run.id)
    await resume_flow_run(run.id, {"value": "from a task"})
    assert (await result_of(run.id)).is_completed()


async def test_another_run_suspends_a_run_at_its_next_task() -> None:
    steps: list[int] = []

    @task
    async def step(i: int) -> int:
        steps.append(i)
        await asyncio.sleep(0.02)
        return i

    @flow
    async def worker() -> None:
        for i in range(500):
            await step(i)

    run = await start_flow_run(worker)

    @flow
    async def boss(target: str) -> None:
        await suspend_flow_run(flow_run_id=target)

    await eventually(lambda: _truthy_value(len(steps) > 2))
    await boss(str(run.id))
    await until_paused(run.id, name="Suspended")
    count = len(steps)
    await asyncio.sleep(0.1)
    assert len(steps) == count  # nothing ran after the boundary
    assert count < 500


async def test_pause_outside_a_run_is_an_error() -> None:
    from hitl_bus.errors import MissingContextError

    with pytest.raises(MissingContextError):
        await pause_flow_run()


def test_sync_flow_pauses_and_is_resumed_from_sync_code() -> None:
    import threading

    results: list[Any] = []

    @flow
    def greet_user() -> None:
        results.append(get_run_context().flow_run.id)
        results.append(pause_flow_run(wait_for_input=str))  # plain call: blocks
        get_run_logger().info("Hello, %s!", results[-1])

    thread = threading.Thread(target=greet_user)
    thread.start()
    client = get_client(sync_client=True)
    for _ in range(500):
        if results and client.read_flow_run(results[0]).state.is_paused():
            break
        threading.Event().wait(0.01)
    resume_flow_run(results[0], {"value": "Ada"})
    thread.join(5)
    assert results[1] == "Ada"
    assert client.read_logs(results[0])[-1]["message"] == "Hello, Ada!"


async def _truthy(value: Any) -> bool:
    return bool(await value)


async def _truthy_value(value: bool) -> bool:
    return value


async def test_another_run_suspends_a_paused_run_at_its_next_pause() -> None:
    @flow
    async def two_steps() -> Any:
        await pause_flow_run(timeout=30)
        return await pause_flow_run(wait_for_input=int, timeout=30)

    run = await start_flow_run(two_steps)
    await until_paused(run.id)
    await suspend_flow_run(flow_run_id=run.id)  # from outside any run
    await resume_flow_run(run.id)
    await until_paused(run.id, name="Suspended")  # the next pause became a suspension
    await resume_flow_run(run.id, {"value": 7})
    assert await execute_flow_run(two_steps, run.id) == 7


PAUSER = """
import asyncio, sys
from hitl_bus import flow, get_run_context, pause_flow_run

@flow
async def waits() -> None:
    print(get_run_context().flow_run.id, flush=True)
    await pause_flow_run(wait_for_input=int, timeout=float(sys.argv[1]))

asyncio.run(waits())
"""


@pytest.mark.realredis
async def test_a_pause_whose_process_was_killed_fails_at_its_deadline(real_redis_url: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    from hitl_bus import get_client, sweep_expired

    env = {**os.environ, "HITL_BUS_REDIS_URL": real_redis_url, "HITL_BUS_LOG_TO_STDERR": "0"}
    ids = []
    for timeout in ("1.0", "1.0"):
        proc = subprocess.Popen(
            [sys.executable, "-c", PAUSER, timeout], env=env, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        run_id = (await asyncio.to_thread(proc.stdout.readline)).strip()

        async def paused(run_id: str = run_id) -> bool:
            return (await get_client().read_flow_run(run_id)).state.is_paused()

        await eventually(paused)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ids.append(run_id)
        if len(ids) == 1:  # checked now: starting the second process can take a second
            assert (
                await get_client().read_flow_run(ids[0])
            ).state.is_paused()  # before its deadline
    second = (await get_client().read_flow_run(ids[1])).state
    assert second.state_details.pause_timeout is not None
    # Until just past the later deadline (by this machine's clock; Redis's is the same here).
    await asyncio.sleep(
        max(0.0, second.state_details.pause_timeout.timestamp() - time.time() + 0.1)
    )
    first = (await get_client().read_flow_run(ids[0])).state  # a read fails it
    assert first.is_failed() and "not resumed in time" in (first.message or "")
    assert await sweep_expired() == [ids[1]]  # the sweep fails the other
    assert (await get_client().read_flow_run(ids[1])).state.is_failed()
