"""hitl_bus on a local Redis Cluster at scale: connections, wake-ups, memory, load spread.

Starts a Cluster of ``--masters`` (6) masters on loopback, then:

1. One process starts ``--paused`` flow runs that each wait in ``pause_flow_run`` and
   ``--receivers`` runs each waited on by ``receive_input(str).next()``, spread over all
   slots by their ids. Measured: time until all wait, the process's Redis connections per
   master, Redis memory per paused run.
2. Another process sends one input to each receiver and resumes each paused run, one at a
   time, as fast as one sender goes; each value carries its send time, so the waiting
   process measures every wake-up's latency.
3. A burst of ``--burst`` flow runs (created, run and completed in one process, 100 at a
   time): the share of all commands each master took (target: none above 1.5x the mean).

Raw redis-py has no equivalent here, so the table's raw column is empty but for the
command-share row's mean.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import redis

from bench import common
from bench.common import Bench, Results, ms, now_ns, percentile

MASTER_BOUND = 2  # the target: at most this many connections per master besides the pool


# ---------------------------------------------------------------------------------------
# Roles, in child processes.
# ---------------------------------------------------------------------------------------


async def role_waiter(out: Any, receivers: int, paused: int) -> None:
    from hitl_bus import flow, pause_flow_run, receive_input, start_flow_run
    from hitl_bus.bus import get_bus
    from hitl_bus.engine import create_flow_run

    latencies: list[int] = []

    @flow(name="bench-held")
    async def held() -> None:
        sent = await pause_flow_run(wait_for_input=int, timeout=3600)
        latencies.append(now_ns() - sent)

    dispatcher = get_bus().dispatcher
    started = time.perf_counter()
    held_ids: list[str] = []
    for start in range(0, paused, 500):
        batch = min(500, paused - start)
        runs = await asyncio.gather(*(start_flow_run(held) for _ in range(batch)))
        held_ids += [str(run.id) for run in runs]
    from hitl_bus import get_client
    from hitl_bus.engine.states import StateType

    async def all_paused() -> bool:
        found = await get_client().read_flow_runs(
            state=StateType.PAUSED, flow_name="bench-held", limit=paused
        )
        return len(found) >= paused and dispatcher.settled()

    while not await all_paused():
        await asyncio.sleep(0.5)
    paused_s = time.perf_counter() - started
    out.put(("paused", {"paused_s": paused_s}))

    async def one(run_id: str) -> None:
        value = await receive_input(str, flow_run_id=run_id, timeout=None).next()
        latencies.append(now_ns() - int(value))

    targets: list[str] = []
    started = time.perf_counter()
    for start in range(0, receivers, 500):
        batch = min(500, receivers - start)
        runs = await asyncio.gather(*(create_flow_run("bench-recv") for _ in range(batch)))
        targets += [str(run.id) for run in runs]
    created_s = time.perf_counter() - started
    started = time.perf_counter()
    base = dispatcher.waiting()  # a paused run may wait on more than one stream
    waiting = [asyncio.create_task(one(run_id)) for run_id in targets]
    while dispatcher.waiting() < base + receivers or not dispatcher.settled():
        await asyncio.sleep(0.05)
    parked_s = time.perf_counter() - started
    out.put(
        (
            "ready",
            {
                "targets": targets,
                "paused_ids": held_ids,
                "created_s": created_s,
                "parked_s": parked_s,
                "readers": dispatcher.connections(),
            },
        )
    )
    deadline = time.monotonic() + 300
    while len(latencies) < receivers + paused and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for task in waiting:
        task.cancel()
    out.put(("result", {"latencies": latencies}))
    with contextlib.suppress(Exception):
        await common.close_hitl()


async def role_sender(out: Any, targets: list[str], paused_ids: list[str]) -> None:
    from hitl_bus import resume_flow_run, send_input

    first = now_ns()
    for run_id in targets:
        await send_input(str(now_ns()), flow_run_id=run_id)
    for run_id in paused_ids:
        await resume_flow_run(run_id, {"value": now_ns()})
    out.put(("done", {"send_s": (now_ns() - first) / 1e9}))
    await common.close_hitl()


async def role_burst(out: Any, n: int, concurrency: int) -> None:
    from hitl_bus import flow

    @flow(name="bench-burst")
    async def tiny() -> int:
        return 1

    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await tiny()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    out.put(("done", {"burst_s": time.perf_counter() - started}))
    await common.close_hitl()


ROLES: dict[str, Callable[..., Any]] = {
    "waiter": role_waiter,
    "sender": role_sender,
    "burst": role_burst,
}


def _child_main(role: str, kwargs: dict[str, Any], out: Any) -> None:
    common.run_role(lambda: ROLES[role](out, **kwargs), out, role)


class Child(common.Child):
    child_main = staticmethod(_child_main)


# ---------------------------------------------------------------------------------------
# The parent.
# ---------------------------------------------------------------------------------------


def _masters(ports: list[int]) -> list[int]:
    return [
        p for p in ports if redis.Redis(port=p, protocol=2).info("replication")["role"] == "master"
    ]


def _sum_info(ports: list[int], section: str, field: str) -> int:
    return sum(int(redis.Redis(port=p, protocol=2).info(section)[field]) for p in ports)


def _calls(port: int) -> int:
    stats = redis.Redis(port=port, protocol=2).info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def _hitl_connections(port: int) -> int:
    clients = redis.Redis(port=port, protocol=2).client_list()
    return sum(1 for c in clients if c.get("name") == common.HITL_CLIENT_NAME)


def scenario_scale(ctx: Any, ports: list[int], args: argparse.Namespace, res: Results) -> None:
    masters = _masters(ports)
    before = _sum_info(masters, "memory", "used_memory")
    waiter = Child(ctx, "waiter", receivers=args.receivers, paused=args.paused)
    paused = waiter.get("paused", timeout=900)
    after_paused = _sum_info(masters, "memory", "used_memory")
    ready = waiter.get("ready", timeout=900)
    per_master = [_hitl_connections(p) for p in masters]
    sender = Child(ctx, "sender", targets=ready["targets"], paused_ids=ready["paused_ids"])
    sent = sender.get("done", timeout=900)
    result = waiter.get("result", timeout=900)
    sender.join()
    waiter.join()
    total = args.receivers + args.paused
    label = f"{args.receivers:,} receivers + {args.paused:,} paused runs, {len(masters)} masters"
    res.add(f"{label}: paused runs started until all wait", "", f"{paused['paused_s']:.1f} s")
    res.add(
        f"{label}: receivers registered until all wait (runs created before, "
        f"{ready['created_s']:.1f} s)",
        "",
        f"{ready['parked_s']:.1f} s",
    )
    most = max(per_master)
    res.add(
        f"{label}: Redis connections of the waiting process per master (readers: "
        f"{ready['readers']})",
        "",
        f"max {most}, {sum(per_master)} in all",
        f"target ≤ {MASTER_BOUND} per master plus the command pool (4)",
        most <= MASTER_BOUND + 4 + 1,
    )
    lat = result["latencies"]
    res.add(f"{label}: woken", "", f"{len(lat):,} of {total:,}", "target: all", len(lat) == total)
    res.add(f"{label}: wake latency p50", "", ms(percentile(lat, 50)))
    res.add(f"{label}: wake latency p99", "", ms(percentile(lat, 99)))
    res.add(f"{label}: one sender's sends + resumes took", "", f"{sent['send_s']:.1f} s")
    res.add(
        f"{label}: Redis memory per paused run",
        "",
        f"{(after_paused - before) / max(1, args.paused):,.0f} bytes",
    )


def scenario_burst(ctx: Any, ports: list[int], args: argparse.Namespace, res: Results) -> None:
    masters = _masters(ports)
    before = {p: _calls(p) for p in masters}
    burst = Child(ctx, "burst", n=args.burst, concurrency=100)
    done = burst.get("done", timeout=1800)
    burst.join()
    calls = {p: _calls(p) - before[p] for p in masters}
    mean = sum(calls.values()) / len(calls)
    worst = max(calls.values()) / mean if mean else 0.0
    res.add(
        f"burst of {args.burst:,} runs: commands per master (share of the mean)",
        f"mean {mean:,.0f}",
        ", ".join(f"{calls[p] / mean:.2f}x" for p in masters),
        "target: none above 1.5x",
        worst <= 1.5,
    )
    res.add(
        f"burst of {args.burst:,} runs: runs/s (one process, 100 at a time)",
        "",
        f"{args.burst / done['burst_s']:,.0f}",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 of each, 6 masters")
    parser.add_argument("--masters", type=int, default=6)
    parser.add_argument("--receivers", type=int)
    parser.add_argument("--paused", type=int)
    parser.add_argument("--burst", type=int)
    parser.add_argument("--only", default="scale,burst", help="subset of: scale,burst")
    common.add_output_args(parser, "exit 1 when a target is missed", "cProfile into DIR")
    args = parser.parse_args()
    args.receivers = (
        args.receivers if args.receivers is not None else (1000 if args.quick else 10_000)
    )
    args.paused = args.paused if args.paused is not None else (1000 if args.quick else 10_000)
    args.burst = args.burst if args.burst is not None else (1000 if args.quick else 10_000)

    from tests.cluster import start_cluster

    ctx = mp.get_context("spawn")
    res = Results()
    bench = Bench(args)
    with contextlib.ExitStack() as stack:
        nodes = start_cluster(stack, masters=args.masters)
        ports = [n.port for n in nodes]
        deadline = time.monotonic() + 60
        while not all(
            redis.Redis(port=p, protocol=2).cluster("info")["cluster_state"] == "ok" for p in ports
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        os.environ["HITL_BUS_REDIS_URL"] = f"redis+cluster://127.0.0.1:{ports[0]}/"
        os.environ["HITL_BUS_LOG_TO_STDERR"] = "false"
        os.environ["HITL_BUS_RUN_RETENTION"] = "3600"
        bench.version_line = common.versions(nodes[0])
        print(f"cluster of {args.masters} masters; {bench.version_line}", file=sys.stderr)
        common.run_steps(
            [
                ("scale", lambda: scenario_scale(ctx, ports, args, res)),
                ("burst", lambda: scenario_burst(ctx, ports, args, res)),
            ],
            set(args.only.split(",")),
        )
    return bench.report(res, "bench_cluster.py", title="Redis Cluster at scale, ")


if __name__ == "__main__":
    sys.exit(main())
