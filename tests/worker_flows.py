"""Flows and deployments that worker processes serve in tests/test_workers.py."""

from __future__ import annotations

import asyncio
import os

from hitl_bus import (
    flow,
    get_run_context,
    get_run_logger,
    pause_flow_run,
    suspend_flow_run,
    task,
)
from hitl_bus.bus import get_bus


async def _note(key: str) -> None:
    run_id = get_run_context().flow_run.id
    await get_bus().client.rpush(key, f"{run_id}:{os.getpid()}")


@flow
async def record(tag: str) -> str:
    await _note(f"test:ran:{tag}")
    await asyncio.sleep(0.05)
    return tag


@flow
async def slow(seconds: float, tag: str = "slow") -> str:
    await _note(f"test:started:{tag}")
    await asyncio.sleep(seconds)
    await _note(f"test:finished:{tag}")
    return "done"


@flow
async def tidy(seconds: float, tag: str = "tidy") -> str:
    """Like ``slow``, but tidies up for a moment when interrupted (as real flows do)."""
    await _note(f"test:started:{tag}")
    try:
        await asyncio.sleep(seconds)
    finally:
        await asyncio.sleep(0.3)
    await _note(f"test:finished:{tag}")
    return "done"


@task
async def counted(tag: str) -> int:
    await _note(f"test:task:{tag}")
    return 1


@flow
async def asks(tag: str = "asks", timeout: float = 60) -> int:
    await counted(tag)
    value = await pause_flow_run(wait_for_input=int, timeout=timeout)
    await _note(f"test:resumed:{tag}")
    return int(value)


@flow
async def answers(tag: str = "answers") -> int:
    """Pause for an int and record, once per completed body, which answer it got."""
    await counted(tag)
    value = await pause_flow_run(wait_for_input=int, timeout=120)
    await get_bus().client.rpush(f"test:answer:{tag}", f"{get_run_context().flow_run.id}={value}")
    return int(value)


@flow
async def suspends(tag: str = "suspends") -> int:
    await counted(tag)
    value = await suspend_flow_run(wait_for_input=int)
    return int(value) + 1


record_default = record.to_deployment("default")
slow_default = slow.to_deployment("default", parameters={"seconds": 0.1})
slow_retry = slow.to_deployment("retry", retries=1)
tidy_default = tidy.to_deployment("default")
asks_default = asks.to_deployment("default")
answers_default = answers.to_deployment("default")
suspends_default = suspends.to_deployment("default")


@flow
def sync_double(x: int) -> int:
    """A sync flow: its body runs in a thread of the worker."""
    get_run_logger().info("doubling %d", x)
    return 2 * x


sync_double_default = sync_double.to_deployment("default")
