"""The seed's shirt order: a flow pauses for a typed order; its own validator runs after resume.

    python examples/shirt_order.py

Here the "person" is code in the same script: it answers once with an order the
schema accepts but the validator refuses (small + green), sees the flow pause
again with the reason, then answers with a valid order.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import ValidationError, model_validator

from hitl_bus import flow, start_flow_run  # start_flow_run: hitl_bus only
from hitl_bus.client.orchestration import get_client
from hitl_bus.flow_runs import pause_flow_run, resume_flow_run
from hitl_bus.input import RunInput
from hitl_bus.logging import get_run_logger


class ShirtOrder(RunInput):
    size: Literal["small", "medium", "large", "xlarge"]
    color: Literal["red", "green", "black"]

    @model_validator(mode="after")
    def in_stock(self) -> ShirtOrder:
        if self.color == "green" and self.size == "small":
            raise ValueError("Green is only in stock for medium, large and XL.")
        return self


@flow
async def shirt() -> str:
    while True:  # custom validation runs in the flow, after resume
        try:
            order = await pause_flow_run(wait_for_input=ShirtOrder)
        except ValidationError as exc:
            get_run_logger().error("Invalid order: %s", exc.errors()[0]["msg"])
            continue
        get_run_logger().info("Ordered a %s %s shirt", order.size, order.color)
        return f"{order.size} {order.color}"


async def wait_until_paused(run_id: str, pause_key: str) -> str | None:
    """Wait (pushed) for the run's pause ``pause_key``; returns the paused state's message."""
    run = await get_client().wait_for_flow_run(
        run_id, lambda s: s.is_paused() and s.state_details.pause_key == pause_key
    )
    return run.state.message


async def main() -> str:
    run = await start_flow_run(shirt)
    run_id = str(run.id)
    await wait_until_paused(run_id, "1")
    print("answering: small green")
    await resume_flow_run(run_id, {"size": "small", "color": "green"})
    reason = await wait_until_paused(run_id, "2")
    print(f"paused again: {reason}")
    print("answering: medium green")
    await resume_flow_run(run_id, {"size": "medium", "color": "green"})
    state = (await get_client().wait_for_flow_run(run_id)).state
    print(f"run {state.name}")
    return state.name


if __name__ == "__main__":
    asyncio.run(main())
