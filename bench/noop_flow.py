"""The one no-op flow ``bench_workers.py``'s worker processes serve (``bench-noop/bench``).

Kept apart from ``tests/worker_flows.py``: a worker serves every deployment of the module it
is given, so the benchmark's workers would read the tests' queues too, and the tests' workers
would serve this one.

Started as ``python -m hitl_bus.cli worker bench/noop_flow.py`` from the repo root.
The body's first line reads ``CLOCK_MONOTONIC`` (one clock for the whole machine on
Linux) and subtracts ``t0``, which the client took right before its
``run_deployment`` call; the result goes to the Redis list ``key`` as
``"<latency ns> <first line ns> <worker pid> <run id>"``.
"""

from __future__ import annotations

import os
import time

from hitl_bus import flow, get_run_context
from hitl_bus.bus import get_bus


@flow(name="bench-noop")
async def noop(t0: int, key: str) -> None:
    started = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    run_id = get_run_context().flow_run.id
    await get_bus().client.rpush(key, f"{started - t0} {started} {os.getpid()} {run_id}")


bench = noop.to_deployment("bench")
