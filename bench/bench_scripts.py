"""Benchmark the Redis side of each step: the µs Redis spends in each script, and why.

Run from the repo root::

    .venv/bin/python -m bench.bench_scripts            # about 30 s
    .venv/bin/python -m bench.bench_scripts --quick --no-write

Every latency figure of the other benches pays, on the Redis side, one script per step
(a run's create, begin and final state; a pause, a resume; a send) where raw redis-py
pays one XADD. This measures what Redis itself spends in each, as Redis times a command
(``SLOWLOG`` durations: the command's execution, without the socket), in one process:

1. after an idle gap (``--gap`` ms, 2 as in the latency benches), so Redis runs each
   step cold, as it does on the latency paths: ``run_deployment`` → an in-process worker
   begins and completes the run; a flow pauses and is resumed; an input is sent;
2. back to back (hot), the same steps with no gap;
3. the references, each after the same gap: raw XADD, an empty script (``return 1``)
   without keys and with the 13 keys and 20 arguments a run script takes, and a script
   making one call.

For each script: its p50, the commands it ran inside (``SLOWLOG`` logs them too, from the
script's client, just before the script), and their own share. What a script costs
beyond its calls is the Lua around them: the prelude's definitions, the KEYS and ARGV
tables, JSON decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench import common
from bench.common import Bench, Results

#: Redis names the client of a command a script ran like this in ``SLOWLOG``.
SCRIPT_CLIENT = b"?:0"
#: µs: a pass logging commands this slow or slower logs every script and few of the
#: commands inside them, whose logging would add to the scripts' durations.
SCRIPTS_ONLY = 40


@dataclass
class Script:
    """One script's calls, as logged: its own durations and the commands it ran."""

    durations: list[int] = field(default_factory=list)
    inner: collections.Counter[str] = field(default_factory=collections.Counter)
    inner_us: collections.Counter[str] = field(default_factory=collections.Counter)

    def p50(self) -> float:
        return statistics.median(self.durations) if self.durations else float("nan")

    def calls(self) -> str:
        n = len(self.durations) or 1
        total = sum(self.inner.values()) / n
        top = ", ".join(f"{name} {count / n:.1f}" for name, count in self.inner.most_common())
        return f"{total:.1f} calls ({top})"

    def inner_p50_share(self) -> float:
        n = len(self.durations) or 1
        return sum(self.inner_us.values()) / n


def script_names() -> dict[str, str]:
    """SHA-1 of each script hitl_bus runs → its name."""
    from hitl_bus.engine.run_scripts import SCRIPTS
    from hitl_bus.inputs import sending

    sources = {**SCRIPTS, "send": sending._SEND, "send_many": sending._SEND_MANY}
    return {hashlib.sha1(src.encode()).hexdigest(): name for name, src in sources.items()}


class Slowlog:
    """Every command Redis runs, with its duration, while logging is on."""

    def __init__(self, admin: Any) -> None:
        self.admin = admin

    def start(self, slower_than: int = 0) -> None:
        """Log every command taking ``slower_than`` µs or more (0: every command)."""
        self.admin.config_set("slowlog-max-len", 1_000_000)
        self.admin.config_set("slowlog-log-slower-than", slower_than)
        self.admin.slowlog_reset()

    def stop(self, names: dict[str, str]) -> dict[str, Script]:
        """What was logged since ``start``, by script name (plain commands under theirs)."""
        entries = list(reversed(self.admin.slowlog_get(1_000_000)))
        self.admin.config_set("slowlog-log-slower-than", 10_000)
        found: dict[str, Script] = collections.defaultdict(Script)
        inner: list[tuple[str, int]] = []
        for entry in entries:
            words = entry["command"].split()
            command = words[0].decode().upper()
            if entry["client_address"] == SCRIPT_CLIENT:
                inner.append((command, entry["duration"]))
                continue
            name = command
            if command in ("EVALSHA", "EVAL") and len(words) > 1:
                name = names.get(words[1].decode(), "other script")
            script = found[name]
            script.durations.append(entry["duration"])
            for called, us in inner:
                script.inner[called] += 1
                script.inner_us[called] += us
            inner = []
        return found


