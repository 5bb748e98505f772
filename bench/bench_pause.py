"""Benchmark pause → resume of hitl_bus flow runs on a throwaway redis-server.

Run from the repo root::

    .venv/bin/python -m bench.bench_pause            # full run, about 40 s
    .venv/bin/python -m bench.bench_pause --quick    # smaller counts, about 15 s

Written like ``bench_bus.py`` (whose helpers it imports): every role runs in a fresh
process (multiprocessing, ``spawn``), and cross-process latencies use
``CLOCK_MONOTONIC`` timestamps (one clock for the whole machine on Linux). The
resumer takes ``clock_gettime_ns`` right before it calls ``resume_flow_run`` and
passes it as the input (``{"value": t}``); the flow subtracts it on the line after
``await pause_flow_run(wait_for_input=int)``.

Scenarios:

1. wake latency: one async flow run (process A) pauses again and again, each pause
   with a new automatic key; a resumer (process B) watches the run's event stream
   for the Paused state, waits ``--settle`` ms (the run parks meanwhile), then calls
   ``resume_flow_run``. Reported: time from the resume call's start to the flow's
   next line, and the resume call's own duration. Reference: raw redis-py one-way
   delivery (``XADD`` → ``XREAD BLOCK 0`` in another process, ``bench_bus``'s roles),
   rounds alternating with the pause rounds.
2. many paused runs: N runs started with ``start_flow_run`` in one process, each
   awaiting ``pause_flow_run(wait_for_input=int)``; once all are parked another
   process resumes them all (``--fan-concurrency`` lanes, sequential with 1):
   time until all paused, drain (first resume start → last wake), wake latency,
   how many woke, Redis connections of the paused process. Reference: ``bench_bus``'s
   raw fan-out (one connection, one XREAD over N streams, plain XADDs).

The table is printed and written to ``docs/benchmarks.md`` (``--no-write`` to skip).
``--profile DIR`` runs the hitl_bus processes under cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench import bench_bus as bb
from bench import common
from bench.common import (
    ADMIN_CLIENT_NAME,
    HITL_CLIENT_NAME,
    RAW_CLIENT_NAME,
    Bench,
    Results,
    close_hitl,
    ms,
    now_ns,
    percentile,
    raw_client,
)

# ---------------------------------------------------------------------------------------
# Child processes (roles), as in bench_bus: an async function per role, reporting
# (tag, payload) tuples through ``out``.
# ---------------------------------------------------------------------------------------


async def role_raw_sender(out: Any, url: str, target: str, total: int, interval: float) -> None:
    """bench_bus's raw one-way sender, also timing each XADD call (the raw 'resume')."""
    r = raw_client(url)
    durations: list[int] = []
    for _ in range(total):
        t = now_ns()
        await r.xadd(target, {"t": str(t)})
        durations.append(now_ns() - t)
        await asyncio.sleep(interval)
    await r.aclose()
    out.put(("done", durations))


async def role_pause_loop(out: Any, url: str, total: int) -> None:
    """One flow run pausing ``total`` times; each input is the resume's start time."""
    from hitl_bus import flow, get_run_context, pause_flow_run

    @flow(name="bench-pause-loop")
    async def pauser(total: int) -> list[int]:
        latencies: list[int] = []
        out.put(("ready", get_run_context().flow_run.id))
        for _ in range(total):
            started = await pause_flow_run(wait_for_input=int)
            latencies.append(now_ns() - started)
        return latencies

    latencies = await pauser(total)
    await close_hitl()
    out.put(("result", latencies))


async def _paused_events(r: Any, run_id: str) -> Any:
    """Yield each Paused state of a run as its event arrives (XREAD on the run's events)."""
    from hitl_bus import keys

    stream = keys.run_events(run_id)
    last: Any = "0-0"
    while True:
        reply = await r.xread({stream: last}, block=0, count=100)
        for _, entries in reply:
            for entry_id, fields in entries:
                last = entry_id
                if fields.get(b"type") != b"state.changed":
                    continue
                state = json.loads(fields[b"data"])["state"]
                if state["type"] == "PAUSED":
                    yield state["state_details"]["pause_key"]


