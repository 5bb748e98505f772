"""Benchmark workers: ``run_deployment`` → a worker process runs the flow, on a throwaway Redis.

Run from the repo root::

    .venv/bin/python -m bench.bench_workers            # full run, about 3 minutes
    .venv/bin/python -m bench.bench_workers --quick    # smaller counts, about 1.5 minutes

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

3. MONITOR: ``INFO commandstats`` counts the commands scripts run inside EVALSHA too,
   so after the burst ``--monitor`` more runs (200) go under ``MONITOR``: the commands
   per run that clients send (a script call is one), by process (client, workers) and
   by name, and apart, those their scripts ran (``[0 lua]``), for raw, hitl_bus and saq
   alike. ``--ledger FILE``: one run of each kind, command by command, with its sender
   and key.

With saq, ``--burst-rounds`` (3) bursts of hitl_bus and saq take turns, each with fresh
worker processes, and the median of their ratios is reported beside the first round's:
this machine's figures drift between runs, and the target is that ratio.

The table is printed and written to ``docs/benchmarks.md`` (``--no-write`` to skip).
``--profile DIR`` runs the hitl_bus workers under cProfile for the burst only and sums
them per run, by function and by area (``DIR/workers<N>-burst.txt``), and the hitl_bus
client under cProfile for its life. With ``--check`` the exit status is 1 when a run was
lost, failed or ran twice.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import importlib.util
import json
import multiprocessing as mp
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
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
#: ``python -m bench.bench_workers --profiled-worker OUT wall|cpu worker MODULE ...``: a
#: worker (``hitl_bus.cli``) whose cProfile SIGUSR1 turns on and SIGUSR2 off, writing OUT.
PROFILED_WORKER = "--profiled-worker"
#: bench_workers' own flag: run the worker CLI in this process, noting when each run's
#: queue entry was read and its begin sent and answered (``split_worker``).
SPLIT_WORKER = "--split-worker"

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
        #: hitl_bus workers under --profile: where each writes its burst's profile.
        self.profiles: list[Path] = []
        self.queue_key = f"bench:rawq:{uuid.uuid4().hex}"
        self.done_stream = f"bench:rawdone:{uuid.uuid4().hex}"
        #: hitl_bus workers without --profile: the hash their steps are written to.
        self.split_key = f"bench:split:{uuid.uuid4().hex}"
        self.split = kind == "hitl" and not args.profile
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
            cmd = [sys.executable, "-m"]
            if args.profile:  # cProfile on for the burst only (SIGUSR1 ... SIGUSR2)
                out_file = args.profile.resolve() / f"worker{n}-{i}-burst.prof"
                out_file.unlink(missing_ok=True)
                self.profiles.append(out_file)
                cmd += ["bench.bench_workers", PROFILED_WORKER, str(out_file), args.profile_timer]
            else:  # the worker's part of each run, split in steps (SIGUSR2 writes them)
                cmd += ["bench.bench_workers", SPLIT_WORKER, self.split_key]
            cmd += ["worker", FLOWS_MODULE, "--concurrency", str(args.concurrency)]
            self.procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env))

    def profile(self, on: bool) -> None:
        """Turn the hitl_bus workers' cProfile on, or off and written (--profile)."""
        if not on:
            before = {p: p.stat().st_mtime_ns if p.exists() else 0 for p in self.profiles}
        for proc in self.procs:
            proc.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)
        if on:
            return
        deadline = time.monotonic() + 30
        while any(not p.exists() or p.stat().st_mtime_ns == before[p] for p in self.profiles):
            if time.monotonic() > deadline:
                raise TimeoutError("the workers did not write their profiles")
            time.sleep(0.05)
        time.sleep(0.2)  # written whole

    def steps(self, admin: Any) -> dict[str, tuple[int, int, int]]:
        """Run id -> when its worker read its entry, sent its begin and had the answer
        (CLOCK_MONOTONIC ns), as the split workers noted them since the last call."""
        if not self.split:
            return {}
        admin.delete(self.split_key)
        for proc in self.procs:
            proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 10
        while admin.hlen(self.split_key) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # every worker's
        return {
            run_id.decode(): tuple(int(t) for t in value.split())  # type: ignore[misc]
            for run_id, value in admin.hgetall(self.split_key).items()
        }

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
    noted = consumers.steps(admin)
    steps = [  # call start → entry read, → begin sent, → begun, → first line
        (read - (first - latency), begin - read, begun - begin, first - begun)
        for latency, first, _, run_id in popped
        if run_id in noted
        for read, begin, begun in [noted[run_id]]
    ]
    return {
        "steps": steps,
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
    profiled = bool(consumers.profiles)
    if profiled:
        consumers.profile(True)
    go.set()
    result, finals, reads = follow(admin, kind, stream, position, client, consumers)
    stats_after = admin.info("commandstats")
    ticks_after = {role: sum(cpu_ticks(p) for p in ps) for role, ps in pids.items()}
    if profiled:  # after the counters: writing the profile is not the runs' CPU
        consumers.profile(False)
    cpu = {role: (ticks_after[role] - cpu_before[role]) / CLK_TCK for role in pids}
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
        "profiled": profiled,
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


# ---------------------------------------------------------------------------------------
# --profile: the workers' CPU over the burst, per run, by function and by area.
# ---------------------------------------------------------------------------------------


def profiled_worker(out_file: str, timer: str, argv: list[str]) -> None:
    """Run ``hitl_bus.cli`` with ``argv`` (``worker MODULE ...``) in this process, with
    cProfile (the main thread's CPU time, where the event loop runs every async flow)
    turned on by SIGUSR1 and off by SIGUSR2, which writes ``out_file``: the profile
    covers the burst only, not start-up, warm-up or the other measurements."""
    import cProfile
    import runpy

    # "wall": cProfile's own clock (cheap to read); on a shared 2-core machine it also
    # counts the time the worker waits for a CPU, mostly in its socket writes, which wake
    # redis-server. "cpu": the thread's CPU time, without that wait, but each reading is a
    # system call, which inflates functions called very often (isinstance, len, encode).
    profiler = cProfile.Profile(time.thread_time) if timer == "cpu" else cProfile.Profile()

    def on(signum: int, frame: Any) -> None:
        profiler.enable()

    def off(signum: int, frame: Any) -> None:
        profiler.disable()
        profiler.dump_stats(out_file)

    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, off)
    sys.argv = ["hitl_bus.cli", *argv]
    runpy.run_module("hitl_bus.cli", run_name="__main__", alter_sys=True)


