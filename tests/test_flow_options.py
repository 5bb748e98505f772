"""Prefect's ``@flow`` options and call options: timeouts, retries, prints to the run log,
validated parameters, ``return_state``; generator tasks; executing a suspended run."""

from __future__ import annotations

import asyncio
import builtins
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from hitl_bus import (
    State,
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
    task,
)
from hitl_bus.engine import cancel_flow_run, create_flow_run
from hitl_bus.errors import (
    FlowRunCancelled,
    FlowRunSuspended,
    FlowRunTimeoutError,
    NotPausedError,
    ParameterMismatch,
)
from tests.helpers import eventually

pytestmark = pytest.mark.usefixtures("bus_url")

CALLS: dict[str, int] = {}


class Order(BaseModel):
    size: str
    qty: int = 1


async def history(run_id: Any) -> list[tuple[str, str]]:
    states = await get_client().read_state_history(run_id)
    return [(state.type.value, state.name) for state in states]


async def until_state(run_id: Any, type_: StateType, name: str | None = None) -> State:
    async def there() -> bool:
        state = (await get_client().read_flow_run(run_id)).state
        return state.type is type_ and (name is None or state.name == name)

    await eventually(there, timeout=10)
    return (await get_client().read_flow_run(run_id)).state


def only_run(flow_name: str) -> Any:
    async def read() -> Any:
        (run,) = await get_client().read_flow_runs(flow_name=flow_name)
        return run

    return read()


# -- timeout_seconds -------------------------------------------------------------------------


async def test_a_body_past_its_timeout_fails_timed_out_and_raises_a_timeout_error() -> None:
    @flow(timeout_seconds=0.3)
    async def slow() -> None:
        await asyncio.sleep(30)

    started = time.monotonic()
    with pytest.raises(FlowRunTimeoutError, match=r"exceeded timeout of 0\.3 second\(s\)") as info:
        await slow()
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - started < 10
    run = await only_run("slow")
    assert run.state.is_failed() and run.state.name == "TimedOut"
    assert run.state.message == "Flow run exceeded timeout of 0.3 second(s)"
    assert await history(run.id) == [
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("FAILED", "TimedOut"),
    ]


async def test_time_paused_counts_toward_the_timeout_and_the_pause_is_closed() -> None:
    @flow(timeout_seconds=0.5)
    async def waits_for_a_person() -> int:
        return await pause_flow_run(wait_for_input=int, timeout=60)

    with pytest.raises(FlowRunTimeoutError):
        await waits_for_a_person()
    run = await only_run("waits-for-a-person")
    assert run.state.name == "TimedOut"
    assert [t for t, _ in await history(run.id)] == ["PENDING", "RUNNING", "PAUSED", "FAILED"]
    assert await get_client().read_pause(run.id) is None
    with pytest.raises(NotPausedError):
        await resume_flow_run(run.id, {"value": 1})


async def test_a_sync_body_past_its_timeout_fails_and_its_thread_stops_at_a_checkpoint() -> None:
    stopped = threading.Event()

    @flow(timeout_seconds=0.3)
    def busy() -> None:
        try:
            while True:
                time.sleep(0.02)
                get_run_logger().info("tick")  # a checkpoint
        finally:
            stopped.set()

    with pytest.raises(FlowRunTimeoutError):
        busy()  # blocks: a sync flow
    run = await only_run("busy")
    assert run.state.is_failed() and run.state.name == "TimedOut"
    assert await asyncio.to_thread(stopped.wait, 10)


# -- retries -----------------------------------------------------------------------------------


@task
async def expensive(x: int) -> int:
    CALLS["expensive"] = CALLS.get("expensive", 0) + 1
    return x * 10


async def test_retries_run_the_body_again_replaying_tasks_and_answered_pauses() -> None:
    CALLS.clear()
    tries: list[int] = []

    @flow(retries=2)
    async def flaky() -> int:
        base = await expensive(4)
        extra = await pause_flow_run(wait_for_input=int)
        tries.append(extra)
        if len(tries) < 3:
            raise ValueError(f"try {len(tries)} failed")
        return base + extra

    outcome = asyncio.ensure_future(flaky(return_state=True))
    run = await only_run_when_paused("flaky")
    await resume_flow_run(run.id, {"value": 2})
    state = await asyncio.wait_for(outcome, 20)
    assert state.is_completed() and state.result() == 42
    assert CALLS["expensive"] == 1  # the task ran once; the pause was asked once
    assert tries == [2, 2, 2]
    assert await history(run.id) == [
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("PAUSED", "Paused"),
        ("RUNNING", "Running"),
        ("SCHEDULED", "AwaitingRetry"),
        ("RUNNING", "Retrying"),
        ("SCHEDULED", "AwaitingRetry"),
        ("RUNNING", "Retrying"),
        ("COMPLETED", "Completed"),
    ]
    states = await get_client().read_state_history(run.id)
    assert states[4].message == "ValueError: try 1 failed"
    assert states[5].message == "retry 1 of 2"


