"""The seed's resumable flow: receive for a while, remember what was seen, suspend.

    python examples/suspend_resume.py

A suspended run holds no process. Resuming it re-executes it from the top; the
keys it already handled are kept in a ``JSONBlock`` and passed as
``exclude_keys``, so each input is handled once across executions, and the
``suspend_flow_run`` call that suspended it now returns, so the run completes. (With
``receive_input(..., consumer="name")`` the position lives in Redis instead and
no block is needed.)
"""

from __future__ import annotations

import asyncio

from hitl_bus import execute_flow_run, flow, start_flow_run  # all but flow: hitl_bus only
from hitl_bus.blocks import JSONBlock
from hitl_bus.client.orchestration import get_client
from hitl_bus.flow_runs import resume_flow_run, suspend_flow_run
from hitl_bus.input.run_input import receive_input, send_input
from hitl_bus.logging import get_run_logger

BLOCK = "example-seen-keys"


@flow
async def resumable() -> None:
    seen = await JSONBlock.load(BLOCK)
    async for m in receive_input(str, with_metadata=True, timeout=0.5, exclude_keys=seen.value):
        get_run_logger().info("handling %s", m.value)
        print(f"handled {m.value}", flush=True)
        seen.value.append(m.metadata.key)
        await seen.save(BLOCK, overwrite=True)
    await suspend_flow_run(timeout=3600)


async def until_suspended(run_id: str) -> None:
    await get_client().wait_for_flow_run(run_id, lambda s: s.is_suspended(), timeout=30)


async def main() -> None:
    await JSONBlock(value=[]).save(BLOCK, overwrite=True)
    run = await start_flow_run(resumable)
    run_id = str(run.id)
    for name in ("first", "second"):
        await send_input(name, flow_run_id=run_id)
    await until_suspended(run_id)
    print("suspended; sending one more and resuming", flush=True)
    await send_input("third", flow_run_id=run_id)
    await resume_flow_run(run_id)
    await execute_flow_run(resumable, run_id)  # a worker would do this
    state = (await get_client().read_flow_run(run_id)).state
    print(f"run {state.name}", flush=True)
    print(f"seen keys: {len((await JSONBlock.load(BLOCK)).value)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
