"""The client inbox: where replies to code outside any run land, recreated after a flush."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from hitl_bus import receive_input, send_input, start_flow_run
from tests.helpers import greeter

pytestmark = pytest.mark.realredis


async def test_flushed_redis_recreates_the_inbox_on_demand(admin: aioredis.Redis) -> None:
    replies = receive_input(str, timeout=5)
    run = await start_flow_run(greeter)
    await send_input("Ada", flow_run_id=run.id)
    assert await replies.next() == "Hello, Ada!"
    await send_input("exit", flow_run_id=run.id)

    await admin.flushall()
    await admin.script_flush()  # scripts are reloaded on demand too
    waiting = asyncio.create_task(replies.next())  # parked on the (now gone) inbox stream
    run = await start_flow_run(greeter)
    await send_input("Bob", flow_run_id=run.id)  # recreates the inbox before the reply
    async with asyncio.timeout(5):
        assert await waiting == "Hello, Bob!"
    await send_input("exit", flow_run_id=run.id)