async def role_resumer(out: Any, url: str, run_id: str, total: int, settle: float) -> None:
    """Resume each pause of ``run_id`` ``settle`` s after it is seen; times the calls."""
    from hitl_bus import resume_flow_run

    r = raw_client(url)
    durations: list[int] = []
    expected = 1
    async for pause_key in _paused_events(r, run_id):
        if pause_key != str(expected):  # pause keys count up: "1", "2", ...
            raise AssertionError(f"saw pause {pause_key}, expected pause {expected}")
        await asyncio.sleep(settle)
        started = now_ns()
        await resume_flow_run(run_id, {"value": started})
        durations.append(now_ns() - started)
        expected += 1
        if expected > total:
            break
    await r.aclose()
    await close_hitl()
    out.put(("result", durations))


async def role_pause_fan(out: Any, url: str, n: int, port: int) -> None:
    """``n`` background runs of one flow, each paused for an int; reports their wakes."""
    from hitl_bus import flow, pause_flow_run, start_flow_run
    from hitl_bus.bus import get_bus
    from hitl_bus.engine import flows

    latencies: list[int] = []
    wakes: list[int] = []
    all_woke = asyncio.Event()
    stop_sampling = asyncio.Event()

    @flow(name="bench-pause-fan")
    async def waiter() -> None:
        started = await pause_flow_run(wait_for_input=int)
        arrived = now_ns()
        latencies.append(arrived - started)
        wakes.append(arrived)
        if len(wakes) >= n:
            all_woke.set()

    sampler = asyncio.create_task(common.sample_sockets(port, stop_sampling))
    dispatcher = get_bus().dispatcher
    t0 = now_ns()
    runs = await asyncio.gather(*(start_flow_run(waiter) for _ in range(n)))
    started_ns = now_ns() - t0
    # Parked: every run is Paused (its pause written) and waits on its control stream,
    # each stream read by the dispatcher. (A run also watches that stream for a cancel, so
    # counting waiters alone would say "parked" too early.) The parent then waits for an
    # XREAD to block in Redis.
    from hitl_bus import keys

    client = get_bus().client
    while True:
        async with client.pipeline(transaction=False) as pipe:
            for run in runs:
                pipe.hget(keys.run(str(run.id)), "state")
            states = await pipe.execute()
        if all(raw and b'"PAUSED"' in raw for raw in states):
            break
        await asyncio.sleep(0.01)
    await common.wait_parked(dispatcher, n)
    out.put(
        (
            "registered",
            {
                "t0": t0,
                "started_s": started_ns / 1e9,
                "readers": dispatcher.connections(),
                "name": HITL_CLIENT_NAME,
                "targets": [str(run.id) for run in runs],
            },
        )
    )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_woke.wait(), 120)
    # Let the woken runs finish (Completed) before the bus closes under them.
    deadline = time.monotonic() + 30
    while flows._background and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await close_hitl()
    stop_sampling.set()
    max_sockets = await sampler
    out.put(
        (
            "result",
            {"latencies": latencies, "wakes": wakes, "woken": len(wakes), "sockets": max_sockets},
        )
    )


async def role_fan_resumer(out: Any, url: str, targets: list[str], concurrency: int) -> None:
    from hitl_bus import resume_flow_run
    from hitl_bus.bus import get_bus
    from hitl_bus.engine import store

    bus = get_bus()
    # Warm up: open the pool's connections and make sure Redis has the script.
    await asyncio.gather(*(bus.client.ping() for _ in range(concurrency)))
    await bus.client.script_load(store.SCRIPTS["resume"])
    durations: list[int] = []

    async def lane(chunk: list[str]) -> None:
        for run_id in chunk:
            started = now_ns()
            await resume_flow_run(run_id, {"value": started})
            durations.append(now_ns() - started)

    first = now_ns()
    await asyncio.gather(*(lane(targets[i::concurrency]) for i in range(concurrency)))
    last = now_ns()
    await close_hitl()
    out.put(("done", {"first": first, "last": last, "durations": durations}))