async def only_run_when_paused(flow_name: str) -> Any:
    async def paused() -> bool:
        runs = await get_client().read_flow_runs(flow_name=flow_name)
        return len(runs) == 1 and runs[0].state.is_paused()

    await eventually(paused, timeout=10)
    return await only_run(flow_name)


async def test_past_its_last_retry_the_run_fails_and_the_error_propagates() -> None:
    @flow(retries=1, retry_delay_seconds=[0.2, 5])
    async def always_fails() -> None:
        raise RuntimeError("still broken")

    with pytest.raises(RuntimeError, match="still broken"):
        await always_fails()
    run = await only_run("always-fails")
    states = await get_client().read_state_history(run.id)
    assert [(s.type.value, s.name) for s in states] == [
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("SCHEDULED", "AwaitingRetry"),
        ("RUNNING", "Retrying"),
        ("FAILED", "Failed"),
    ]
    awaiting = states[2]
    assert awaiting.state_details.scheduled_time is not None
    delay = (awaiting.state_details.scheduled_time - awaiting.timestamp).total_seconds()
    assert 0.1 < delay < 1  # the first delay of the list
    assert states[-1].message == "RuntimeError: still broken"
    logs = [r["message"] for r in await get_client().read_logs(run.id)]
    assert sum(m.startswith("Flow run failed") for m in logs) == 2
    assert "Retry 1 of 1 in 0.2 second(s)" in logs


def test_a_sync_flow_retries_in_its_thread_with_its_tasks_replayed() -> None:
    counted: dict[str, int] = {"square": 0, "body": 0}

    @task
    def square(x: int) -> int:
        counted["square"] += 1
        return x * x

    @flow(retries=1)
    def sync_flaky(x: int) -> int:
        counted["body"] += 1
        value = square(x)
        if counted["body"] == 1:
            raise ValueError("first try")
        return value

    assert sync_flaky(3) == 9
    assert counted == {"square": 1, "body": 2}
    (run,) = get_client(sync_client=True).read_flow_runs(flow_name="sync-flaky")
    assert run.state.is_completed()


async def test_a_run_cancelled_while_it_awaits_a_retry_ends_cancelled_at_once() -> None:
    @flow(retries=1, retry_delay_seconds=60)
    async def fails_once() -> None:
        raise ValueError("boom")

    outcome = asyncio.ensure_future(fails_once(return_state=True))

    async def awaiting_retry() -> bool:
        runs = await get_client().read_flow_runs(flow_name="fails-once")
        return bool(runs) and runs[0].state.name == "AwaitingRetry"

    await eventually(awaiting_retry, timeout=10)
    run = await only_run("fails-once")
    await cancel_flow_run(run.id)
    state = await asyncio.wait_for(outcome, 10)
    assert state.is_cancelled()
    with pytest.raises(FlowRunCancelled):
        state.result()
    assert (await get_client().read_flow_run(run.id)).state.is_cancelled()


# -- log_prints ------------------------------------------------------------------------------


async def test_log_prints_sends_the_runs_prints_to_its_log_and_no_one_elses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    original = builtins.print
    both = asyncio.Barrier(3)

    @flow(log_prints=True)
    async def chatty() -> None:
        print("hello from", "chatty")
        await both.wait()
        print("to stderr, untouched", file=__import__("sys").stderr)

    @flow
    async def quiet() -> None:
        await both.wait()
        print("quiet prints to stdout")

    async def outside() -> None:
        await both.wait()
        print("outside any run")

    await asyncio.gather(chatty(), quiet(), outside())
    assert builtins.print is original
    out = capsys.readouterr()
    assert "quiet prints to stdout" in out.out and "outside any run" in out.out
    assert "chatty" not in out.out
    assert "to stderr, untouched" in out.err
    chatty_run, quiet_run = await only_run("chatty"), await only_run("quiet")
    logs = await get_client().read_logs(chatty_run.id)
    assert [(r["level"], r["message"]) for r in logs] == [("INFO", "hello from chatty")]
    assert await get_client().read_logs(quiet_run.id) == []


def test_log_prints_covers_a_sync_body_and_its_subflows() -> None:
    ids: dict[str, str] = {}

    @flow
    def child() -> None:
        ids["child"] = get_run_context().flow_run.id
        print("from the child")

    @flow(log_prints=True)
    def parent() -> None:
        ids["parent"] = get_run_context().flow_run.id
        print("from the parent", 1)
        child()

    parent()
    client = get_client(sync_client=True)
    assert [r["message"] for r in client.read_logs(ids["parent"])] == ["from the parent 1"]
    assert [r["message"] for r in client.read_logs(ids["child"])] == ["from the child"]


# -- validate_parameters ---------------------------------------------------------------------


async def test_arguments_are_coerced_to_their_annotations_before_the_run_starts() -> None:
    seen: list[Any] = []

    @flow
    async def place(order: Order, copies: int, note: str = "none") -> None:
        seen.extend([order, copies, note])

    await place({"size": "M", "qty": "2"}, "3")  # type: ignore[arg-type]
    assert seen == [Order(size="M", qty=2), 3, "none"]
    run = await only_run("place")
    assert run.parameters == {"order": {"size": "M", "qty": 2}, "copies": 3, "note": "none"}