def split_worker(key: str, argv: list[str]) -> None:
    """Run ``hitl_bus.cli`` with ``argv`` in this process, noting for each run when its
    queue entry's read returned, when its begin was sent for and when it was answered
    (the run read back as models too); SIGUSR2 writes them to the hash ``key`` as
    ``"<read ns> <begin ns> <begun ns>"`` by run id, and forgets them. The flow's first
    line gives the rest (``bench/noop_flow.py``). Only runs that came through the
    blocking read are noted: a final state's next run is begun in its own step."""
    import runpy

    import redis

    from hitl_bus.bus import codec, groups
    from hitl_bus.engine import starting

    read_at: dict[str, int] = {}
    noted: dict[Any, Any] = {}
    read_group, begin_queued = groups.read_group, starting.begin_queued

    async def noting_read(*args: Any, **kwargs: Any) -> Any:
        reply = await read_group(*args, **kwargs)
        at = now_ns()
        for _, entries in reply or []:
            for _, fields in entries:
                read_at[codec.text(fields.get(b"run_id")) or ""] = at
        return reply

    async def noting_begin(run_id: str, *args: Any, **kwargs: Any) -> Any:
        sent = now_ns()
        begun = await begin_queued(run_id, *args, **kwargs)
        start = kwargs.get("start", args[2] if len(args) > 2 else None)
        if start is None and run_id in read_at:
            noted[run_id] = f"{read_at.pop(run_id)} {sent} {now_ns()}"
        return begun

    def write(signum: int, frame: Any) -> None:
        if noted:
            redis.Redis.from_url(os.environ["HITL_BUS_REDIS_URL"]).hset(key, mapping=noted)
        noted.clear()
        read_at.clear()

    groups.read_group = noting_read
    starting.begin_queued = noting_begin
    signal.signal(signal.SIGUSR2, write)
    sys.argv = ["hitl_bus.cli", *argv]
    runpy.run_module("hitl_bus.cli", run_name="__main__", alter_sys=True)


_POOL_FUNCTIONS = {"get_connection", "release", "can_get_connection", "_maybe_pool_lock"}