ROLES: dict[str, Callable[..., Awaitable[None]]] = {
    "raw_receiver": bb.role_latency_receiver,  # kind="raw"
    "raw_sender": role_raw_sender,
    "raw_fan_waiter": bb.role_fan_waiter,  # kind="raw"
    "raw_fan_sender": bb.role_fan_sender,  # kind="raw"
    "pause_loop": role_pause_loop,
    "resumer": role_resumer,
    "pause_fan": role_pause_fan,
    "fan_resumer": role_fan_resumer,
}


def _child_main(role: str, kwargs: dict[str, Any], out: Any) -> None:
    extra = kwargs.get("n", kwargs.get("concurrency", ""))
    profile_as = None if role.startswith("raw_") else f"{role}{extra}"
    common.run_role(lambda: ROLES[role](out, **kwargs), out, profile_as)


class Child(common.Child):
    """One spawned process running one of this file's roles."""

    child_main = staticmethod(_child_main)


# ---------------------------------------------------------------------------------------
# The parent.
# ---------------------------------------------------------------------------------------


def scenario_wake(ctx: Any, url: str, args: argparse.Namespace, res: Results) -> None:
    wake: dict[str, list[int]] = {"raw": [], "hitl": []}
    call: dict[str, list[int]] = {"raw": [], "hitl": []}
    per_round = max(1, args.cycles // args.rounds)
    total = per_round + args.warmup
    for kind in bb._round_kinds(args):
        if kind == "raw":
            receiver = Child(ctx, "raw_receiver", kind="raw", url=url, total=total)
            stream = receiver.get("ready")
            sender = Child(
                ctx, "raw_sender", url=url, target=stream, total=total, interval=args.interval
            )
            call["raw"] += sender.get("done")[args.warmup :]
            wake["raw"] += receiver.get("result")[args.warmup :]
        else:
            receiver = Child(ctx, "pause_loop", url=url, total=total)
            run_id = receiver.get("ready")
            sender = Child(
                ctx, "resumer", url=url, run_id=run_id, total=total, settle=args.settle / 1000
            )
            call["hitl"] += sender.get("result")[args.warmup :]
            wake["hitl"] += receiver.get("result")[args.warmup :]
        receiver.join()
        sender.join()
    targets = {50: 1e6, 99: 5e6}
    for pct in (50, 99):
        raw, hitl = percentile(wake["raw"], pct), percentile(wake["hitl"], pct)
        res.add(
            f"pause→resume wake latency p{pct} (resume call start → flow's next line)",
            ms(raw),
            ms(hitl),
            f"{hitl / raw:.2f}x (target < {targets[pct] / 1e6:g} ms)",
            hitl < targets[pct],
        )
    for pct in (50, 99):
        raw, hitl = percentile(call["raw"], pct), percentile(call["hitl"], pct)
        res.add(
            f"resume_flow_run call duration p{pct} (raw: the XADD call)",
            ms(raw),
            ms(hitl),
            f"{hitl / raw:.2f}x",
        )
    res.notes.append(
        f"Wake latency: {per_round * args.rounds} sequential pause/resume cycles of one "
        f"async flow run in {args.rounds} rounds (each after {args.warmup} warm-up "
        f"cycles), alternating with raw rounds; the resumer, in another process, sees "
        f"each Paused state on the run's event stream and resumes {args.settle:g} ms "
        f"later. Raw: XADD → XREAD BLOCK 0 in another process, one every "
        f"{args.interval * 1000:g} ms, the timestamp taken before the XADD call."
    )


def _raw_fan(ctx: Any, url: str, port: int, n: int, concurrency: int, admin: Any) -> dict:
    waiter = Child(ctx, "raw_fan_waiter", kind="raw", url=url, n=n, port=port)
    ready = waiter.get("ready", timeout=300)
    registered = waiter.get("registered", timeout=300)
    while common.blocked_clients(admin, RAW_CLIENT_NAME) < registered["readers"]:
        time.sleep(0.001)
    parked_ns = now_ns() - registered["t0"]
    held = sum(1 for c in admin.client_list() if c.get("name") == RAW_CLIENT_NAME)
    sender = Child(
        ctx,
        "raw_fan_sender",
        kind="raw",
        url=url,
        targets=ready["targets"],
        concurrency=concurrency,
    )
    sent = sender.get("done", timeout=300)
    result = waiter.get("result", timeout=300)
    waiter.join()
    sender.join()
    return {
        **result,
        "parked_s": parked_ns / 1e9,
        "held": held,
        "send_s": (sent["last"] - sent["first"]) / 1e9,
        "drain_s": (max(result["wakes"], default=sent["first"]) - sent["first"]) / 1e9,
        "durations": [],
    }


def _hitl_fan(ctx: Any, url: str, port: int, n: int, concurrency: int, admin: Any) -> dict:
    from hitl_bus import keys

    waiter = Child(ctx, "pause_fan", url=url, n=n, port=port)
    registered = waiter.get("registered", timeout=300)
    # The child reported once its dispatcher settled; wait for a reader's XREAD to block in
    # Redis too. Not for every reader: the streams may sit on fewer readers than it has,
    # or on its bells (a SUBSCRIBE, not a blocked XREAD).
    deadline = time.monotonic() + 5
    while common.blocked_clients(admin, HITL_CLIENT_NAME) < 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    parked_ns = now_ns() - registered["t0"]
    # Only the paused process uses hitl_bus now (this connection is named bench-admin).
    held = sum(1 for c in admin.client_list() if c.get("name") == HITL_CLIENT_NAME)
    targets = registered["targets"]
    pipe = admin.pipeline(transaction=False)
    for run_id in targets:
        pipe.hget(keys.run(run_id), "state")
    paused = sum(1 for raw in pipe.execute() if raw and json.loads(raw)["type"] == "PAUSED")
    resumer = Child(ctx, "fan_resumer", url=url, targets=targets, concurrency=concurrency)
    sent = resumer.get("done", timeout=300)
    result = waiter.get("result", timeout=300)
    waiter.join()
    resumer.join()
    pipe = admin.pipeline(transaction=False)
    for run_id in targets:
        pipe.hget(keys.run(run_id), "state")
    completed = sum(1 for raw in pipe.execute() if raw and json.loads(raw)["type"] == "COMPLETED")
    return {
        **result,
        "parked_s": parked_ns / 1e9,
        "started_s": registered["started_s"],
        "paused": paused,
        "completed": completed,
        "held": held,
        "send_s": (sent["last"] - sent["first"]) / 1e9,
        "drain_s": (max(result["wakes"], default=sent["first"]) - sent["first"]) / 1e9,
        "durations": sent["durations"],
    }


def scenario_fan(ctx: Any, url: str, port: int, n: int, concurrency: int, res: Results) -> None:
    import redis

    admin = redis.Redis.from_url(url, protocol=2, client_name=ADMIN_CLIENT_NAME)
    raw = _raw_fan(ctx, url, port, n, concurrency, admin)
    hitl = _hitl_fan(ctx, url, port, n, concurrency, admin)
    admin.close()
    lanes = "sequential" if concurrency == 1 else f"{concurrency} lanes"
    label = f"{n:,} paused runs, resumed {lanes}"
    res.add(
        f"{label}: time until all paused (first start → all parked)",
        f"{raw['parked_s']:.3f} s",
        f"{hitl['parked_s']:.3f} s",
        f"start_flow_run calls returned after {hitl['started_s']:.3f} s",
    )
    res.add(
        f"{label}: woken",
        f"{raw['woken']:,}",
        f"{hitl['woken']:,}",
        f"target: all ({hitl['paused']:,} paused before, {hitl['completed']:,} completed after)",
        hitl["woken"] == n and hitl["paused"] == n and hitl["completed"] == n,
    )
    res.add(
        f"{label}: drain (first resume start → last wake)",
        f"{raw['drain_s']:.3f} s",
        f"{hitl['drain_s']:.3f} s",
        f"resuming took {raw['send_s']:.3f} / {hitl['send_s']:.3f} s "
        f"({n / hitl['send_s']:,.0f} resumes/s)",
    )
    for pct in (50, 99):
        res.add(
            f"{label}: wake latency p{pct}",
            ms(percentile(raw["latencies"], pct)),
            ms(percentile(hitl["latencies"], pct)),
        )
    res.add(
        f"{label}: resume_flow_run call p50 / p99",
        "",
        f"{ms(percentile(hitl['durations'], 50))} / {ms(percentile(hitl['durations'], 99))}",
    )
    connections = max(hitl["held"], hitl["sockets"])
    res.add(
        f"{label}: Redis connections of the paused process",
        f"{max(raw['held'], raw['sockets'])}",
        f"{connections}",
    )
    note = (
        f"{n:,} paused runs: raw baseline = bench_bus's fan-out (one connection, one XREAD "
        f"over {n:,} streams, re-issued after each reply; as many XADD lanes as resume "
        "lanes). 'Time until all paused' for raw is only issuing that XREAD; for hitl_bus "
        "it includes creating and starting the runs, from the first start_flow_run call "
        "until every run waits and the readers' XREADs block in Redis. Wake latency: "
        "resume call start → the flow's next line. Connections: max of CLIENT LIST "
        "(name=hitl-bus) while parked and the process's own sockets to Redis sampled "
        "every 250 ms."
    )
    if note not in res.notes:
        res.notes.append(note)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (about 15 s)")
    parser.add_argument("--cycles", type=int, help="pause/resume cycles measured (all rounds)")
    parser.add_argument("--warmup", type=int, help="warm-up cycles per round, not counted")
    parser.add_argument("--rounds", type=int, help="alternating raw/hitl rounds")
    parser.add_argument(
        "--settle", type=float, default=2.0, help="ms between seeing Paused and resuming"
    )
    parser.add_argument("--interval", type=float, default=0.002, help="raw send spacing (s)")
    parser.add_argument("--fan", type=int, default=1000, help="runs paused at once")
    parser.add_argument(
        "--fan-concurrency", help="resume lanes, comma-separated (default 1,4; --quick 4)"
    )
    parser.add_argument("--only", default="wake,fan", help="comma-separated subset of: wake,fan")
    common.add_output_args(
        parser, "exit 1 when a target is missed", "cProfile the hitl_bus processes into DIR"
    )
    args = parser.parse_args()
    args.cycles = args.cycles or (500 if args.quick else 2000)
    args.warmup = args.warmup if args.warmup is not None else (20 if args.quick else 50)
    args.rounds = args.rounds or (2 if args.quick else 4)
    lanes = [int(x) for x in (args.fan_concurrency or ("4" if args.quick else "1,4")).split(",")]
    only = set(args.only.split(","))

    ctx = mp.get_context("spawn")
    res = Results()
    bench = Bench(args)
    with bench.redis() as server:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("wake", lambda: scenario_wake(ctx, server.url, args, res))
        ]
        for c in lanes:
            steps.append(
                (
                    "fan",
                    lambda c=c: scenario_fan(ctx, server.url, server.port, args.fan, c, res),
                )
            )
        common.run_steps(steps, only)
    return bench.report(res, "bench_pause.py", "pause/resume, ")


if __name__ == "__main__":
    sys.exit(main())
