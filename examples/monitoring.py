"""A monitoring loop whose alert thresholds change while it runs, without pausing it.

    python examples/monitoring.py

Each check the flow takes whatever ``ThresholdUpdate`` inputs have arrived
(``receive_input(..., timeout=0)`` never waits), applies them (one out of range is
not taken: ``reject_input`` tells the sender why), then compares
the readings with the thresholds and logs an alert for each one above. The
readings are simulated: smooth waves that stay under the default thresholds,
so an alert shows that an update took effect.

The script starts a short run, sends it a lower latency threshold with
``send_input`` and prints the run's log lines about it. A worker serves the
flow as ``monitor/default`` (``python -m workers.examples``): ten minutes of
checks, updated from the web UI's send box.
"""

from __future__ import annotations

import asyncio
import math
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from hitl_bus import (  # all but flow: hitl_bus only
    HitlClient,
    InputReceiver,
    flow,
    reject_input,
    start_flow_run,
)
from hitl_bus.client.orchestration import get_client
from hitl_bus.input import RunInput
from hitl_bus.input.run_input import receive_input, send_input
from hitl_bus.logging import get_run_logger

Metric = Literal["cpu", "memory", "latency"]
#: Alert above these; the simulated readings never reach them.
DEFAULT_THRESHOLDS: dict[str, float] = {"cpu": 90.0, "memory": 85.0, "latency": 500.0}
UNITS = {"cpu": "%", "memory": "%", "latency": " ms"}


class ThresholdUpdate(RunInput):
    """A new alert threshold for one metric, applied at the run's next check."""

    metric: Metric = Field(title="Metric", description="Which reading the threshold applies to.")
    threshold: float = Field(
        gt=0,
        le=60_000,
        title="Threshold",
        description="Alert when a reading is above this: percent for cpu and memory, "
        "milliseconds for latency.",
    )
    reason: str = Field("", title="Reason", description="Optional; logged with the change.")

    @model_validator(mode="after")
    def percent_in_range(self) -> ThresholdUpdate:
        """cpu and memory are percentages, so a threshold above 100 would never alert."""
        if self.metric != "latency" and self.threshold > 100:
            raise ValueError(f"{self.metric} is a percentage; use a threshold up to 100")
        return self


def read_metrics(check: int) -> dict[str, float]:
    """Simulated readings for one check (deterministic, so runs can be compared)."""
    return {
        "cpu": round(55 + 20 * math.sin(check / 4), 1),  # 35-75 %
        "memory": round(60 + 10 * math.sin(check / 9 + 1), 1),  # 50-70 %
        "latency": round(180 + 60 * math.sin(check / 3 + 2), 1),  # 120-240 ms
    }


async def apply_updates(
    updates: InputReceiver[ThresholdUpdate], thresholds: dict[str, float]
) -> None:
    """Apply every update that has arrived since the last check; never waits."""
    logger = get_run_logger()
    while True:
        try:
            update: ThresholdUpdate = await updates.next()
        except TimeoutError:  # nothing (more) has arrived; the receiver keeps its position
            return
        except ValidationError as exc:  # e.g. from a send box; it is skipped from now on
            why = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            logger.warning("Ignored a threshold update: %s", why)
            await reject_input(updates, why)  # the sender sees "Not taken: <why>"
            continue
        previous = thresholds[update.metric]
        thresholds[update.metric] = update.threshold
        because = f": {update.reason}" if update.reason else ""
        logger.info(
            "Threshold for %s is now %g (was %g)%s",
            update.metric,
            update.threshold,
            previous,
            because,
        )


@flow
async def monitor(checks: int = 600, interval: float = 1.0) -> dict[str, float]:
    """Check the metrics ``checks`` times, ``interval`` seconds apart; returns the thresholds."""
    logger = get_run_logger()
    thresholds = dict(DEFAULT_THRESHOLDS)
    updates: InputReceiver[ThresholdUpdate] = receive_input(ThresholdUpdate, timeout=0)
    alerts = 0
    for check in range(1, checks + 1):
        await apply_updates(updates, thresholds)
        readings = read_metrics(check)
        logger.info(
            "Check %d/%d: %s",
            check,
            checks,
            ", ".join(f"{m} {v:g}{UNITS[m]}" for m, v in readings.items()),
        )
        for metric, value in readings.items():
            if value > thresholds[metric]:
                alerts += 1
                logger.warning(
                    "ALERT: %s at %g%s is above its threshold %g%s",
                    metric,
                    value,
                    UNITS[metric],
                    thresholds[metric],
                    UNITS[metric],
                )
        if check < checks:
            await asyncio.sleep(interval)
    logger.info("Done: %d checks, %d alerts", checks, alerts)
    return thresholds


async def main() -> list[str]:
    """Run a short monitor, lower its latency threshold mid-run, print what the run logged."""
    client: HitlClient = get_client()
    run = await start_flow_run(monitor, checks=12, interval=0.1)
    run_id = str(run.id)
    await client.wait_for_flow_run(run_id, lambda s: s.is_running(), timeout=30)
    await asyncio.sleep(0.25)  # let a few checks pass under the default thresholds
    print("sending: latency threshold 100 ms")
    update = ThresholdUpdate(metric="latency", threshold=100, reason="tighter SLO")
    await send_input(update, flow_run_id=run_id)
    state = (await client.wait_for_flow_run(run_id, timeout=30)).state
    messages = [record["message"] for record in await client.read_logs(run_id)]
    applied = [i for i, m in enumerate(messages) if m.startswith("Threshold for latency")]
    assert applied, "the run never applied the update"
    updated = applied[0]
    alerts = [m for m in messages[updated:] if m.startswith("ALERT: latency")]
    assert alerts, "no latency alert after the threshold went down"
    assert not any(m.startswith("ALERT") for m in messages[:updated])
    for message in (messages[updated], alerts[0], messages[-1]):
        print(message)
    print(f"run {state.name}")
    return messages


if __name__ == "__main__":
    asyncio.run(main())