def profile_area(file: str, func: str) -> str:
    """Which part of the stack a profiled function belongs to (a built-in: ``None``, it
    is charged to its callers' areas)."""
    path = file.replace("\\", "/")
    if "/hitl_bus/" in path:
        module = path.split("/hitl_bus/", 1)[1]
        if module in ("engine/logger.py", "logging.py"):
            return "logging: hitl_bus run logs (engine/logger.py)"
        if module.startswith(("bus/connection", "bus/retrying", "bus/reading")):
            return "hitl_bus: bus/connection.py, retrying.py, reading.py (retry window, clients)"
        return f"hitl_bus: {module.split('/')[0].removesuffix('.py')}"
    if "/redis/" in path:
        if "/observability/" in path or func in ("get_pool_name", "record_operation_duration"):
            return "redis-py: telemetry hooks (off, still called per command)"
        if ("/_parsers/" in path and "encoders" in path) or func == "pack_command":
            return "redis-py: command packing (pack_command, encode)"
        if "/_parsers/" in path:
            return "redis-py: reply parsing"
        if path.endswith("/connection.py") and func in _POOL_FUNCTIONS:
            return "redis-py: connection pool (BlockingConnectionPool)"
        if path.endswith("/connection.py"):
            return "redis-py: connection: send, read, socket timeouts"
        return "redis-py: client, pipeline, retry"
    if "pydantic" in path:
        return "pydantic (Python side)"
    if path.endswith(("/asyncio/timeouts.py", "/asyncio/locks.py")) or func in (
        "wait_for",
        "shield",
        "ensure_future",
        "_ensure_future",
    ):
        return "asyncio: timeouts, wait_for, locks (per command)"
    if "/asyncio/" in path or "uvloop" in path:
        return "asyncio: event loop, streams, tasks"
    if "/logging/" in path:
        return "logging: stdlib"
    if "/json/" in path:
        return "json"
    if file == "~":  # built-ins and C extensions: named by the function's repr
        for part, area in (
            ("pydantic", "pydantic (Rust core: validate, dump)"),
            ("hiredis", "redis-py: reply parsing"),
            ("uvloop", "asyncio: event loop, streams, tasks"),
            ("_asyncio", "asyncio: event loop, streams, tasks"),
        ):
            if part in func:
                return area
        return "~"  # charged to its callers
    if "site-packages" in path:
        return f"other package: {path.split('site-packages/', 1)[1].split('/')[0]}"
    return "stdlib (other)"


def profile_summary(paths: list[Path], runs: int, timer: str, top: int = 25) -> str:
    """The workers' burst profiles added up, in µs per run: the top functions by
    cumulative and by own time, and own time by area (which adds up, unlike cumulative)."""
    import pstats

    if not paths:
        return "no worker profile written"
    stats: Any = pstats.Stats(*(str(p) for p in paths))
    entries = stats.stats  # {(file, line, func): (primitive calls, calls, own, cumulative, _)}
    own_total = sum(v[2] for v in entries.values())

    def name(key: tuple[str, int, str]) -> str:
        file, line, func = key
        if file == "~":
            return func
        short = file.split("site-packages/", 1)[-1]
        short = short.split("/hitl_bus/", 1)[1] if "/hitl_bus/" in short else short
        short = short.split("/lib/python3", 1)[-1].split("/", 1)[-1]
        return f"{func} ({short}:{line})"

    def table(order: int, title: str) -> list[str]:
        lines = [title, f"{'cum µs/run':>11} {'own µs/run':>11} {'calls/run':>9}  function"]
        ranked = sorted(entries.items(), key=lambda kv: -kv[1][order])[:top]
        for key, (_, calls, own, cum, _) in ranked:
            each = f"{cum * 1e6 / runs:11.1f} {own * 1e6 / runs:11.1f} {calls / runs:9.2f}"
            lines.append(f"{each}  {name(key)}")
        return lines

    areas: collections.Counter[str] = collections.Counter()
    for (file, _, func), (_, _, own, _, callers) in entries.items():
        area = profile_area(file, func)
        if area != "~":
            areas[area] += own
            continue
        # A built-in (isinstance, len, str.encode, ...): its own time goes to the areas of
        # its callers, by the time it spent for each of them.
        by_caller = {c: v[2] for c, v in callers.items()} or {("~", 0, func): own}
        spent = sum(by_caller.values()) or 1.0
        for (c_file, _, c_func), t in by_caller.items():
            c_area = profile_area(c_file, c_func)
            areas["built-ins called from elsewhere" if c_area == "~" else c_area] += own * t / spent
    lines = [
        f"Workers under cProfile over the burst: {len(paths)} profile(s), {runs:,} runs, "
        f"{own_total * 1e6 / runs:,.0f} µs per run of the event loop thread, clock {timer} "
        + (
            "(thread CPU time"
            if timer == "cpu"
            else "(wall: socket writes include waiting for a CPU"
        )
        + "; cProfile's own overhead included: compare areas and functions with each "
        "other, not with the CPU row).",
        "",
        "Own time by area (µs per run, share; a built-in's time is charged to its callers):",
    ]
    for area, own in areas.most_common():
        lines.append(f"{own * 1e6 / runs:11.1f}  {own / own_total:6.1%}  {area}")
    lines += ["", *table(3, "Top by cumulative time:"), ""]
    lines += table(2, "Top by own time:")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# MONITOR: the commands clients send, apart from those their scripts run.
# ---------------------------------------------------------------------------------------

_MONITOR_LINE = re.compile(r"^(\d+\.\d+) \[\d+ (\S*)\] (.*)$")
_MONITOR_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_BLOCKING_READS = {"xread", "xreadgroup", "blmove", "brpoplpush", "blpop", "brpop", "bzpopmin"}
_SCRIPT_CALLS = {"evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro"}