async def test_invalid_arguments_raise_parameter_mismatch_per_parameter_and_create_no_run() -> None:
    @flow
    async def strict(order: Order, copies: int) -> None:
        raise AssertionError("never runs")

    with pytest.raises(ParameterMismatch) as info:
        strict({"qty": 1}, "many")  # type: ignore[arg-type]  # raised at the call
    assert isinstance(info.value, TypeError)
    assert [e["loc"] for e in info.value.errors] == [["order", "size"], ["copies"]]
    assert "copies" in str(info.value)
    assert await get_client().read_flow_runs(flow_name="strict") == []


async def test_validate_parameters_false_passes_values_as_given() -> None:
    seen: list[Any] = []

    @flow(validate_parameters=False)
    async def loose(copies: int) -> None:
        seen.append(copies)

    await loose("3")  # type: ignore[arg-type]
    assert seen == ["3"]


async def test_an_executed_run_gets_its_stored_parameters_as_the_annotated_types() -> None:
    seen: list[Any] = []

    @flow
    async def deliver(order: Order) -> str:
        seen.append(order)
        return order.size

    run = await create_flow_run("deliver", {"order": {"size": "L"}})
    assert await execute_flow_run(deliver, run.id) == "L"
    assert seen == [Order(size="L", qty=1)]

    bad = await create_flow_run("deliver", {"order": {"qty": 2}})
    with pytest.raises(ParameterMismatch):
        await execute_flow_run(deliver, bad.id)
    state = (await get_client().read_flow_run(bad.id)).state
    assert state.is_failed() and "order.size" in (state.message or "")


async def test_start_flow_run_validates_its_arguments_too() -> None:
    @flow
    async def counts(n: int) -> int:
        return n

    with pytest.raises(ParameterMismatch):
        await start_flow_run(counts, "lots")
    run = await start_flow_run(counts, "5")
    assert run.parameters == {"n": 5}


# -- return_state ----------------------------------------------------------------------------


async def test_return_state_gives_the_final_state_with_the_value_or_the_error() -> None:
    @flow
    async def adds(a: int, b: int) -> int:
        return a + b

    @flow
    async def breaks() -> None:
        raise KeyError("gone")

    @flow
    async def collects(**extra: Any) -> dict[str, Any]:
        return extra

    state = await adds(1, 2, return_state=True)
    assert isinstance(state, State) and state.is_completed() and state.result() == 3
    stored = (await get_client().read_flow_run((await only_run("adds")).id)).state
    assert stored.id == state.id
    with pytest.raises(ValueError, match="holds no result"):
        stored.result()  # flow results are not stored in Redis

    failed = await breaks(return_state=True)
    assert failed.is_failed() and failed.message == "KeyError: 'gone'"
    with pytest.raises(KeyError):
        failed.result()
    assert isinstance(failed.result(raise_on_failure=False), KeyError)

    assert (await collects(return_state=True)).result() == {}  # not taken as a parameter


def test_return_state_of_a_sync_flow_and_of_a_suspended_run() -> None:
    @flow
    def doubles(x: int) -> int:
        return 2 * x

    @flow
    def asks() -> str:
        return suspend_flow_run(wait_for_input=str)

    assert doubles(4, return_state=True).result() == 8
    suspended = asks(return_state=True)
    assert suspended.is_paused() and suspended.name == "Suspended"
    assert suspended.result() is None  # no result yet, as in Prefect
    assert suspended.state_details.pause_reschedule


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


# -- executing a suspended run ---------------------------------------------------------------


async def test_executing_a_suspended_run_before_its_resume_raises_and_changes_nothing() -> None:
    @flow
    async def needs_a_go() -> str:
        return await suspend_flow_run(wait_for_input=str)

    with pytest.raises(FlowRunSuspended) as info:
        await needs_a_go()
    run_id = info.value.flow_run_id
    before = await history(run_id)
    with pytest.raises(FlowRunSuspended):
        await execute_flow_run(needs_a_go, run_id)
    assert await history(run_id) == before
    state = await until_state(run_id, StateType.PAUSED, "Suspended")
    assert state.state_details.pause_reschedule
    await resume_flow_run(run_id, {"value": "go"})
    assert await execute_flow_run(needs_a_go, run_id) == "go"


# -- options that are only kept -------------------------------------------------------------


def test_prefects_descriptive_options_are_kept() -> None:
    @flow(description="Places an order.", version="7", persist_result=False)
    def described() -> None:
        """The docstring."""

    @flow
    def documented() -> None:
        """The docstring is the description."""

    assert (described.description, described.version) == ("Places an order.", "7")
    assert described.persist_result is False
    assert documented.description == "The docstring is the description."
    assert documented.version is not None and len(documented.version) == 32  # the file's MD5
    with pytest.raises(ValueError):
        flow(retries=-1)(documented.fn)