async def run_steps(count: int, gap: float, steps: Callable[[int], Awaitable[None]]) -> None:
    for i in range(count):
        if gap:
            await asyncio.sleep(gap)
        await steps(i)


async def runs_on_a_worker(count: int, gap: float) -> None:
    """``run_deployment`` → an in-process worker begins the run and completes it."""
    from hitl_bus import flow
    from hitl_bus.deployments.registry import arun_deployment
    from hitl_bus.deployments.worker import Worker

    done: asyncio.Queue[None] = asyncio.Queue()

    @flow(name="bench-scripts")
    async def step() -> None:
        done.put_nowait(None)

    worker = Worker([step.to_deployment("bench")], concurrency=1)
    serving = asyncio.create_task(worker.run())
    await asyncio.sleep(0.3)

    async def one(_: int) -> None:
        await arun_deployment("bench-scripts/bench", timeout=0)
        await done.get()
        await asyncio.sleep(0.001)  # its final state, written after the body returned

    await run_steps(count, gap, one)
    worker.stop()
    await serving


async def pauses_and_resumes(count: int, gap: float) -> None:
    """A flow pauses for an int again and again; each pause is resumed after ``gap``."""
    from hitl_bus import flow, start_flow_run
    from hitl_bus.engine.pausing import apause_flow_run
    from hitl_bus.engine.resuming import aresume_flow_run
    from hitl_bus.engine.runs import read_flow_run

    paused: asyncio.Queue[None] = asyncio.Queue()
    woke: asyncio.Queue[None] = asyncio.Queue()

    @flow(name="bench-scripts-pause")
    async def pauser(total: int) -> None:
        for _ in range(total):
            paused.put_nowait(None)
            await apause_flow_run(wait_for_input=int)
            woke.put_nowait(None)

    run = await start_flow_run(pauser, count)

    async def one(i: int) -> None:
        await paused.get()
        while not (await read_flow_run(run.id)).state.is_paused():  # its pause script ran
            await asyncio.sleep(0.0005)
        if gap:
            await asyncio.sleep(gap)
        await aresume_flow_run(run.id, {"value": i})
        await woke.get()

    await run_steps(count, 0, one)


async def sends(count: int, gap: float) -> None:
    """``send_input`` of an int to a run, one after another."""
    from hitl_bus.engine.runs import create_flow_run
    from hitl_bus.inputs.messaging import asend_input

    run = await create_flow_run("bench-scripts-send", {})

    async def one(i: int) -> None:
        await asend_input(i, flow_run_id=run.id)

    await run_steps(count, gap, one)


def references(admin: Any, count: int, gap: float) -> None:
    """Raw XADD and empty scripts, each after the gap, as a run script is called."""
    keys = [f"hitl:{{bench-scripts}}:key{i}" for i in range(13)]
    args = ["a" * 36] * 20
    empty = admin.script_load("return 1")
    one_call = admin.script_load("return redis.call('EXISTS', KEYS[1])")
    for _ in range(count):
        time.sleep(gap)
        admin.xadd("bench-scripts:raw", {"run_id": "0" * 36})
        time.sleep(gap)
        admin.evalsha(empty, 0)
        time.sleep(gap)
        admin.evalsha(empty, len(keys), *keys, *args)
        time.sleep(gap)
        admin.evalsha(one_call, len(keys), *keys, *args)


def measure(
    admin: Any, args: argparse.Namespace, gap: float, slower_than: int = 0
) -> dict[str, Script]:
    """The scripts of every scenario, each ``args.count`` times, ``gap`` s idle before each,
    as Redis logged them (commands faster than ``slower_than`` µs left out)."""

    async def scenarios() -> None:
        await runs_on_a_worker(args.count, gap)
        await pauses_and_resumes(args.count, gap)
        await sends(args.count, gap)
        await common.close_hitl()

    log = Slowlog(admin)
    log.start(slower_than)
    asyncio.run(scenarios())
    found = log.stop(script_names())
    return found