@dataclass
class Sent:
    """One command as MONITOR showed it."""

    t: float  #: Redis's clock, s
    sender: str  #: "client", "worker", "parent" (this process: excluded)
    conn: str  #: the connection's address
    args: list[str]
    lua: bool = False  #: run by a script (MONITOR's ``[0 lua]``), attributed to its caller

    @property
    def name(self) -> str:
        return self.args[0].lower() if self.args else "?"

    def label(self, scripts: dict[str, str]) -> str:
        """The command's name; a script call as ``evalsha:<script>``."""
        if self.name in ("evalsha", "evalsha_ro") and len(self.args) > 1:
            return f"evalsha:{scripts.get(self.args[1], self.args[1][:7])}"
        return self.name

    def key(self) -> str:
        """The first key the command names ('' for none)."""
        args, name = self.args, self.name
        if name in _SCRIPT_CALLS:
            return args[3] if len(args) > 3 and args[2].isdigit() and int(args[2]) > 0 else ""
        if name in ("xread", "xreadgroup"):
            upper = [a.upper() for a in args]
            return args[upper.index("STREAMS") + 1] if "STREAMS" in upper else ""
        if name in ("multi", "exec", "discard", "ping", "echo", "info", "client", "hello"):
            return ""
        if name in ("script", "config", "command", "object", "xinfo", "xgroup"):
            return " ".join(args[1:3])
        return args[1] if len(args) > 1 else ""


def script_names() -> dict[str, str]:
    """SHA1 → name of hitl_bus's run-store scripts (``engine/store.py`` ``SCRIPTS``) and of
    the other module-level Lua sources of the package, for the ledger's EVALSHA lines."""
    import hashlib
    import importlib

    names: dict[str, str] = {}
    for module_name in (
        "hitl_bus.engine.store",
        "hitl_bus.inputs.sending",
        "hitl_bus.inputs.values",
        "hitl_bus.inputs.inbox",
        "hitl_bus.inputs.actions",
        "hitl_bus.notify.ledger",
    ):
        try:
            module = importlib.import_module(module_name)
        except Exception:  # noqa: BLE001 - the engine is being changed: names are a nicety
            continue
        sources = dict(getattr(module, "SCRIPTS", {}))
        for attr, value in vars(module).items():
            lua = isinstance(value, str) and "redis.call" in value
            if lua and attr.startswith("_") and attr.isupper():
                sources[attr.strip("_").lower()] = value
        for name, source in sources.items():
            names[hashlib.sha1(source.encode()).hexdigest()] = name
    return names


class Monitor:
    """MONITOR on a connection of its own, read by a thread until a marker ``ECHO``."""

    def __init__(self, url: str) -> None:
        import redis

        client: Any = redis.Redis.from_url(url, protocol=2, client_name=ADMIN_CLIENT_NAME)
        self.client = client
        self.monitor: Any = client.monitor()
        self.monitor.__enter__()  # MONITOR, checked OK: every command from now on is seen
        self.marker = f"bench-monitor-end-{uuid.uuid4().hex}"
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        connection = self.monitor.connection
        while True:
            line = connection.read_response()
            text = line.decode(errors="replace") if isinstance(line, bytes) else str(line)
            if self.marker in text:
                return
            self.lines.append(text)

    def stop(self, admin: Any, senders: dict[int, str]) -> list[Sent]:
        """Stop reading; the commands seen, each attributed by its connection's local port
        (``senders``: port → who; any other port is the client's, the parent's own
        connections excluded by the caller)."""
        admin.echo(self.marker)
        self.thread.join(60)
        with contextlib.suppress(Exception):
            self.monitor.__exit__(None, None, None)
        self.client.close()
        sent: list[Sent] = []
        caller: Sent | None = None
        for text in self.lines:
            match = _MONITOR_LINE.match(text)
            if match is None:
                continue
            t, addr, rest = match.groups()
            args = _MONITOR_ARG.findall(rest)
            if addr == "lua":
                sender, conn = (caller.sender, caller.conn) if caller else ("client", "?")
                sent.append(Sent(float(t), sender, conn, args, lua=True))
                continue
            port = int(addr.rsplit(":", 1)[1]) if ":" in addr else -1
            entry = Sent(float(t), senders.get(port, "client"), addr, args)
            sent.append(entry)
            if entry.name in _SCRIPT_CALLS:
                caller = entry
        return sent


