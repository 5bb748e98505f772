"""Benchmark workers: ``run_deployment`` → a worker process runs the flow, on a throwaway Redis.

Run from the repo root::

    .venv/bin/python -m bench.bench_workers            # full run, about 40 s
    .venv/bin/python -m bench.bench_workers --quick    # smaller counts, about 15 s

Written like ``bench_bus.py`` (whose helpers it imports). The workers are real
worker processes, ``python -m hitl_bus.cli worker bench/noop_flow.py`` (cwd =
repo root, ``HITL_BUS_LOG_TO_STDERR=0``), serving the deployment
``bench-noop/bench`` with ``--concurrency`` runs at once each; the client is a
spawned process (multiprocessing) calling ``run_deployment(..., timeout=0)``. The
flow's first line subtracts the client's ``CLOCK_MONOTONIC`` timestamp, taken
right before the ``run_deployment`` call and passed as a parameter, and pushes
the result to a Redis list.

For 1 and for 2 worker processes (``--workers``):

1. sequential: one run at a time; the client waits (BLPOP on that list) until the
   run's first line has run, then ``--gap`` ms, then starts the next. Reported:
   queue → first line latency, and the ``run_deployment`` call's duration;
2. burst: ``--burst`` runs started back to back (awaited calls, ``--lanes`` at a
   time): runs started per second, time until all first lines ran and until all
   runs were Completed (the parent follows the global event stream), latency
   p50/p99 under that load, how the runs spread over the workers, and CPU time
   per run of the client, the workers and redis-server.

Reference line, raw redis-py: the same shape with a consumer group queue. The
client XADDs ``{t0, key}`` to a stream; as many consumer processes read it with
``XREADGROUP ... COUNT 1 BLOCK`` on a connection of their own and handle up to
``--concurrency`` entries at once, each handler doing what the flow does (RPUSH
the latency), then XADD to a "done" stream (what the parent follows, as the
Completed event for hitl_bus) and XACK.

The table is printed and written to ``docs/benchmarks.md`` (``--no-write`` to skip).
``--profile DIR`` runs the workers and the hitl_bus client under cProfile. With
``--check`` the exit status is 1 when a run was lost, failed or ran twice.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import json
import multiprocessing as mp
import os
import signal
import subprocess
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
    ROOT,
    Bench,
    Results,
    close_hitl,
    ms,
    now_ns,
    percentile,
    raw_client,
)

DEPLOYMENT = "bench-noop/bench"  # bench/noop_flow.py
FLOWS_MODULE = "bench/noop_flow.py"
RAW_GROUP = "workers"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------------------
# Child processes (roles), as in bench_bus: an async function per role, reporting
# (tag, payload) tuples through ``out``.
# ---------------------------------------------------------------------------------------


async def role_client(
    out: Any,
    kind: str,
    url: str,
    mode: str,
    total: int,
    warmup: int,
    gap: float,
    key: str,
    lanes: int,
    queue_key: str,
    go: Any = None,
) -> None:
    """Start ``total`` runs (raw: queue entries), sequentially or as a burst.

    Reports ``ids`` (run ids / entry ids), the calls' durations, and for ``seq``
    the values the runs pushed, popped here as each run starts. A burst reports
    ``warm`` after the warm-up and starts when the parent sets ``go``.
    """
    r = raw_client(url)  # BLPOP: wait for a run's first line
    if kind == "raw":

        async def start(list_key: str) -> tuple[str, int]:
            t0 = now_ns()
            entry_id = await r.xadd(queue_key, {"t0": str(t0), "key": list_key})
            return entry_id.decode(), now_ns() - t0

    elif kind == "saq":
        from saq import Queue

        saq_queue = Queue.from_url(url, name=queue_key)
        await saq_queue.connect()

        async def start(list_key: str) -> tuple[str, int]:
            t0 = now_ns()
            job = await saq_queue.enqueue("saq_job", t0=t0, list_key=list_key)
            assert job is not None
            return str(job.key), now_ns() - t0

    else:
        from hitl_bus import run_deployment

        async def start(list_key: str) -> tuple[str, int]:
            t0 = now_ns()
            run = await run_deployment(DEPLOYMENT, {"t0": t0, "key": list_key}, timeout=0)
            return str(run.id), now_ns() - t0

    async def one_at_a_time(list_key: str, count: int) -> tuple[list[str], list[int], list[str]]:
        ids, durations, values = [], [], []
        for _ in range(count):
            run_id, took = await start(list_key)
            ids.append(run_id)
            durations.append(took)
            _, value = await r.blpop([list_key], 0)
            values.append(value.decode())
            await asyncio.sleep(gap)
        return ids, durations, values

    warm_ids, _, _ = await one_at_a_time(f"{key}:warm", warmup)
    await asyncio.sleep(0.05)  # the warm-up runs finish before the measurement
    result: dict[str, Any] = {"warm_ids": warm_ids}
    if mode == "seq":
        result["ids"], result["durations"], result["values"] = await one_at_a_time(key, total)
    else:
        ids: list[str] = []
        durations: list[int] = []

        async def lane(count: int) -> None:
            for _ in range(count):
                run_id, took = await start(key)
                ids.append(run_id)
                durations.append(took)

        counts = [total // lanes + (1 if i < total % lanes else 0) for i in range(lanes)]
        out.put(("warm", None))
        await asyncio.to_thread(go.wait)  # the parent has read its counters
        cpu = time.process_time()
        first = now_ns()
        await asyncio.gather(*(lane(c) for c in counts))
        last = now_ns()
        cpu = time.process_time() - cpu
        result.update(ids=ids, durations=durations, first=first, last=last, cpu=cpu)
    await r.aclose()
    if kind == "hitl":
        await close_hitl()
    if kind == "saq":
        await saq_queue.disconnect()
    out.put(("result", result))


async def role_raw_consumer(
    out: Any, url: str, queue_key: str, done_stream: str, concurrency: int
) -> None:
    """The raw analogue of a worker: XREADGROUP one entry at a time, up to N handlers."""
    import redis.asyncio as aioredis
    from redis.exceptions import ResponseError

    r = raw_client(url)
    reader = aioredis.Redis.from_url(
        url,
        protocol=2,
        single_connection_client=True,
        client_name=RAW_CLIENT_NAME,
        socket_timeout=None,
    )
    try:
        await r.xgroup_create(queue_key, RAW_GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    name = f"raw-{os.getpid()}"
    pid = os.getpid()
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def handle(entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            started = now_ns()
            latency = started - int(fields[b"t0"])
            await r.rpush(fields[b"key"], f"{latency} {started} {pid} {entry_id.decode()}")
            await r.xadd(done_stream, {"id": entry_id})
            await r.xack(queue_key, RAW_GROUP, entry_id)
        finally:
            slots.release()

    out.put(("ready", pid))
    while True:
        await slots.acquire()
        reply = await reader.xreadgroup(RAW_GROUP, name, {queue_key: ">"}, count=1, block=1000)
        if not reply or not reply[0][1]:
            slots.release()
            continue
        entry_id, fields = reply[0][1][0]
        task = asyncio.create_task(handle(entry_id, fields))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def role_saq_worker(
    out: Any, url: str, queue_key: str, done_stream: str, concurrency: int
) -> None:
    """A saq worker on the same Redis: its job does what the raw handler does (RPUSH the
    latency); once saq has recorded the job complete, a hook XADDs to the done stream."""
    from saq import Queue, Worker

    r = raw_client(url)
    pid = os.getpid()

    async def saq_job(ctx: dict[str, Any], *, t0: int, list_key: str) -> None:
        started = now_ns()
        await r.rpush(list_key, f"{started - t0} {started} {pid} {ctx['job'].key}")

    async def finished(ctx: dict[str, Any]) -> None:  # after saq's job.finish(COMPLETE)
        await r.xadd(done_stream, {"id": ctx["job"].key})

    saq_queue = Queue.from_url(url, name=queue_key)
    worker = Worker(
        saq_queue,
        functions=[("saq_job", saq_job)],
        concurrency=concurrency,
        after_process=finished,
    )
    out.put(("ready", pid))
    await worker.start()  # until SIGTERM


ROLES: dict[str, Callable[..., Awaitable[None]]] = {
    "client": role_client,
    "raw_consumer": role_raw_consumer,
    "saq_worker": role_saq_worker,
}


def _child_main(role: str, kwargs: dict[str, Any], out: Any) -> None:
    profile_as = f"{role}-{kwargs.get('mode', '')}" if kwargs.get("kind") == "hitl" else None
    common.run_role(lambda: ROLES[role](out, **kwargs), out, profile_as)


class Child(common.Child):
    """One spawned process running one of this file's roles."""

    child_main = staticmethod(_child_main)


