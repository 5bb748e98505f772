"""In-process flow runs: states, context, logs, events, and the sync/async rule."""

from __future__ import annotations

import asyncio
import uuid

import pytest

import hitl_bus
from hitl_bus import (
    StateType,
    flow,
    get_client,
    get_run_context,
    get_run_logger,
    receive_input,
    send_input,
    start_flow_run,
)
from hitl_bus.engine import create_flow_run
from hitl_bus.errors import FlowRunNotFound
from hitl_bus.runtime import flow_run as runtime_run
from tests.helpers import eventually, greeter, new_run

pytestmark = pytest.mark.usefixtures("bus_url")


async def test_async_flow_run_is_stored_with_states_and_context() -> None:
    seen: dict[str, object] = {}

    @flow(name="adder")
    async def add(a: int, b: int = 2) -> int:
        ctx = get_run_context()
        seen["id"] = ctx.flow_run.id
        seen["runtime_id"] = runtime_run.id
        seen["parameters"] = ctx.flow_run.parameters
        seen["state"] = (await get_client().read_flow_run(ctx.flow_run.id)).state.type
        return a + b

    assert await add(1) == 3
    assert isinstance(seen["id"], uuid.UUID)  # Prefect's flow_run.id; its runtime's is text
    assert isinstance(seen["runtime_id"], str) and seen["runtime_id"] == str(seen["id"])
    assert seen["parameters"] == {"a": 1, "b": 2}
    assert seen["state"] is StateType.RUNNING
    run = await get_client().read_flow_run(uuid.UUID(str(seen["id"])))
    assert run.flow_name == "adder"
    assert run.parameters == {"a": 1, "b": 2}
    assert run.state.is_completed() and run.state.is_final()
    types = [e["data"]["state"]["type"] for e in await get_client().read_events(run.id)]
    assert types == ["PENDING", "RUNNING", "COMPLETED"]
    assert runtime_run.id is None  # outside the run again


async def test_failing_flow_is_failed_with_traceback_in_logs() -> None:
    @flow
    async def broken() -> None:
        get_run_logger().info("about to fail")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await broken()
    (run,) = await get_client().read_flow_runs(flow_name="broken")
    assert run.state.is_failed()
    assert run.state.message == "ValueError: boom"
    logs = await get_client().read_logs(run.id)
    assert logs[0]["message"] == "about to fail"
    assert "Traceback" in logs[-1]["message"] and "boom" in logs[-1]["message"]
    failed = await get_client().read_flow_runs(state=StateType.FAILED)
    assert [r.id for r in failed] == [run.id]


async def test_unknown_run_reads_raise() -> None:
    with pytest.raises(FlowRunNotFound):
        await get_client().read_flow_run(uuid.uuid4())


def test_sync_flow_blocks_and_its_body_calls_block_too() -> None:
    @flow
    def echo_twice(messages: list[str]) -> list[str]:
        me = get_run_context().flow_run.id
        assert isinstance(hitl_bus.runtime.flow_run.id, str)
        for message in messages:
            send_input(message, flow_run_id=me)  # plain call: blocks, returns None
        got = list(receive_input(str, timeout=0.3))  # plain `for` iteration
        get_run_logger().info("got %s", got)
        return got

    assert echo_twice(["a", "b"]) == ["a", "b"]
    client = get_client(sync_client=True)
    (run,) = client.read_flow_runs(flow_name="echo-twice")
    assert run.state.is_completed()
    assert client.read_logs(run.id)[0]["message"] == "got ['a', 'b']"


def test_sync_code_outside_any_run_sends_and_receives() -> None:
    async def start() -> str:
        run = await start_flow_run(greeter)
        return str(run.id)

    # Two event loops one after another, then plain sync calls through the portal.
    async def scenario() -> None:
        run_id = await start()
        await send_input("Ada", flow_run_id=run_id)
        assert await receive_input(str, timeout=5).next() == "Hello, Ada!"
        await send_input("exit", flow_run_id=run_id)

    asyncio.run(scenario())
    asyncio.run(scenario())


def test_sync_receiver_iterates_with_for_outside_a_run() -> None:
    async def make_run() -> str:
        return str((await new_run()).id)

    run_id = asyncio.run(make_run())
    for value in [1, 2, 3]:
        send_input(value, flow_run_id=run_id)
    assert list(receive_input(int, flow_run_id=run_id, timeout=0.2)) == [1, 2, 3]
    receiver = receive_input(int, flow_run_id=run_id, timeout=0.1)
    assert receiver.next() == 1
    with pytest.raises(TimeoutError):
        receive_input(str, flow_run_id=run_id, timeout=0.1).next()


async def test_sync_flow_called_from_async_code_blocks_and_returns() -> None:
    @flow
    def double(x: int) -> int:
        get_run_logger().info("doubling")
        return 2 * x

    assert double(21) == 42


async def test_async_receiver_refuses_plain_for_inside_async_code() -> None:
    run = await new_run()
    with pytest.raises(TypeError, match="async for"):
        for _ in receive_input(str, flow_run_id=run.id, timeout=0.1):
            pass


async def test_bad_parameters_are_a_type_error_and_create_no_run() -> None:
    @flow
    async def takes_one(x: int) -> int:
        return x

    with pytest.raises(TypeError):
        takes_one(1, 2)  # type: ignore[call-arg]
    assert await get_client().read_flow_runs(flow_name="takes-one") == []


async def test_background_runs_end_with_their_own_state() -> None:
    @flow
    async def quick() -> int:
        return 1

    run = await start_flow_run(quick)

    async def completed() -> bool:
        return (await get_client().read_flow_run(run.id)).state.is_completed()

    await eventually(completed)


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
async def test_an_unreachable_redis_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    from hitl_bus.errors import BusConnectionError, HitlBusError
    from hitl_bus.redis_server import free_port

    monkeypatch.setenv("HITL_BUS_REDIS_URL", f"{scheme}://127.0.0.1:{free_port()}/0")
    with pytest.raises(BusConnectionError, match="HITL_BUS_REDIS_URL") as info:
        await send_input("x", flow_run_id=uuid.uuid4())
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, HitlBusError)
    with pytest.raises(BusConnectionError):
        await create_flow_run("unreachable")  # a pipeline (MULTI/EXEC)