@dataclass
class Monitored:
    """The commands of ``n`` runs under MONITOR, the parent's own excluded."""

    n: int
    sent: list[Sent]
    scripts: dict[str, str]
    go: float  #: when the parent let the client start (Redis's clock)

    def per_run(self, lua: bool, sender: str | None = None) -> float:
        return sum(1 for s in self.sent if s.lua == lua and sender in (None, s.sender)) / self.n

    def by_name(self, lua: bool) -> collections.Counter[str]:
        return collections.Counter(s.label(self.scripts) for s in self.sent if s.lua == lua)

    def top(self, lua: bool, count: int = 16) -> str:
        return ", ".join(
            f"{name} {calls / self.n:.1f}" for name, calls in self.by_name(lua).most_common(count)
        )


def run_monitored(
    ctx: Any,
    url: str,
    kind: str,
    consumers: Consumers,
    args: argparse.Namespace,
    admin: Any,
    total: int,
    redis_port: int,
    idle: float = 0.0,
) -> Monitored:
    """``total`` more runs started back to back under MONITOR (out of any timed part: it
    slows Redis), after the client's warm-up; until the last one finished, and 0.3 s more
    for what follows its final state (the worker's XACK). ``idle`` s under MONITOR before
    the start, so that the blocking read waiting for the first run is seen too (a blocked
    read shows when it is sent; the workers' reads time out every second)."""
    from hitl_bus import keys

    key = f"bench:workers:monitor:{uuid.uuid4().hex}"
    stream = keys.EVENTS if kind == "hitl" else consumers.done_stream
    go = ctx.Event()
    client = _client(
        ctx, url, kind, consumers, args, mode="burst", total=total, key=key, lanes=args.lanes, go=go
    )
    client.get("warm", timeout=120)
    time.sleep(0.1)  # the warm-up runs end
    position = _stream_end(admin, stream)
    worker_ports = {p for pid in consumers.pids for p in common.redis_local_ports(redis_port, pid)}
    monitor = Monitor(url)
    time.sleep(idle)
    go_marker = f"bench-monitor-go-{uuid.uuid4().hex}"
    admin.echo(go_marker)
    go.set()
    result, finals, _ = follow(admin, kind, stream, position, client, consumers)
    time.sleep(0.3)
    worker_ports |= {p for pid in consumers.pids for p in common.redis_local_ports(redis_port, pid)}
    senders = {p: "worker" for p in worker_ports}
    senders.update((p, "parent") for p in common.redis_local_ports(redis_port))
    seen = monitor.stop(admin, senders)
    go_t = next((s.t for s in seen if s.name == "echo" and go_marker in s.args), 0.0)
    sent = [s for s in seen if s.sender != "parent"]
    if kind == "saq":  # nor the done entries the bench's hook adds, as in run_burst
        sent = [s for s in sent if s.key() != consumers.done_stream or s.lua]
    if not idle:  # only what the runs cost: nothing sent before the start
        sent = [s for s in sent if s.t >= go_t]
    client.join()
    if args.monitor_log is not None:
        with open(args.monitor_log, "a") as fh:
            fh.write(f"# {kind}, {total} run(s), {len(consumers.pids)} worker(s)\n")
            for s in sent:
                where = "lua" if s.lua else s.conn
                fh.write(f"{s.t:.6f}\t{s.sender}\t{where}\t{' '.join(s.args)}\n")
    states = collections.Counter(finals[i][0] for i in result["ids"])
    if len(result["ids"]) != total or (kind == "hitl" and states != {"COMPLETED": total}):
        raise RuntimeError(f"{kind}: monitored runs ended {dict(states)}")
    return Monitored(total, sent, script_names() if kind == "hitl" else {}, go_t)


_IDS = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}(-\d+)?"
)


def _shape(s: Sent, scripts: dict[str, str]) -> tuple[str, str, str]:
    """A command with the run's (job's, list's) ids taken out of its key: what recurs."""
    return s.sender, s.label(scripts), _IDS.sub("*", s.key())


