"""Benchmark retention: what a run costs in Redis memory, and that finished runs give it back.

Run from the repo root::

    .venv/bin/python -m bench.bench_retention            # 10,000 runs, about a minute
    .venv/bin/python -m bench.bench_retention --quick    # 1,000 runs

On a throwaway redis-server, with ``HITL_BUS_RUN_RETENTION`` set short (``--retention``
seconds), the script measures ``used_memory`` (after ``MEMORY PURGE``):

1. before anything;
2. with ``--paused`` runs paused on a form (an ``int`` input, a description and a
   default), executing in this process: bytes per paused run;
3. after ``--runs`` in-process runs that each log a line, get one input and complete:
   bytes per finished run (still within retention);
4. after the retention passed and one index sweep (``forget_expired``): what is left
   over the starting point, with the number of keys left.

Reference line, raw redis-py: a hash and a stream entry per "run" (the least a run
record with one event could take), for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import redis

from bench.common import Bench, Results, add_output_args


def used_memory(admin: Any) -> int:
    admin.execute_command("MEMORY", "PURGE")
    return int(admin.info("memory")["used_memory"])


async def finished_runs(count: int, lanes: int) -> None:
    from hitl_bus import RunInput, flow, get_run_logger, receive_input, send_input, start_flow_run
    from hitl_bus.engine.runs import wait_for_state

    class Reading(RunInput):
        value: int

    @flow
    async def one_shot() -> int:
        get_run_logger().info("started")
        async for reading in receive_input(Reading, timeout=30):
            return reading.value
        return -1

    async def lane(n: int) -> None:
        for _ in range(n):
            run = await start_flow_run(one_shot)
            await send_input(Reading(value=1), flow_run_id=run.id)
            await wait_for_state(run.id, lambda s: s.is_final(), timeout=30)

    await asyncio.gather(*(lane(count // lanes) for _ in range(lanes)))


async def paused_runs(count: int) -> None:
    from hitl_bus import RunInput, flow, pause_flow_run, start_flow_run
    from hitl_bus.engine.runs import read_flow_run

    class Approval(RunInput):
        amount: int = 10

    @flow
    async def waits() -> None:
        form = Approval.with_initial_data(description="**Approve** the amount", amount=5)
        await pause_flow_run(wait_for_input=form, timeout=3600)

    ids = [str((await start_flow_run(waits)).id) for _ in range(count)]
    for run_id in ids:
        while not (await read_flow_run(run_id)).state.is_paused():
            await asyncio.sleep(0.01)


async def sweep() -> int:
    from hitl_bus.engine import indexes

    total = 0
    while True:
        removed = await indexes.forget_expired(limit=1000)
        total += removed
        if removed == 0:
            return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--paused", type=int, default=1_000)
    parser.add_argument("--retention", type=float, default=5.0)
    parser.add_argument("--lanes", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="1,000 runs, 200 paused")
    add_output_args(parser, "exit 1 when memory is not given back", "unused here")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.paused = 1_000, 200
    bench = Bench(args)
    res = Results()
    with bench.redis() as server:
        admin = redis.Redis.from_url(server.url)
        start = used_memory(admin)

        # Three loops, each with a bus of its own reading the settings of its phase.
        os.environ["HITL_BUS_RUN_RETENTION"] = "3600"  # nothing expires while measured

        async def paused_phase() -> float:
            await paused_runs(args.paused)
            return (used_memory(admin) - start) / args.paused

        async def sample_phase(sample: int) -> float:
            before = used_memory(admin)
            await finished_runs(sample, args.lanes)
            return (used_memory(admin) - before) / sample

        async def expiry_phase() -> tuple[int, float, int]:
            base = used_memory(admin)
            t0 = time.perf_counter()
            await finished_runs(args.runs, args.lanes)
            return base, time.perf_counter() - t0, used_memory(admin)

        per_paused = asyncio.run(paused_phase())  # leaving the loop cancels the paused runs
        admin.execute_command("FLUSHALL")
        per_finished = asyncio.run(sample_phase(min(args.runs, 1_000)))
        admin.execute_command("FLUSHALL")
        os.environ["HITL_BUS_RUN_RETENTION"] = str(args.retention)
        base, elapsed, peak = asyncio.run(expiry_phase())
        time.sleep(args.retention + 1.0)
        removed = asyncio.run(sweep())
        after = used_memory(admin)
        keys_left = sorted(k.decode() for k in admin.keys("*"))
        events_bytes = int(admin.memory_usage("hitl:events") or 0)
        events_len = admin.xlen("hitl:events")
        pipe = admin.pipeline(transaction=False)
        for i in range(args.runs):
            pipe.hset(f"raw:{{{i}}}:run", mapping={"id": str(i), "state": '{"type":"COMPLETED"}'})
            pipe.xadd(f"raw:{{{i}}}:events", {"type": "state.changed"})
        pipe.execute()
        raw_bytes = (used_memory(admin) - after) / args.runs
    leftover = int(after - base - events_bytes)
    res.add("bytes per paused run (form with description)", "", f"{per_paused:,.0f}")
    res.add(
        f"bytes per finished run (within retention; {min(args.runs, 1_000):,} runs)",
        f"{raw_bytes:,.0f}",
        f"{per_finished:,.0f}",
        f"{per_finished / raw_bytes:.1f}x a bare hash + event",
    )
    res.add(f"runs completed per second ({args.lanes} lanes)", "", f"{args.runs / elapsed:,.0f}")
    res.add("runs dropped from the indexes by the sweep", "", f"{removed:,}")
    res.add(
        f"memory left {args.retention:.0f} s after the last run finished",
        "",
        f"{leftover:+,} bytes; keys: {', '.join(keys_left)}",
        "back near the start (under 1% of the runs' memory)",
        ok=leftover < 0.01 * per_finished * args.runs,
    )
    res.notes.append(
        f"Not counted above: the global event stream `hitl:events`, {events_len:,} entries "
        f"({events_bytes:,} bytes), bounded by `HITL_BUS_EVENTS_MAXLEN` (10,000 by default) "
        "rather than by run retention: it is the audit trail the UI and CLI follow."
    )
    res.notes.append(
        f"used_memory before the {args.runs:,} runs {base:,} bytes, when the last finished "
        f"{peak:,} (runs expire {args.retention:.0f} s after they finish, so the "
        f"first had gone by then), after expiry {after:,} (MEMORY PURGE before each reading)."
    )
    return bench.report(res, "bench_retention.py", "retention, ")


if __name__ == "__main__":
    sys.exit(main())
