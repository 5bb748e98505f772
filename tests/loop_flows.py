"""A deployment that says which event loop its worker runs (tests/test_loops.py)."""

from __future__ import annotations

import asyncio

from hitl_bus import flow, receive_input


@flow
async def which_loop() -> None:
    """Answer each input with the running loop's class, until "exit"."""
    loop = type(asyncio.get_running_loop())
    async for msg in receive_input(str, with_metadata=True, timeout=30):
        if msg.value == "exit":
            return
        await msg.respond(f"{msg.value} {loop.__module__}.{loop.__qualname__}")


which_loop_default = which_loop.to_deployment("default")