def ledger(kind: str, one: Monitored, bulk: Monitored | None = None) -> str:
    """One run's commands in order, as Markdown: who sent each, the key, the script's own
    commands folded into its line, the µs since the previous command on the same
    connection (tens of µs: the same pipeline or MULTI/EXEC; more: another round trip),
    and how often the same command (same sender, name, key but for ids) came per run in
    ``bulk``, the many-run pass: about 1 per run, or periodic upkeep that fell in."""
    who = {
        "hitl": {"client": "run_deployment", "worker": "worker"},
        "raw": {"client": "client (XADD)", "worker": "consumer"},
        "saq": {"client": "client (enqueue)", "worker": "saq worker"},
    }[kind]
    often: collections.Counter[tuple[str, str, str]] = collections.Counter()
    if bulk is not None:
        often.update(_shape(s, bulk.scripts) for s in bulk.sent if not s.lua)
    per_run = f"per run over {bulk.n}" if bulk is not None else "per run"
    rows = [
        f"| # | µs | sender | command | key | script's own commands | {per_run} |",
        "|---|---:|---|---|---|---|---:|",
    ]
    waiting = {}  # each worker connection's last read before the start: it gets the run
    for i, s in enumerate(one.sent):
        if s.t < one.go and s.sender == "worker" and s.name in _BLOCKING_READS:
            waiting[s.conn] = i
    shown = [i for i, s in enumerate(one.sent) if s.t >= one.go or waiting.get(s.conn) == i]
    last: dict[str, float] = {}
    number = 0
    periodic = 0
    for i in shown:
        s = one.sent[i]
        if s.lua:
            continue
        inner = []
        for t in one.sent[i + 1 :]:
            if not t.lua:
                break
            inner.append(t.name.upper())
        folded = collections.Counter(inner)
        inside = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in folded.items())
        if s.t < one.go:
            gap = "before"
        else:
            gap = f"+{(s.t - last[s.conn]) * 1e6:,.0f}" if s.conn in last else ""
        last[s.conn] = s.t
        number += 1
        label = s.label(one.scripts)
        command = label.upper() if ":" not in label else "EVALSHA " + label.split(":", 1)[1]
        freq = ""
        if bulk is not None:
            each = often[_shape(s, one.scripts)] / bulk.n
            freq = f"{each:.2f}"
            if each < 0.5 and s.t >= one.go:
                periodic += 1
                freq += " (upkeep)"
        rows.append(
            f"| {number} | {gap} | {who.get(s.sender, s.sender)} | {command} | "
            f"`{s.key()}` | {inside} | {freq} |"
        )
    client_n = sum(1 for s in one.sent if not s.lua and s.t >= one.go)
    lua_n = sum(1 for s in one.sent if s.lua and s.t >= one.go)
    upkeep = f" ({periodic} of them periodic upkeep)" if periodic else ""
    head = (
        f"### {kind}: one run, {client_n} commands sent by clients{upkeep}, {lua_n} run by "
        "scripts\n\n"
        "µs: since the previous command on the same connection (Redis's clock, slowed by "
        "MONITOR; tens of µs: the same pipeline or MULTI/EXEC; hundreds or more: another "
        "round trip). 'before': the blocking read that gets the run, sent before the call "
        "and not counted; the worker's next read (re-armed as it takes the run) is counted "
        "instead. A read blocked since before MONITOR started (saq's BLMOVE, no timeout) "
        "is not seen. Per run: how often the same command (sender, name, key but for ids) "
        "came per run in the many-run MONITOR pass; under 0.5: upkeep that fell in the "
        "window.\n"
    )
    return head + "\n" + "\n".join(rows) + "\n"


def monitor_rows(res: Results, label: str, monitored: dict[str, Monitored]) -> None:
    """The MONITOR rows: commands per run as clients send them (a script call is one), by
    name, and the commands scripts run, for raw, hitl_bus and saq alike."""
    raw, hitl, saq = monitored["raw"], monitored["hitl"], monitored.get("saq")
    m = f"{label}, {hitl.n} more runs under MONITOR (after the burst)"

    def sent(side: Monitored) -> str:
        return (
            f"{side.per_run(False):.1f} ({side.per_run(False, 'client'):.1f} / "
            f"{side.per_run(False, 'worker'):.1f})"
        )

    def scripts(side: Monitored) -> str:
        inside, total = side.per_run(True), side.per_run(True) + side.per_run(False)
        top = f" ({side.top(True, 6)})" if inside else ""
        return f"{inside:.1f}{top}; {total:.1f}"

    r, h = raw.per_run(False), hitl.per_run(False)
    ratio = f"{h / r:.2f}x"
    if saq is not None:
        ratio += f"; saq {sent(saq)}: {h / saq.per_run(False):.2f}x of saq"
    res.add(
        f"{m}: Redis commands per run sent by clients (script = 1), client process / workers",
        sent(raw),
        sent(hitl),
        ratio,
    )
    res.add(
        f"{m}: top client-sent commands per run (ratio column: saq)",
        raw.top(False),
        hitl.top(False),
        f"saq: {saq.top(False)}" if saq is not None else "",
    )
    res.add(
        f"{m}: commands run by scripts per run (MONITOR's `[0 lua]`), top; "
        "client-sent + script-run (the INFO commandstats basis)",
        scripts(raw),
        scripts(hitl),
        f"saq: {scripts(saq)}" if saq is not None else "",
    )


