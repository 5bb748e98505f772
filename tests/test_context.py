"""The current run as a context variable, and what one execution keeps while it runs."""

from __future__ import annotations

import asyncio

import pytest

from hitl_bus.context import (
    CancelRequested,
    FlowRunContext,
    FlowRunInfo,
    RunState,
    current_run,
    current_run_id,
    raise_if_cancelled,
    reset_current_run,
    set_current_run,
)


async def test_the_current_run_is_set_and_reset() -> None:
    assert current_run() is None and current_run_id() is None
    ctx = FlowRunContext(FlowRunInfo("run-1", "name", "flow"), asyncio.get_running_loop())
    token = set_current_run(ctx)
    try:
        assert current_run() is ctx and current_run_id() == "run-1"
        raise_if_cancelled()  # not cancelled: nothing happens
        ctx.cancel_requested = True
        with pytest.raises(CancelRequested):
            raise_if_cancelled()
    finally:
        reset_current_run(token)
    assert current_run() is None


async def test_background_writes_are_waited_for() -> None:
    state = RunState()
    done: list[int] = []

    async def write(n: int) -> None:
        await asyncio.sleep(0.01 * n)
        done.append(n)

    async def broken() -> None:
        raise RuntimeError("a failed write does not stop the others")

    for n in (3, 1, 2):
        state.write_later(write(n))
    state.write_later(broken())
    assert len(state.pending_writes) == 4
    await state.flush_writes()
    assert sorted(done) == [1, 2, 3]
    assert not state.pending_writes  # each write leaves the set when it is done


def test_each_execution_starts_with_nothing_kept() -> None:
    a, b = RunState(), RunState()
    a.task_calls["t"] = 1
    a.receivers_announced.add("str-auto")
    assert b.task_calls == {} and b.receivers_announced == set()
    assert (b.attempt, b.pauses, b.rejection) == (0, 0, None)
