"""Benchmark hitl_bus against raw redis-py doing the same work, on a throwaway redis-server.

Run from the repo root::

    .venv/bin/python -m bench.bench_bus            # full run, about 2 minutes
    .venv/bin/python -m bench.bench_bus --quick    # smaller counts, about 30 s

Every measurement starts fresh processes (multiprocessing, ``spawn``), so the
sender and the receiver never share an event loop, a connection pool or a GIL.
Cross-process latencies use timestamps from ``CLOCK_MONOTONIC``, which is one
clock for the whole machine on Linux: the sender puts ``clock_gettime_ns`` in
the payload right before its send call, the receiver subtracts it on arrival.

Scenarios (raw redis-py: ``redis.asyncio``, ``protocol=2``, plain XADD and
blocking XREAD):

1. one-way latency: a receiver waits (hitl: ``receive_input(str, flow_run_id=...,
   timeout=None)``; raw: ``XREAD BLOCK 0``), another process sends paced messages;
2. round trip: a ``greeter`` flow run in process B answers each input with
   ``msg.respond(...)``; process A sends and waits for the reply, first from outside
   any run (the reply lands in A's client inbox), then as a flow run itself
   (raw: XADD s1 / XREAD s1 + XADD s2 / XREAD s2);
3. throughput of sequential, awaited sends (``send_input`` vs ``XADD``);
4. N receivers parked in one process, each on its own run, then one input each
   from another process: time to park, time to drain, wake latency, connections.
   Raw baseline: one connection, one ``XREAD BLOCK 0`` over all N streams.

The table is printed and written to ``docs/benchmarks.md`` (``--no-write`` to skip).
``--profile DIR`` runs the hitl_bus processes under cProfile and leaves ``.prof``
files in DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

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

PAYLOAD = "x" * 32


# ---------------------------------------------------------------------------------------
# Child processes: each role is an async function run with asyncio.run in a fresh process.
# A role reports through ``out``: (tag, payload) tuples, ("error", traceback) on failure.
# ---------------------------------------------------------------------------------------


async def _new_run(flow_name: str) -> str:
    """A stored run in Running state with nothing executing it (as the tests' helper)."""
    from hitl_bus.engine import State, StateType, create_flow_run

    run = await create_flow_run(flow_name, {}, state=State(type=StateType.RUNNING))
    return str(run.id)


# -- 1. one-way latency -----------------------------------------------------------------


async def role_latency_receiver(out: Any, kind: str, url: str, total: int) -> None:
    latencies: list[int] = []
    if kind == "raw":
        r = raw_client(url)
        stream = f"bench:latency:{uuid.uuid4().hex}"
        await r.ping()
        out.put(("ready", stream))
        last: Any = "0-0"
        while len(latencies) < total:
            reply = await r.xread({stream: last}, block=0, count=100)
            arrived = now_ns()
            for _, entries in reply:
                for entry_id, fields in entries:
                    last = entry_id
                    latencies.append(arrived - int(fields[b"t"]))
        await r.aclose()
    else:
        from hitl_bus import receive_input

        run_id = await _new_run("bench-latency")
        out.put(("ready", run_id))
        async for value in receive_input(str, flow_run_id=run_id, timeout=None):
            latencies.append(now_ns() - int(value))
            if len(latencies) >= total:
                break
        await close_hitl()
    out.put(("result", latencies))


async def role_latency_sender(
    out: Any, kind: str, url: str, target: str, total: int, interval: float
) -> None:
    if kind == "raw":
        r = raw_client(url)
        for _ in range(total):
            await r.xadd(target, {"t": str(now_ns())})
            await asyncio.sleep(interval)
        await r.aclose()
    elif kind == "raw-to-hitl":
        # The receive side alone: a plain XADD of the entry send_input would store.
        from hitl_bus import keys

        r = raw_client(url)
        stream = keys.input_stream(target, "str-auto")
        for i in range(total):
            data = f'{{"value":"{now_ns()}"}}'
            await r.xadd(stream, {"key": f"str-auto-{i}", "sender": "bench", "data": data})
            await asyncio.sleep(interval)
        await r.aclose()
    else:
        from hitl_bus import send_input

        for _ in range(total):
            await send_input(str(now_ns()), flow_run_id=target)
            await asyncio.sleep(interval)
        await close_hitl()
    out.put(("done", None))


# -- 2. round trip ----------------------------------------------------------------------


async def role_greeter(out: Any, kind: str, url: str, streams: list[str]) -> None:
    if kind == "raw":
        r = raw_client(url)
        s1, s2 = streams
        await r.ping()
        out.put(("ready", None))
        last: Any = "0-0"
        running = True
        while running:
            reply = await r.xread({s1: last}, block=0, count=100)
            for _, entries in reply:
                for entry_id, fields in entries:
                    last = entry_id
                    if fields[b"v"] == b"exit":
                        running = False
                        break
                    await r.xadd(s2, {"v": fields[b"v"]})
        await r.aclose()
    else:
        from hitl_bus import flow, get_run_context, receive_input

        @flow(name="bench-greeter")
        async def greeter() -> None:  # the design brief's greeter
            out.put(("ready", get_run_context().flow_run.id))
            async for msg in receive_input(str, with_metadata=True, timeout=None):
                if msg.value == "exit":
                    return
                await msg.respond(msg.value)

        await greeter()
        await close_hitl()
    out.put(("done", None))


async def _ask_loop(
    total: int, ask: Callable[[str], Awaitable[None]], reply: Callable[[], Awaitable[str]]
) -> list[int]:
    times: list[int] = []
    for i in range(total):
        text = str(i)
        started = time.perf_counter_ns()
        await ask(text)
        answer = await reply()
        times.append(time.perf_counter_ns() - started)
        if answer != text:
            raise AssertionError(f"reply {answer!r} to {text!r}")
    return times


async def role_asker(out: Any, kind: str, url: str, target: Any, total: int) -> None:
    results: dict[str, list[int]] = {}
    if kind == "raw":
        r = raw_client(url)
        s1, s2 = target
        position: list[Any] = ["0-0"]

        async def ask(text: str) -> None:
            await r.xadd(s1, {"v": text})

        async def reply() -> str:
            while True:
                got = await r.xread({s2: position[0]}, block=0, count=1)
                for _, entries in got:
                    for entry_id, fields in entries:
                        position[0] = entry_id
                        return str(fields[b"v"].decode())

        results["raw"] = await _ask_loop(total, ask, reply)
        await r.xadd(s1, {"v": "exit"})
        await r.aclose()
    else:
        from hitl_bus import flow, receive_input, send_input

        async def measure() -> list[int]:
            replies = receive_input(str, timeout=None)  # this run's stream, or our inbox

            async def ask(text: str) -> None:
                await send_input(text, flow_run_id=target)

            return await _ask_loop(total, ask, replies.next)

        results["client"] = await measure()  # outside any run: replies reach our inbox

        @flow(name="bench-asker")
        async def asker() -> list[int]:
            return await measure()

        results["run"] = await asker()
        await send_input("exit", flow_run_id=target)
        await close_hitl()
    out.put(("result", results))


# -- 3. awaited send throughput ---------------------------------------------------------


_SCRIPTING = ("eval", "evalsha", "eval_ro", "evalsha_ro", "script")


async def _redis_usec(admin: Any) -> tuple[int, dict[str, float]]:
    """Redis CPU µs since the last CONFIG RESETSTAT (the admin's own CONFIG/INFO left out)
    and µs per call of each command; then resets the counters.

    commandstats counts a command a script calls both on its own line and inside the
    script's: when scripts ran, the total is theirs (the senders here call nothing else).
    """
    stats = await admin.info("commandstats")
    await admin.config_resetstat()
    per_call: dict[str, float] = {}
    usec: dict[str, int] = {}
    for name, row in stats.items():
        command = name.removeprefix("cmdstat_")
        if command.split("|")[0] in ("config", "info"):
            continue
        usec[command] = int(row["usec"])
        per_call[command] = float(row["usec_per_call"])
    scripts = [c for c in usec if c.split("|")[0] in _SCRIPTING]
    return sum(usec[c] for c in scripts or usec), per_call


async def role_throughput(
    out: Any, kind: str, url: str, total: int, warmup: int, batch: int
) -> None:
    """Sequential awaited sends, and batches of ``batch``: per variant the rate (items/s),
    Python CPU µs per item (``time.process_time``) and Redis µs per item (commandstats)."""
    import redis.asyncio as aioredis

    admin = aioredis.Redis.from_url(url, protocol=2, client_name=ADMIN_CLIENT_NAME)
    results: dict[str, dict[str, Any]] = {}

    async def timed(variant: str, send: Callable[[], Awaitable[Any]], per_call: int = 1) -> None:
        calls = max(1, total // per_call)
        for _ in range(max(1, warmup // per_call)):
            await send()
        await _redis_usec(admin)
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            await send()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        usec, commands = await _redis_usec(admin)
        items = calls * per_call
        results[variant] = {
            "rate": items / elapsed,
            "cpu_us": cpu / items * 1e6,
            "redis_us": usec / items,
            "commands": commands,
        }

    fields = {"key": f"str-auto-{uuid.uuid4()}", "sender": "bench", "data": PAYLOAD}
    if kind == "raw":
        r = raw_client(url)
        stream = f"bench:throughput:{uuid.uuid4().hex}"

        async def pipelined() -> None:
            async with r.pipeline(transaction=False) as pipe:
                for _ in range(batch):
                    pipe.xadd(stream, fields)
                await pipe.execute()

        await timed("raw", lambda: r.xadd(stream, fields))
        await timed("raw_batch", pipelined, batch)
        await r.aclose()
    else:
        from hitl_bus import flow, send_input, send_inputs

        run_id = await _new_run("bench-throughput")
        await timed("client", lambda: send_input(PAYLOAD, flow_run_id=run_id))
        items = [PAYLOAD] * batch
        await timed("batch", lambda: send_inputs(items, flow_run_id=run_id), batch)

        @flow(name="bench-pump")
        async def pump() -> None:
            await timed("run", lambda: send_input(PAYLOAD, flow_run_id=run_id))

        await pump()
        await close_hitl()
    await admin.aclose()
    out.put(("result", results))


# -- 4. many parked receivers -----------------------------------------------------------


async def role_fan_waiter(out: Any, kind: str, url: str, n: int, port: int) -> None:
    latencies: list[int] = []
    wakes: list[int] = []
    stop_sampling = asyncio.Event()

    if kind == "raw":
        r = raw_client(url)
        await r.ping()
        targets = [f"bench:fan:{uuid.uuid4().hex}" for _ in range(n)]
        out.put(("ready", {"targets": targets, "setup_s": 0.0}))
        sampler = asyncio.create_task(common.sample_sockets(port, stop_sampling))
        started = now_ns()
        out.put(("registered", {"t0": started, "readers": 1, "name": RAW_CLIENT_NAME}))
        # The hand-written equivalent of the dispatcher: one XREAD over every stream
        # still waiting, re-issued after each reply.
        pending = dict.fromkeys(targets, "0-0")
        while pending:
            reply = await r.xread(dict(pending), block=0, count=1)
            arrived = now_ns()
            for raw_stream, entries in reply:
                if entries:
                    pending.pop(raw_stream.decode(), None)
                    latencies.append(arrived - int(entries[0][1][b"t"]))
                    wakes.append(arrived)
        await r.aclose()
    else:
        if kind == "bells":  # keyspace-notification wake-ups instead of blocking XREADs
            os.environ["HITL_BUS_WAKE"] = "bells"
        from hitl_bus import receive_input
        from hitl_bus.bus import get_bus

        setup = time.perf_counter()
        targets = []
        for start in range(0, n, 500):
            batch = min(500, n - start)
            targets += await asyncio.gather(*(_new_run("bench-fan") for _ in range(batch)))
        setup_s = time.perf_counter() - setup
        out.put(("ready", {"targets": targets, "setup_s": setup_s}))
        sampler = asyncio.create_task(common.sample_sockets(port, stop_sampling))

        async def one(run_id: str) -> None:
            value = await receive_input(str, flow_run_id=run_id, timeout=None).next()
            arrived = now_ns()
            latencies.append(arrived - int(value))
            wakes.append(arrived)

        dispatcher = get_bus().dispatcher
        started = now_ns()
        tasks = [asyncio.create_task(one(run_id)) for run_id in targets]
        # Registered: every receiver waits on the dispatcher and each reader's XREAD
        # covers them all. The parent then waits until those XREADs block in Redis.
        await common.wait_parked(dispatcher, n)
        out.put(
            (
                "registered",
                {
                    "t0": started,
                    "readers": dispatcher.blocking_readers(),
                    "name": HITL_CLIENT_NAME,
                    "subscriptions": dispatcher.rung_streams(),
                },
            )
        )
        await asyncio.wait(tasks, timeout=120)
        for task in tasks:
            task.cancel()
        await close_hitl()
    stop_sampling.set()
    max_sockets = await sampler
    out.put(
        (
            "result",
            {"latencies": latencies, "wakes": wakes, "woken": len(wakes), "sockets": max_sockets},
        )
    )


async def role_fan_sender(
    out: Any, kind: str, url: str, targets: list[str], concurrency: int
) -> None:
    if kind == "raw":
        r = raw_client(url)
        await r.ping()

        async def send(target: str) -> None:
            await r.xadd(target, {"t": str(now_ns())})

    else:
        from hitl_bus import send_input

        await send_input("warm-up", flow_run_id=targets[0], key_prefix="warm-up")

        async def send(target: str) -> None:
            await send_input(str(now_ns()), flow_run_id=target)

    async def lane(chunk: list[str]) -> None:
        for target in chunk:
            await send(target)

    first = now_ns()
    await asyncio.gather(*(lane(targets[i::concurrency]) for i in range(concurrency)))
    last = now_ns()
    if kind == "raw":
        await r.aclose()
    else:
        await close_hitl()
    out.put(("done", {"first": first, "last": last}))


ROLES: dict[str, Callable[..., Awaitable[None]]] = {
    "latency_receiver": role_latency_receiver,
    "latency_sender": role_latency_sender,
    "greeter": role_greeter,
    "asker": role_asker,
    "throughput": role_throughput,
    "fan_waiter": role_fan_waiter,
    "fan_sender": role_fan_sender,
}


def _child_main(role: str, kwargs: dict[str, Any], out: Any) -> None:
    loop = kwargs.pop("loop", "asyncio")
    profile_as = f"{role}{kwargs.get('n', '')}" if kwargs.get("kind") == "hitl" else None
    common.run_role(lambda: ROLES[role](out, **kwargs), out, profile_as, loop)


# ---------------------------------------------------------------------------------------
# The parent: starts Redis and the children, collects and judges the numbers.
# ---------------------------------------------------------------------------------------


class Child(common.Child):
    """One spawned process running one of this file's roles."""

    child_main = staticmethod(_child_main)


def _round_kinds(args: argparse.Namespace) -> list[str]:
    """raw/hitl alternated over the rounds (raw, hitl, hitl, raw, ...), so both sides see
    the same background load on a shared machine."""
    kinds: list[str] = []
    for i in range(args.rounds):
        kinds += ["raw", "hitl"] if i % 2 == 0 else ["hitl", "raw"]
    return kinds


def _one_way_rounds(
    ctx: Any, url: str, args: argparse.Namespace, senders: dict[str, str]
) -> dict[str, list[int]]:
    """One-way latency samples per receiver kind, in alternating rounds; ``senders`` names
    the sender role's kind for each receiver kind."""
    samples: dict[str, list[int]] = {"raw": [], "hitl": []}
    per_round = max(1, args.messages // args.rounds)
    for kind in _round_kinds(args):
        total = per_round + args.warmup
        receiver = Child(ctx, "latency_receiver", kind=kind, url=url, total=total)
        target = receiver.get("ready")
        sender = Child(
            ctx,
            "latency_sender",
            kind=senders[kind],
            url=url,
            target=target,
            total=total,
            interval=args.interval,
        )
        sender.get("done")
        samples[kind] += receiver.get("result")[args.warmup :]
        receiver.join()
        sender.join()
    return samples


def scenario_latency(ctx: Any, url: str, args: argparse.Namespace, res: Results) -> None:
    samples = _one_way_rounds(ctx, url, args, {"raw": "raw", "hitl": "hitl"})
    per_round = max(1, args.messages // args.rounds)
    for pct in (50, 99):
        raw, hitl = percentile(samples["raw"], pct), percentile(samples["hitl"], pct)
        res.add(
            f"send→receive one-way latency p{pct} (other process)",
            ms(raw),
            ms(hitl),
            f"{hitl / raw:.2f}x" + (" (target ≤ 2x)" if pct == 50 else ""),
            hitl <= 2 * raw if pct == 50 else None,
        )
    # Then a plain XADD into a hitl_bus receiver, in rounds of their own against raw again:
    # the receive side's share of the difference, the send script and its client left out.
    alone = _one_way_rounds(ctx, url, args, {"raw": "raw", "hitl": "raw-to-hitl"})
    raw, plain = percentile(alone["raw"], 50), percentile(alone["hitl"], 50)
    res.add(
        "one-way latency p50, plain XADD → hitl_bus receiver (the receive side alone)",
        ms(raw),
        ms(plain),
        f"{plain / raw:.2f}x",
    )
    res.notes.append(
        f"One-way latency: {per_round * args.rounds} messages per side in {args.rounds} "
        f"alternating rounds (each after {args.warmup} warm-up), one every "
        f"{args.interval * 1000:g} ms; timestamp taken before the send call. The plain XADD "
        "row sends hitl_bus's entry (key, sender, data) with raw redis-py into the same kind "
        "of receiver, in as many rounds of its own, alternating with raw ones again."
    )


def scenario_round_trip(ctx: Any, url: str, args: argparse.Namespace, res: Results) -> None:
    times: dict[str, list[int]] = {"raw": [], "client": [], "run": []}
    per_round = max(1, args.messages // args.rounds)
    for kind in _round_kinds(args):
        streams = [f"bench:rt:{uuid.uuid4().hex}:s1", f"bench:rt:{uuid.uuid4().hex}:s2"]
        greeter = Child(ctx, "greeter", kind=kind, url=url, streams=streams)
        run_id = greeter.get("ready")
        target = streams if kind == "raw" else run_id
        total = per_round + args.warmup
        asker = Child(ctx, "asker", kind=kind, url=url, target=target, total=total)
        for variant, values in asker.get("result").items():
            times[variant] += values[args.warmup :]
        greeter.get("done")
        greeter.join()
        asker.join()
    raw50, raw99 = percentile(times["raw"], 50), percentile(times["raw"], 99)
    for variant, label in (("client", "script → run"), ("run", "run → run")):
        p50, p99 = percentile(times[variant], 50), percentile(times[variant], 99)
        res.add(
            f"round trip p50, {label} (send, respond, reply)",
            ms(raw50),
            ms(p50),
            f"{p50 / raw50:.2f}x (target ≤ 1.5x)",
            p50 <= 1.5 * raw50,
        )
        res.add(f"round trip p99, {label}", ms(raw99), ms(p99), f"{p99 / raw99:.2f}x")
    res.notes.append(
        f"Round trip: {per_round * args.rounds} sequential exchanges per variant in "
        f"{args.rounds} alternating rounds (each after {args.warmup} warm-up) with "
        "a `greeter` flow run in another process; 'script' sends from outside any run and "
        "reads the reply from its client inbox, 'run' does the same inside a flow run."
    )


def _top_commands(commands: dict[str, float], n: int = 3) -> str:
    return ", ".join(f"{c} {us:.1f}" for c, us in sorted(commands.items(), key=lambda x: -x[1])[:n])


def scenario_throughput(ctx: Any, url: str, args: argparse.Namespace, res: Results) -> None:
    runs: dict[str, list[dict[str, Any]]] = {}
    per_round = max(1, args.sends // args.rounds)
    for kind in _round_kinds(args):
        child = Child(
            ctx,
            "throughput",
            kind=kind,
            url=url,
            total=per_round,
            warmup=args.warmup,
            batch=args.batch,
        )
        for variant, figures in child.get("result").items():
            runs.setdefault(variant, []).append(figures)
        child.join()

    def median(variant: str, figure: str) -> float:
        return statistics.median(r[figure] for r in runs[variant])

    raw, raw_batch = median("raw", "rate"), median("raw_batch", "rate")
    for variant, label, base, target in (
        ("client", "awaited sends/s, one at a time, from a script", raw, 0.6),
        ("run", "awaited sends/s, one at a time, from a flow run", raw, None),
        ("batch", f"batched inputs/s, `send_inputs` of {args.batch} (raw: pipelined XADD)",
         raw_batch, 0.5),
    ):  # fmt: skip
        rate = median(variant, "rate")
        res.add(
            label,
            f"{base:,.0f}",
            f"{rate:,.0f}",
            f"{rate / base:.2f}x" + (f" (target ≥ {target}x)" if target else ""),
            None if target is None else rate >= target * base,
        )
    for variant, base, label in (
        ("client", "raw", "one awaited send"),
        ("batch", "raw_batch", f"one input of a batch of {args.batch}"),
    ):
        res.add(
            f"profile, {label}: Python CPU µs / Redis µs per input",
            f"{median(base, 'cpu_us'):.0f} / {median(base, 'redis_us'):.1f}",
            f"{median(variant, 'cpu_us'):.0f} / {median(variant, 'redis_us'):.1f}",
            "Redis µs/call: " + _top_commands(runs[variant][-1]["commands"]),
        )
    res.notes.append(
        f"Throughput: median of {args.rounds} alternating rounds of {per_round} sequential "
        f"awaited sends of a {len(PAYLOAD)}-byte string (raw: XADD with the same three "
        f"fields hitl_bus stores: key, sender, data), then the same count in batches of "
        f"{args.batch} (`send_inputs`: one EVALSHA per batch; raw: a pipeline of XADDs). "
        "Profile: the sending process's CPU (`time.process_time`) and Redis's "
        "(`INFO commandstats` usec, reset before each variant) per input."
    )


def scenario_loops(ctx: Any, url: str, args: argparse.Namespace, res: Results) -> None:
    """hitl_bus on asyncio's loop against uvloop (every process of a measurement on the
    same loop), alternating rounds: one-way latency and the script → run round trip."""
    one_way: dict[str, list[int]] = {"asyncio": [], "uvloop": []}
    trips: dict[str, list[int]] = {"asyncio": [], "uvloop": []}
    per_round = max(1, args.messages // args.rounds)
    total = per_round + args.warmup
    for i in range(args.rounds):
        for loop in ("asyncio", "uvloop") if i % 2 == 0 else ("uvloop", "asyncio"):
            receiver = Child(ctx, "latency_receiver", kind="hitl", url=url, total=total, loop=loop)
            target = receiver.get("ready")
            sender = Child(
                ctx,
                "latency_sender",
                kind="hitl",
                url=url,
                target=target,
                total=total,
                interval=args.interval,
                loop=loop,
            )
            sender.get("done")
            one_way[loop] += receiver.get("result")[args.warmup :]
            receiver.join()
            sender.join()
            greeter = Child(ctx, "greeter", kind="hitl", url=url, streams=[], loop=loop)
            run_id = greeter.get("ready")
            asker = Child(ctx, "asker", kind="hitl", url=url, target=run_id, total=total, loop=loop)
            trips[loop] += asker.get("result")["client"][args.warmup :]
            greeter.get("done")
            greeter.join()
            asker.join()
    for label, samples in (
        ("send→receive one-way latency p50", one_way),
        ("round trip p50, script → run", trips),
    ):
        plain, fast = percentile(samples["asyncio"], 50), percentile(samples["uvloop"], 50)
        res.add(
            f"event loop: {label}, asyncio (raw column) vs uvloop (hitl_bus column)",
            ms(plain),
            ms(fast),
            f"uvloop {fast / plain:.2f}x of asyncio",
        )
    res.notes.append(
        f"Event loop: hitl_bus only, every process of a measurement on asyncio's loop or on "
        f"uvloop ({args.rounds} alternating rounds of {per_round} messages each way, after "
        f"{args.warmup} warm-up); the other rows run asyncio's loop."
    )


def scenario_fanout(
    ctx: Any, url: str, port: int, n: int, args: argparse.Namespace, res: Results
) -> None:
    import redis

    admin = redis.Redis.from_url(url, protocol=2, client_name=ADMIN_CLIENT_NAME)
    out: dict[str, dict[str, Any]] = {}
    for kind in ("raw", "hitl", "bells"):
        waiter = Child(ctx, "fan_waiter", kind=kind, url=url, n=n, port=port)
        ready = waiter.get("ready", timeout=300)
        registered = waiter.get("registered", timeout=300)
        # Parked in Redis: every bells subscription is in, every XREAD reader blocks.
        while common.subscriptions(admin, registered["name"]) < registered.get("subscriptions", 0):
            time.sleep(0.001)
        while common.blocked_clients(admin, registered["name"]) < registered["readers"]:
            time.sleep(0.001)
        parked_ns = now_ns() - registered["t0"]
        # Only the waiting process is connected now (besides this admin connection).
        held = sum(1 for c in admin.client_list() if c.get("name") == registered["name"])
        sender = Child(
            ctx,
            "fan_sender",
            kind="raw" if kind == "raw" else "hitl",
            url=url,
            targets=ready["targets"],
            concurrency=args.fan_concurrency,
        )
        sent = sender.get("done", timeout=300)
        result = waiter.get("result", timeout=300)
        waiter.join()
        sender.join()
        out[kind] = {
            **result,
            "parked_s": parked_ns / 1e9,
            "setup_s": ready["setup_s"],
            "held": held,
            "send_s": (sent["last"] - sent["first"]) / 1e9,
            "drain_s": (max(result["wakes"], default=sent["first"]) - sent["first"]) / 1e9,
        }
    admin.close()
    _fanout_rows(n, out["raw"], out["hitl"], f"{n:,} receivers", res)
    _fanout_rows(n, out["raw"], out["bells"], f"{n:,} receivers, bells", res)
    res.notes.append(
        f"{n:,} receivers: hitl_bus runs created beforehand in {out['hitl']['setup_s']:.2f} s "
        f"(`create_flow_run`, 500 concurrent); {args.fan_concurrency} concurrent send lanes "
        "in another process; raw baseline: one connection, one XREAD over all streams, "
        "re-issued after each reply. Connections: max of CLIENT LIST (name) while parked "
        "and the process's own sockets to Redis sampled every 250 ms. 'bells': the same "
        "hitl_bus process with `HITL_BUS_WAKE=bells` (keyspace notifications, one read per "
        "input) instead of the standalone default's blocking XREADs."
    )


def _fanout_rows(
    n: int, raw: dict[str, Any], hitl: dict[str, Any], label: str, res: Results
) -> None:
    big = n >= 10_000  # the targets are stated for 10,000 receivers
    res.add(
        f"{label}: time until all parked", f"{raw['parked_s']:.3f} s", f"{hitl['parked_s']:.3f} s"
    )
    res.add(
        f"{label}: woken",
        f"{raw['woken']:,}",
        f"{hitl['woken']:,}",
        "target: all" if big else "",
        hitl["woken"] == n if big else None,
    )
    res.add(
        f"{label}: drain (first send → last wake)",
        f"{raw['drain_s']:.3f} s",
        f"{hitl['drain_s']:.3f} s",
        f"sending took {raw['send_s']:.3f} / {hitl['send_s']:.3f} s",
    )
    res.add(
        f"{label}: wake latency p50",
        ms(percentile(raw["latencies"], 50)),
        ms(percentile(hitl["latencies"], 50)),
    )
    p99 = percentile(hitl["latencies"], 99)
    res.add(
        f"{label}: wake latency p99",
        ms(percentile(raw["latencies"], 99)),
        ms(p99),
        "target < 100 ms" if big else "",
        p99 < 100e6 if big else None,
    )
    connections = max(hitl["held"], hitl["sockets"])
    res.add(
        f"{label}: Redis connections of the waiting process",
        f"{max(raw['held'], raw['sockets'])}",
        f"{connections}",
        "target ≤ 8" if big else "",
        connections <= 8 if big else None,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (about 30 s)")
    parser.add_argument("--messages", type=int, help="messages for latency/round trip")
    parser.add_argument("--warmup", type=int, help="warm-up messages, not counted")
    parser.add_argument("--interval", type=float, default=0.002, help="one-way send spacing (s)")
    parser.add_argument("--rounds", type=int, help="alternating raw/hitl rounds (latency tests)")
    parser.add_argument("--sends", type=int, help="sends for the throughput test")
    parser.add_argument("--batch", type=int, default=100, help="inputs per send_inputs batch")
    parser.add_argument("--fan", help="receiver counts, comma-separated (default 1000,10000)")
    parser.add_argument("--fan-concurrency", type=int, default=4, help="send lanes for fan-out")
    parser.add_argument(
        "--only",
        help="comma-separated subset of: latency,roundtrip,throughput,loops,fanout",
        default="latency,roundtrip,throughput,loops,fanout",
    )
    common.add_output_args(
        parser, "exit 1 when a target is missed", "cProfile the hitl_bus processes into DIR"
    )
    args = parser.parse_args()
    args.messages = args.messages or (500 if args.quick else 2000)
    args.warmup = args.warmup if args.warmup is not None else (50 if args.quick else 200)
    args.rounds = args.rounds or (2 if args.quick else 4)
    args.sends = args.sends or (2000 if args.quick else 10_000)
    fan = [int(x) for x in (args.fan or "1000,10000").split(",") if x]
    only = set(args.only.split(","))

    ctx = mp.get_context("spawn")
    res = Results()
    bench = Bench(args)
    with bench.redis() as server:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("latency", lambda: scenario_latency(ctx, server.url, args, res)),
            ("roundtrip", lambda: scenario_round_trip(ctx, server.url, args, res)),
            ("throughput", lambda: scenario_throughput(ctx, server.url, args, res)),
            ("loops", lambda: scenario_loops(ctx, server.url, args, res)),
        ]
        for n in fan:
            steps.append(
                ("fanout", lambda n=n: scenario_fanout(ctx, server.url, server.port, n, args, res))
            )
        common.run_steps(steps, only)
    return bench.report(res, "bench_bus.py")


if __name__ == "__main__":
    sys.exit(main())