# ---------------------------------------------------------------------------------------
# The parent: Redis, the worker processes, the scenarios.
# ---------------------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


class Consumers:
    """N hitl_bus worker processes (the CLI) or N raw consumer processes."""

    def __init__(self, ctx: Any, kind: str, n: int, args: argparse.Namespace, url: str) -> None:
        self.kind = kind
        self.n = n
        self.procs: list[subprocess.Popen[bytes]] = []
        self.children: list[Child] = []
        self.queue_key = f"bench:rawq:{uuid.uuid4().hex}"
        self.done_stream = f"bench:rawdone:{uuid.uuid4().hex}"
        for i in range(n):
            if kind in ("raw", "saq"):
                self.children.append(
                    Child(
                        ctx,
                        "raw_consumer" if kind == "raw" else "saq_worker",
                        url=url,
                        queue_key=self.queue_key,
                        done_stream=self.done_stream,
                        concurrency=args.concurrency,
                    )
                )
                continue
            env = {
                **os.environ,
                "HITL_BUS_REDIS_URL": url,
                "HITL_BUS_LOG_TO_STDERR": "0",
            }
            cmd = [sys.executable]
            if args.profile:
                out_file = args.profile.resolve() / f"worker{n}-{i}.prof"
                cmd += ["-m", "cProfile", "-o", str(out_file)]
            cmd += ["-m", "hitl_bus.cli", "worker", FLOWS_MODULE]
            cmd += ["--concurrency", str(args.concurrency)]
            self.procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env))

    @property
    def pids(self) -> list[int]:
        if self.children:
            return [c.proc.pid for c in self.children if c.proc.pid is not None]
        return [p.pid for p in self.procs]

    def wait_ready(self, admin: Any, timeout: float = 60) -> None:
        """Until every consumer blocks in XREADGROUP (hitl: the deployment registered)."""
        from hitl_bus import keys

        for child in self.children:
            child.get("ready", timeout=timeout)
        if self.kind == "saq":  # its workers poll their queue list with BLMOVE
            time.sleep(0.5)
            return
        name = RAW_CLIENT_NAME if self.kind == "raw" else HITL_CLIENT_NAME
        deadline = time.monotonic() + timeout
        while True:
            registered = self.kind == "raw" or admin.hexists(keys.DEPLOYMENTS, DEPLOYMENT)
            if registered and common.blocked_clients(admin, name, "xreadgroup") >= self.n:
                return
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.kind} consumers not ready in {timeout} s")
            time.sleep(0.02)

    def check(self) -> None:
        """Raise if a consumer process has died."""
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}")
        for child in self.children:
            if not child.proc.is_alive():
                raise RuntimeError(f"{self.kind} consumer exited with {child.proc.exitcode}")

    def stop(self) -> None:
        for child in self.children:
            child.proc.terminate()
            child.proc.join(5)
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)  # drains, removes its heartbeat, ends cProfile
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _final_id(kind: str, fields: dict[bytes, bytes]) -> str | None:
    """The run (raw: queue entry, saq: job) a followed stream entry reports as finished."""
    if kind != "hitl":
        return fields[b"id"].decode()
    if fields.get(b"type") != b"state.changed":
        return None
    state = json.loads(fields[b"data"])["state"]["type"]
    return f"{state}:{fields[b'run_id'].decode()}" if state in FINAL else None


