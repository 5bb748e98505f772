"""Fault trials at scale: paused runs whose worker is killed while people answer them.

Run from the repo root::

    .venv/bin/python -m bench.fault_trials               # 100 runs, about a minute
    .venv/bin/python -m bench.fault_trials --runs 20     # quicker

On a throwaway redis-server: worker A (``tests/worker_flows.py``, heartbeat 0.2 s, dead
after 1 s) takes ``--runs`` runs of ``answers/default``, each pausing for an ``int``;
worker B is started; A is killed with SIGKILL; each run is then resumed at a random
moment within ``--spread`` seconds of the kill, so some resumes land before anyone can
know A is dead and some after. The trial counts how the runs end and whether each body
completed exactly once with the answer it was given. It prints a table and, unless
``--no-write``, adds it to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import signal
import subprocess
import sys
import time

from bench.common import ROOT, Bench, Results, add_output_args


def start_worker(url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HITL_BUS_REDIS_URL": url,
        "HITL_BUS_LOG_TO_STDERR": "0",
        "HITL_BUS_WORKER_HEARTBEAT": "0.2",
        "HITL_BUS_WORKER_DEAD_AFTER": "1.0",
    }
    command = [sys.executable, "-m", "hitl_bus.cli", "worker", "tests/worker_flows.py"]
    return subprocess.Popen(
        [*command, "--concurrency", "1000"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )


async def trial(url: str, runs: int, spread: float) -> dict[str, object]:
    from hitl_bus import get_client, resume_flow_run, run_deployment
    from hitl_bus.bus import get_bus

    bus = get_bus()
    doomed = start_worker(url)
    while not await bus.client.hexists("hitl:deployments", "answers/default"):
        await asyncio.sleep(0.05)
    ids = [
        str((await run_deployment("answers/default", {"tag": "trial"}, timeout=0)).id)
        for _ in range(runs)
    ]
    client = get_client()
    for run_id in ids:
        while not (await client.read_flow_run(run_id)).state.is_paused():
            await asyncio.sleep(0.02)
    survivor = start_worker(url)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    killed_at = time.monotonic()
    offsets = {run_id: random.uniform(0, spread) for run_id in ids}
    before_dead: set[str] = set()

    async def answer(i: int, run_id: str) -> None:
        await asyncio.sleep(offsets[run_id])
        state = (await client.read_flow_run(run_id)).state
        if not state.is_suspended():
            before_dead.add(run_id)
        await resume_flow_run(run_id, {"value": i})

    await asyncio.gather(*(answer(i, r) for i, r in enumerate(ids)))
    deadline = time.monotonic() + 60
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {r: (await client.read_flow_run(r)).state.type.value for r in ids}
        if all(s in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for s in states.values()):
            break
        await asyncio.sleep(0.2)
    settled = time.monotonic() - killed_at
    answers = collections.defaultdict(list)
    for raw in await bus.client.lrange("test:answer:trial", 0, -1):
        run_id, value = raw.decode().split("=")
        answers[run_id].append(int(value))
    survivor.send_signal(signal.SIGTERM)
    survivor.wait(30)
    exact = sum(1 for i, r in enumerate(ids) if answers.get(r) == [i])
    return {
        "states": collections.Counter(states.values()),
        "exact": exact,
        "twice": sum(1 for v in answers.values() if len(v) > 1),
        "before_dead": len(before_dead),
        "settled": settled,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--spread", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="20 runs")
    add_output_args(parser, "exit 1 when a run did not complete exactly once", "unused here")
    args = parser.parse_args()
    if args.quick:
        args.runs = 20
    bench = Bench(args)
    res = Results()
    with bench.redis() as server:
        found = asyncio.run(trial(server.url, args.runs, args.spread))
    states = found["states"]
    assert isinstance(states, collections.Counter)
    res.add("runs paused on the killed worker", "", f"{args.runs}")
    res.add(
        "resumed before it was declared dead (the rest: after, reading Suspended)",
        "",
        f"{found['before_dead']}",
    )
    res.add("final states", "", ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    res.add(
        "completed exactly once with the answer given",
        "",
        f"{found['exact']} of {args.runs}",
        "all",
        ok=found["exact"] == args.runs and states.get("COMPLETED") == args.runs,
    )
    res.add("bodies that completed twice", "", f"{found['twice']}", "0", ok=found["twice"] == 0)
    res.add("seconds from the kill until every run was final", "", f"{found['settled']:.1f}")
    return bench.report(res, "fault_trials.py", "worker kill -9 with resumes, ")


if __name__ == "__main__":
    sys.exit(main())
