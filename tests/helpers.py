"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hitl_bus import flow, get_client, receive_input, start_flow_run
from hitl_bus.engine import create_flow_run
from hitl_bus.engine.runs import FlowRun
from hitl_bus.engine.states import State, StateType


async def new_run(flow_name: str = "test-flow") -> FlowRun:
    """A stored run in Running state, with nothing executing it."""
    return await create_flow_run(flow_name, {}, state=State(type=StateType.RUNNING))


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until ``check()`` is true (generous bound; not a speed test)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


async def until_waiting(n: int) -> None:
    """Until ``n`` waiters are parked on this loop's dispatcher."""
    from hitl_bus.bus import get_bus

    async def parked() -> bool:
        return get_bus().dispatcher.waiting() == n

    await eventually(parked, timeout=30)


async def start_paused(flow_fn: Any) -> str:
    """Start ``flow_fn`` (taking no parameters) and return its id once it is paused."""
    run = await start_flow_run(flow_fn)

    async def paused() -> bool:
        return (await get_client().read_flow_run(run.id)).state.is_paused()

    await eventually(paused)
    return str(run.id)


@flow
async def greeter() -> None:
    """The seed's greeter: answer each name until "exit" (used by many tests)."""
    async for msg in receive_input(str, with_metadata=True, timeout=5):
        if msg.value == "exit":
            return
        await msg.respond(f"Hello, {msg.value}!")


def shirt_order_for(assignees: list[str] | None) -> Any:
    """A flow pausing for a ``ShirtOrder`` that only ``assignees`` may answer."""
    from hitl_bus import pause_flow_run
    from tests.models import ShirtOrder

    @flow(name="assigned-shirt")
    async def assigned_shirt() -> str:
        order = await pause_flow_run(wait_for_input=ShirtOrder, timeout=120, assignees=assignees)
        return f"{order.size} {order.color}"

    return assigned_shirt