def follow(
    admin: Any,
    kind: str,
    stream: str,
    position: str,
    client: Child,
    consumers: Consumers,
    timeout: float = 300,
) -> tuple[dict[str, Any], dict[str, tuple[str, int]], int]:
    """Follow ``stream`` until every run the client reports started has finished.

    Returns the client's result, ``{id: (final state, seen at ns)}`` and how many
    XREADs that took.
    """
    finals: dict[str, tuple[str, int]] = {}
    result: dict[str, Any] | None = None
    deadline = time.monotonic() + timeout
    reads = 0
    while True:
        reply = admin.xread({stream: position}, block=100, count=1000)
        reads += 1
        seen = now_ns()
        for _, entries in reply or []:
            for entry_id, fields in entries:
                position = entry_id
                final = _final_id(kind, fields)
                if final is None:
                    continue
                state, _, run_id = final.rpartition(":")
                finals[run_id] = (state or "COMPLETED", seen)
        if result is None:
            result = client.poll("result")
        if result is not None and all(i in finals for i in result["ids"]):
            return result, finals, reads
        consumers.check()
        if time.monotonic() > deadline:
            missing = len(result["ids"]) - len(finals) if result else "?"
            raise TimeoutError(f"{kind}: {missing} runs not finished in {timeout} s")