def reference_costs(admin: Any, args: argparse.Namespace) -> dict[str, float]:
    log = Slowlog(admin)
    log.start()
    references(admin, args.count, args.gap / 1000)
    entries = list(reversed(admin.slowlog_get(1_000_000)))
    admin.config_set("slowlog-log-slower-than", 10_000)
    del log
    scripts = [e for e in entries if e["command"].startswith(b"EVALSHA")]
    xadds = [e["duration"] for e in entries if e["command"].startswith(b"XADD")]
    # The empty scripts alternate: no keys; 13 keys and 20 arguments; then one call.
    empty = [e["duration"] for e in scripts if e["command"].split()[2] == b"0"]
    rest = [e for e in scripts if e["command"].split()[2] != b"0"]
    keyed = [e["duration"] for i, e in enumerate(rest) if i % 2 == 0]
    one_call = [e["duration"] for i, e in enumerate(rest) if i % 2 == 1]
    return {
        "xadd": statistics.median(xadds),
        "empty": statistics.median(empty),
        "keyed": statistics.median(keyed),
        "one_call": statistics.median(one_call),
    }


#: The scripts reported, in the order of a run's life, with the call that runs each.
REPORTED = [
    ("create", "run_deployment"),
    ("begin", "a worker begins the run"),
    ("set_state", "its final state (Completed)"),
    ("pause", "pause_flow_run"),
    ("resume", "resume_flow_run"),
    ("send", "send_input"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500, help="steps per scenario")
    parser.add_argument("--gap", type=float, default=2.0, help="idle ms before each step")
    parser.add_argument("--quick", action="store_true", help="100 steps per scenario")
    common.add_output_args(parser, "exit 1 never (no targets here)", "unused")
    args = parser.parse_args()
    if args.quick:
        args.count = 100
    bench = Bench(args)
    res = Results()
    with bench.redis() as server:
        import redis

        admin = redis.Redis.from_url(server.url)
        refs = reference_costs(admin, args)
        # Logging a command costs Redis a little, inside the script for each command it
        # runs: the scripts' own durations come from passes that log only the slow ones.
        inside = measure(admin, args, args.gap / 1000)
        cold = measure(admin, args, args.gap / 1000, SCRIPTS_ONLY)
        hot = measure(admin, args, 0, SCRIPTS_ONLY)
    xadd = refs["xadd"]
    res.add(
        f"raw XADD, Redis µs p50 after {args.gap:g} ms idle",
        f"{xadd:.0f}",
        "",
    )
    res.add(
        "empty script (`return 1`): no keys; 13 keys and 20 arguments; one EXISTS call",
        "",
        f"{refs['empty']:.0f} / {refs['keyed']:.0f} / {refs['one_call']:.0f}",
        f"{refs['empty'] / xadd:.1f}x / {refs['keyed'] / xadd:.1f}x / "
        f"{refs['one_call'] / xadd:.1f}x XADD",
    )
    for name, call in REPORTED:
        script = cold.get(name, Script())
        warm = hot.get(name, Script())
        calls = inside.get(name, Script())
        res.add(
            f"`{name}` ({call}): Redis µs p50 after {args.gap:g} ms idle / back to back; "
            "calls inside, per script; µs in them (mean)",
            f"XADD {xadd:.0f}",
            f"{script.p50():.0f} / {warm.p50():.0f}; {calls.calls()}; "
            f"{calls.inner_p50_share():.0f}",
            f"{script.p50() / xadd:.1f}x XADD",
        )
    res.notes.append(
        "Redis's own time per command (`SLOWLOG` durations), in one "
        "process: an in-process worker serving one deployment (concurrency 1), one flow "
        f"pausing {args.count} times, {args.count} sends to one run. 'After idle': "
        f"{args.gap:g} ms of sleep before each step, as the latency benches leave between "
        "messages; the begin and the final state follow the create at once, as on a "
        "worker. The calls inside a script are the commands `SLOWLOG` logs from the "
        "script's client just before it, in a pass logging every command; their µs are "
        "the commands' own, the rest of a script's time is its Lua (the prelude's "
        f"definitions, KEYS and ARGV, JSON). The scripts' durations come from passes "
        f"logging only commands of {SCRIPTS_ONLY} µs or more, since logging a command "
        "inside a script adds to the script's duration."
    )
    return bench.report(res, __file__, title="Redis time per script, ", missed_as="targets")


if __name__ == "__main__":
    sys.exit(main())