def scenario(
    ctx: Any, url: str, n: int, args: argparse.Namespace, res: Results, redis_pid: int
) -> None:
    import redis

    admin = redis.Redis.from_url(url, protocol=2, client_name=ADMIN_CLIENT_NAME)
    label = f"{n} worker{'s' if n > 1 else ''}"
    seq: dict[str, dict[str, Any]] = {}
    burst: dict[str, dict[str, Any]] = {}
    monitored: dict[str, Monitored] = {}
    ledgers: dict[str, str] = {}
    redis_port = urllib.parse.urlsplit(url).port or 6379
    monitor = "monitor" in args.only and args.monitor > 0
    kinds = ["raw", "hitl"]
    if args.saq and ("seq" in args.only or "burst" in args.only or monitor or args.ledger):
        kinds.append("saq")
    for kind in kinds:
        t = time.perf_counter()
        consumers = Consumers(ctx, kind, n, args, url)
        try:
            consumers.wait_ready(admin)
            print(f"  {label}, {kind}: ready in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            if "seq" in args.only:
                seq[kind] = run_sequential(ctx, url, kind, consumers, args, admin)
            if "burst" in args.only:
                burst[kind] = run_burst(ctx, url, kind, consumers, args, admin, redis_pid)
            if monitor:
                monitored[kind] = run_monitored(
                    ctx, url, kind, consumers, args, admin, args.monitor, redis_port
                )
            if args.ledger:
                one = run_monitored(ctx, url, kind, consumers, args, admin, 1, redis_port, 1.2)
                ledgers[kind] = ledger(kind, one, monitored.get(kind))
        finally:
            consumers.stop()
        print(f"  {label}, {kind}: done in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    # More bursts, hitl_bus and saq taking turns, fresh workers each time: this machine's
    # figures drift between runs, and the target is a ratio of the two.
    rounds: dict[str, list[dict[str, Any]]] = {k: [v] for k, v in burst.items()}
    if "saq" in burst and args.burst_rounds > 1:
        quiet = argparse.Namespace(**{**vars(args), "profile": None})
        for _ in range(args.burst_rounds - 1):
            for kind in ("hitl", "saq"):
                consumers = Consumers(ctx, kind, n, quiet, url)
                try:
                    consumers.wait_ready(admin)
                    rounds[kind].append(
                        run_burst(ctx, url, kind, consumers, quiet, admin, redis_pid)
                    )
                finally:
                    consumers.stop()
        print(f"  {label}: {args.burst_rounds} burst rounds done", file=sys.stderr)
    admin.close()
    if args.profile and burst.get("hitl", {}).get("profiled"):
        summary = profile_summary(
            sorted(args.profile.resolve().glob(f"worker{n}-*-burst.prof")),
            burst["hitl"]["n"],
            args.profile_timer,
        )
        out_file = args.profile.resolve() / f"workers{n}-burst.txt"
        out_file.write_text(summary)
        print(summary, file=sys.stderr)
        print(f"  worker profile summary: {out_file}", file=sys.stderr)
    if ledgers:
        with open(args.ledger, "a") as fh:
            fh.write(f"## {label}: one run's commands (MONITOR)\n\n")
            fh.write("\n".join(ledgers[k] for k in ("hitl", "saq", "raw") if k in ledgers))
        print(f"  ledger of one run: {args.ledger}", file=sys.stderr)

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
        if hitl["steps"]:
            steps = hitl["steps"]
            p50s = [percentile([step[i] for step in steps], 50) for i in range(4)]
            res.add(
                f"{label}, sequential: hitl_bus's line by step, p50 of each (runs noted): "
                "call start → the worker's read returns / → its begin sent / → begun "
                "(the run read back) / → first line",
                "",
                " / ".join(ms(p) for p in p50s),
                f"{len(steps):,} runs",
            )
        if "saq" in seq:
            r, q = percentile(raw["latencies"], 50), percentile(seq["saq"]["latencies"], 50)
            h = percentile(hitl["latencies"], 50)
            res.add(
                f"{label}, sequential: queue→first line p50, saq's job (hitl_bus column: "
                "saq; ratio: saq against raw, hitl_bus against saq)",
                ms(r),
                ms(q),
                f"saq {q / r:.2f}x raw; hitl_bus {h / q:.2f}x saq",
            )
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
            if len(rounds["saq"]) > 1:
                pairs = [
                    (h["n"] / h["all_done_s"], q["n"] / q["all_done_s"])
                    for h, q in zip(rounds["hitl"], rounds["saq"], strict=True)
                ]
                ratios = sorted(h / q for h, q in pairs)
                middle = ratios[len(ratios) // 2]
                res.add(
                    f"{b}: completed runs/s against saq's, {len(pairs)} rounds taking turns "
                    "(median; raw column: saq's median)",
                    f"{statistics.median(q for _, q in pairs):,.0f}",
                    f"{statistics.median(h for h, _ in pairs):,.0f}",
                    f"{middle:.2f}x of saq (rounds {', '.join(f'{r:.2f}x' for r in ratios)})"
                    + ("" if middle >= 1.5 else ": missed"),
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
    if monitored:
        monitor_rows(res, label, monitored)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == PROFILED_WORKER:
        profiled_worker(sys.argv[2], sys.argv[3], sys.argv[4:])
        return 0
    if len(sys.argv) > 2 and sys.argv[1] == SPLIT_WORKER:
        split_worker(sys.argv[2], sys.argv[3:])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (about 1.5 minutes)")
    parser.add_argument("--workers", default="1,2", help="worker process counts (default 1,2)")
    parser.add_argument("--concurrency", type=int, default=4, help="runs at once per worker")
    parser.add_argument("--seq", type=int, help="sequential runs measured")
    parser.add_argument("--burst", type=int, help="runs in the burst")
    parser.add_argument("--warmup", type=int, help="sequential warm-up runs, not counted")
    parser.add_argument("--gap", type=float, default=2.0, help="ms between sequential runs")
    parser.add_argument("--lanes", type=int, default=1, help="concurrent calls in the burst")
    parser.add_argument(
        "--burst-rounds",
        type=int,
        help="bursts of hitl_bus and saq, taking turns with fresh workers, for the median "
        "ratio (default 3; 1 with --quick)",
    )
    parser.add_argument(
        "--only",
        default="seq,burst,monitor",
        help="comma-separated subset of: seq,burst,monitor",
    )
    parser.add_argument(
        "--monitor",
        type=int,
        default=200,
        help="runs started after the burst under MONITOR, for the commands clients send "
        "(a script call = 1) apart from those scripts run (default 200; 0: none)",
    )
    parser.add_argument(
        "--ledger",
        type=Path,
        help="append to this file (Markdown) each kind's commands for one run, in order, "
        "with sender and key (MONITOR)",
    )
    parser.add_argument(
        "--no-saq", dest="saq", action="store_false", help="skip the saq reference line"
    )
    common.add_output_args(
        parser,
        "exit 1 when a run went wrong",
        "cProfile into DIR: the hitl_bus workers over the burst only (and a summary per "
        "run, workers<N>-burst.txt), the hitl_bus client over its life",
    )
    parser.add_argument(
        "--monitor-log",
        type=Path,
        help="append every command the MONITOR passes saw to this file (time, sender, "
        "connection or lua, arguments; tab-separated), for a closer look",
    )
    parser.add_argument(
        "--profile-timer",
        choices=("wall", "cpu"),
        default="wall",
        help="the workers' cProfile clock: wall (cProfile's own; counts waiting for a CPU, "
        "mostly in socket writes) or cpu (thread CPU time; a system call per reading, "
        "which inflates functions called very often)",
    )
    args = parser.parse_args()
    args.seq = args.seq or (200 if args.quick else 1000)
    args.burst = args.burst or (500 if args.quick else 2000)
    args.burst_rounds = args.burst_rounds or (1 if args.quick else 3)
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
        "(CLOCK_MONOTONIC); saq's: `Queue.enqueue` call start → its job's first line.",
        f"Burst: {args.burst:,} runs started back to back ({args.lanes} awaited call(s) at "
        "a time) after the warm-up; 'all completed' is when the parent, following the "
        "global event stream (raw: the done stream), saw the last Completed. CPU over the "
        "burst (client: its own process time; workers and redis-server: utime + stime from "
        "/proc) divided by its runs. Redis commands: `INFO commandstats` over the burst, "
        "which also counts the commands scripts call (HGET, HSET, XADD in EVALSHA), less "
        "the parent's XREADs.",
        "saq: a real saq worker per worker process on the same Redis "
        f"(`saq.Worker`, concurrency {args.concurrency}), its job RPUSHing the time as the "
        "raw handler does; the client enqueues with `Queue.enqueue` (one at a time in the "
        "sequential runs, back to back in the burst); a job "
        "counts as completed when saq's `after_process` hook (after saq recorded it "
        "complete) XADDs it to a done stream, which the parent follows.",
        *[
            f"MONITOR rows: {args.monitor} more runs after the burst (out of the timed part: "
            "MONITOR slows Redis), started the same way, under `MONITOR` from after the client's "
            "warm-up until 0.3 s after the last final state. Commands sent by clients count a "
            "script call once (and MULTI, EXEC and each command of a pipeline once each); "
            "commands MONITOR shows as `[0 lua]` are those scripts ran. Each is attributed by "
            "its connection's local port to the client process or a worker; the parent's own "
            "and saq's done entries are left out. Idle upkeep in that window is included."
        ][: 1 if "monitor" in args.only and args.monitor else 0],
        f"{os.cpu_count()} cores shared by redis-server, the client, the worker processes "
        "and other work on the machine: with 2 workers there are more busy processes than "
        "cores.",
    ]
    return bench.report(res, "bench_workers.py", "workers, ", notes, "check(s) failed")


if __name__ == "__main__":
    sys.exit(main())