def _stream_end(admin: Any, stream: str) -> str:
    last = admin.xrevrange(stream, count=1)
    return last[0][0].decode() if last else "0-0"


def _parse(values: list[Any]) -> list[tuple[int, int, int, str]]:
    """``"<latency> <first line ns> <pid> <run id>"`` records."""
    out = []
    for raw in values:
        text = raw.decode() if isinstance(raw, bytes) else raw
        latency, started, pid, run_id = text.split()
        out.append((int(latency), int(started), int(pid), run_id))
    return out


def _once_each(records: list[tuple[int, int, int, str]], ids: list[str]) -> bool:
    """Every run started, none twice."""
    started = [r[3] for r in records]
    return len(started) == len(ids) and set(started) == set(ids)


def _client(
    ctx: Any, url: str, kind: str, consumers: Consumers, args: argparse.Namespace, **kwargs: Any
) -> Child:
    """The client process (``role_client``); ``kwargs``: mode, total, key, lanes, go."""
    return Child(
        ctx,
        "client",
        kind=kind,
        url=url,
        warmup=args.warmup,
        gap=args.gap / 1000,
        queue_key=consumers.queue_key,
        **kwargs,
    )


def run_sequential(
    ctx: Any, url: str, kind: str, consumers: Consumers, args: argparse.Namespace, admin: Any
) -> dict[str, Any]:
    key = f"bench:workers:seq:{uuid.uuid4().hex}"
    client = _client(ctx, url, kind, consumers, args, mode="seq", total=args.seq, key=key, lanes=1)
    result = client.get("result", timeout=300)
    client.join()
    time.sleep(0.1)
    # Each value was popped as its run started: anything left is a second start.
    popped = _parse(result["values"])  # in order: the n-th value is the n-th run's
    records = popped + _parse(admin.lrange(key, 0, -1))
    return {
        "latencies": [r[0] for r in popped],
        "after_call": [r[0] - d for r, d in zip(popped, result["durations"], strict=True)],
        "durations": result["durations"],
        "pids": collections.Counter(r[2] for r in records),
        "started_once": _once_each(records, result["ids"]),
    }


def run_burst(
    ctx: Any,
    url: str,
    kind: str,
    consumers: Consumers,
    args: argparse.Namespace,
    admin: Any,
    redis_pid: int,
) -> dict[str, Any]:
    from hitl_bus import keys

    key = f"bench:workers:burst:{uuid.uuid4().hex}"
    stream = keys.EVENTS if kind == "hitl" else consumers.done_stream
    go = ctx.Event()
    client = _client(
        ctx,
        url,
        kind,
        consumers,
        args,
        mode="burst",
        total=args.burst,
        key=key,
        lanes=args.lanes,
        go=go,
    )
    client.get("warm", timeout=120)
    time.sleep(0.1)  # the warm-up runs end
    position = _stream_end(admin, stream)
    pids = {"workers": consumers.pids, "redis": [redis_pid]}
    cpu_before = {role: sum(cpu_ticks(p) for p in ps) for role, ps in pids.items()}
    stats_before = admin.info("commandstats")
    go.set()
    result, finals, reads = follow(admin, kind, stream, position, client, consumers)
    stats_after = admin.info("commandstats")
    cpu = {
        role: (sum(cpu_ticks(p) for p in ps) - cpu_before[role]) / CLK_TCK
        for role, ps in pids.items()
    }
    client.join()
    commands = _command_diff(stats_before, stats_after)
    calls, usec = commands.get("xread", (0, 0))  # less the parent's XREADs of the stream
    commands["xread"] = (calls - reads, usec)
    if kind == "saq":  # nor the done entries its hook adds
        calls, usec = commands.get("xadd", (0, 0))
        commands["xadd"] = (calls - len(result["ids"]), usec)
    commands.pop("info", None)
    records = _parse(admin.lrange(key, 0, -1))
    ids = result["ids"]
    states = collections.Counter(finals[i][0] for i in ids)
    first = result["first"]
    return {
        "n": len(ids),
        "call_s": (result["last"] - first) / 1e9,
        "durations": result["durations"],
        "all_started_s": (max(r[1] for r in records) - first) / 1e9,
        "all_done_s": (max(finals[i][1] for i in ids) - first) / 1e9,
        "latencies": [r[0] for r in records],
        "pids": collections.Counter(r[2] for r in records),
        "states": states,
        "started_once": _once_each(records, ids),
        "cpu": cpu,
        "client_cpu": result["cpu"],
        "commands": {k: v for k, v in commands.items() if v[0] > 0},
    }


def _command_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """``{command: (calls, usec)}`` between two INFO commandstats readings."""
    diff = {}
    for name, stat in after.items():
        old = before.get(name, {"calls": 0, "usec": 0})
        calls = stat["calls"] - old["calls"]
        if calls > 0:
            diff[name.removeprefix("cmdstat_")] = (calls, stat["usec"] - old["usec"])
    return diff


def _spread(counter: collections.Counter[int], n: int) -> str:
    counts = sorted(counter.values(), reverse=True)
    counts += [0] * (n - len(counts))
    return " / ".join(f"{c:,}" for c in counts)


def scenario(
    ctx: Any, url: str, n: int, args: argparse.Namespace, res: Results, redis_pid: int
) -> None:
    import redis

    admin = redis.Redis.from_url(url, protocol=2, client_name=ADMIN_CLIENT_NAME)
    label = f"{n} worker{'s' if n > 1 else ''}"
    seq: dict[str, dict[str, Any]] = {}
    burst: dict[str, dict[str, Any]] = {}
    kinds = ["raw", "hitl"]
    if args.saq and "burst" in args.only:
        kinds.append("saq")
    for kind in kinds:
        t = time.perf_counter()
        consumers = Consumers(ctx, kind, n, args, url)
        try:
            consumers.wait_ready(admin)
            print(f"  {label}, {kind}: ready in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            if "seq" in args.only and kind != "saq":
                seq[kind] = run_sequential(ctx, url, kind, consumers, args, admin)
            if "burst" in args.only:
                burst[kind] = run_burst(ctx, url, kind, consumers, args, admin, redis_pid)
        finally:
            consumers.stop()
        print(f"  {label}, {kind}: done in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    admin.close()

    if seq:
        raw, hitl = seq["raw"], seq["hitl"]
        for pct in (50, 99):
            r, h = percentile(raw["latencies"], pct), percentile(hitl["latencies"], pct)
            res.add(f"{label}, sequential: queue→first line p{pct}", ms(r), ms(h), f"{h / r:.2f}x")
        for what, field in (
            ("run_deployment(timeout=0) call p50 (raw: XADD)", "durations"),
            ("call's return → first line p50 (the worker's part)", "after_call"),
        ):
            r, h = percentile(raw[field], 50), percentile(hitl[field], 50)
            res.add(f"{label}, sequential: {what}", ms(r), ms(h), f"{h / r:.2f}x")
        res.add(
            f"{label}, sequential: runs started once each; per worker",
            _spread(raw["pids"], n),
            _spread(hitl["pids"], n),
            "",
            hitl["started_once"] and raw["started_once"],
        )
    if burst:
        raw, hitl = burst["raw"], burst["hitl"]

        def per_run(side: dict[str, Any]) -> str:
            ms_each = {
                "client": side["client_cpu"] * 1e3 / side["n"],
                "workers": side["cpu"]["workers"] * 1e3 / side["n"],
                "redis": side["cpu"]["redis"] * 1e3 / side["n"],
            }
            return " / ".join(f"{v:.2f}" for v in ms_each.values())

        def commands(side: dict[str, Any]) -> str:
            return f"{sum(c for c, _ in side['commands'].values()) / side['n']:.1f}"

        b = f"{label}, burst of {hitl['n']:,}"
        r, h = raw["n"] / raw["call_s"], hitl["n"] / hitl["call_s"]
        res.add(
            f"{b}: runs started/s (client, {args.lanes} call(s) at a time)",
            f"{r:,.0f}",
            f"{h:,.0f}",
            f"{h / r:.2f}x",
        )
        for what, field in (
            ("all started (first call → last first line)", "all_started_s"),
            ("all completed (first call → last Completed)", "all_done_s"),
        ):
            r, h = raw[field], hitl[field]
            res.add(f"{b}: {what}", f"{r:.3f} s", f"{h:.3f} s", f"{h / r:.2f}x")
        res.add(
            f"{b}: completed runs/s",
            f"{raw['n'] / raw['all_done_s']:,.0f}",
            f"{hitl['n'] / hitl['all_done_s']:,.0f}",
        )
        saq = burst.get("saq")
        if saq is not None:
            jobs, runs = saq["n"] / saq["all_done_s"], hitl["n"] / hitl["all_done_s"]
            res.add(
                f"{b}: completed runs/s against saq's completed jobs/s (raw column: saq)",
                f"{jobs:,.0f}",
                f"{runs:,.0f}",
                f"{runs / jobs:.2f}x of saq (target ≥ 1.5x)"
                + ("" if runs >= 1.5 * jobs else ": missed"),
            )
            res.add(
                f"{b}: CPU ms per run, client / workers / redis; Redis commands per run "
                "(raw column: saq's job, each completed once)",
                f"{per_run(saq)}; {commands(saq)}",
                f"{per_run(hitl)}; {commands(hitl)}",
                "",
                saq["started_once"] and saq["states"] == {"COMPLETED": saq["n"]},
            )
        for pct in (50, 99):
            r, h = percentile(raw["latencies"], pct), percentile(hitl["latencies"], pct)
            res.add(f"{b}: queue→first line p{pct}", ms(r), ms(h), f"{h / r:.2f}x")
        r, h = percentile(raw["durations"], 50), percentile(hitl["durations"], 50)
        res.add(f"{b}: run_deployment call p50 (raw: XADD)", ms(r), ms(h), f"{h / r:.2f}x")
        ok = (
            hitl["started_once"]
            and hitl["states"] == {"COMPLETED": hitl["n"]}
            and raw["started_once"]
        )
        res.add(
            f"{b}: all Completed, each started once; per worker",
            _spread(raw["pids"], n),
            _spread(hitl["pids"], n),
            ", ".join(f"{s} {c:,}" for s, c in sorted(hitl["states"].items())),
            ok,
        )

        res.add(f"{b}: CPU ms per run, client / workers / redis", per_run(raw), per_run(hitl))

        top = sorted(hitl["commands"].items(), key=lambda kv: -kv[1][1])[:5]
        res.add(
            f"{b}: Redis commands per run (hitl_bus: top by Redis time, calls / µs per run)",
            commands(raw),
            commands(hitl),
            ", ".join(f"{name} {c / hitl['n']:.1f} / {u / hitl['n']:.0f}" for name, (c, u) in top),
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (about 15 s)")
    parser.add_argument("--workers", default="1,2", help="worker process counts (default 1,2)")
    parser.add_argument("--concurrency", type=int, default=4, help="runs at once per worker")
    parser.add_argument("--seq", type=int, help="sequential runs measured")
    parser.add_argument("--burst", type=int, help="runs in the burst")
    parser.add_argument("--warmup", type=int, help="sequential warm-up runs, not counted")
    parser.add_argument("--gap", type=float, default=2.0, help="ms between sequential runs")
    parser.add_argument("--lanes", type=int, default=1, help="concurrent calls in the burst")
    parser.add_argument("--only", default="seq,burst", help="comma-separated subset of: seq,burst")
    parser.add_argument(
        "--no-saq", dest="saq", action="store_false", help="skip the saq reference line"
    )
    common.add_output_args(
        parser, "exit 1 when a run went wrong", "cProfile workers and hitl client into DIR"
    )
    args = parser.parse_args()
    args.seq = args.seq or (200 if args.quick else 1000)
    args.burst = args.burst or (500 if args.quick else 2000)
    args.warmup = args.warmup if args.warmup is not None else (10 if args.quick else 50)
    args.only = set(args.only.split(","))
    if args.saq and importlib.util.find_spec("saq") is None:
        print("saq is not installed (pip install -e '.[bench]'): no saq line", file=sys.stderr)
        args.saq = False
    worker_counts = [int(x) for x in args.workers.split(",") if x]

    ctx = mp.get_context("spawn")
    res = Results()
    bench = Bench(args)
    with bench.redis() as server:
        assert server.process is not None
        for n in worker_counts:
            scenario(ctx, server.url, n, args, res, server.process.pid)
    notes = [
        f"Workers: `python -m hitl_bus.cli worker {FLOWS_MODULE} --concurrency "
        f"{args.concurrency}` (flow `{DEPLOYMENT}`: its first line takes the time and RPUSHes "
        "it); client: a spawned process calling `run_deployment(..., timeout=0)`. Raw "
        "reference: XADD to a stream read by as many consumer processes through a consumer "
        f"group (`XREADGROUP COUNT 1 BLOCK`, up to {args.concurrency} handlers each, each "
        "RPUSHing the time, XADDing a done entry and XACKing).",
        f"Sequential: {args.seq:,} runs one at a time (after {args.warmup} warm-up), the "
        f"next {args.gap:g} ms after the previous one's first line was seen (BLPOP). "
        "Latency: `run_deployment` call start → the flow's first line, across processes "
        "(CLOCK_MONOTONIC).",
        f"Burst: {args.burst:,} runs started back to back ({args.lanes} awaited call(s) at "
        "a time) after the warm-up; 'all completed' is when the parent, following the "
        "global event stream (raw: the done stream), saw the last Completed. CPU over the "
        "burst (client: its own process time; workers and redis-server: utime + stime from "
        "/proc) divided by its runs. Redis commands: `INFO commandstats` over the burst, "
        "which also counts the commands scripts call (HGET, HSET, XADD in EVALSHA), less "
        "the parent's XREADs.",
        "saq (burst only): a real saq worker per worker process on the same Redis "
        f"(`saq.Worker`, concurrency {args.concurrency}), its job RPUSHing the time as the "
        "raw handler does; the client enqueues with `Queue.enqueue` back to back; a job "
        "counts as completed when saq's `after_process` hook (after saq recorded it "
        "complete) XADDs it to a done stream, which the parent follows.",
        f"{os.cpu_count()} cores shared by redis-server, the client, the worker processes "
        "and other work on the machine: with 2 workers there are more busy processes than "
        "cores.",
    ]
    return bench.report(res, "bench_workers.py", "workers, ", notes, "check(s) failed")


if __name__ == "__main__":
    sys.exit(main())
