"""Notifiers die: one killed mid-delivery leaves its events to another, and still every pause
is delivered once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitl_bus.bus import close_bus
from hitl_bus.notify import sinks
from tests.faults import kill_clients_every
from tests.helpers import eventually
from tests.notify_support import (
    Receiver,
    blocked_readers,
    group_ready,
    paused_run,
    running_notifier,
    webhook_receiver,
)

pytestmark = pytest.mark.realredis

ROOT = Path(__file__).resolve().parent.parent


def _owner(client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the TCP socket whose local port is ``client_port`` (Linux)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == client_port:
                    inode = fields[9]
    if inode is None:
        return None
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                        return pid
    return None


@contextlib.contextmanager
def notifier_processes(n: int, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    argv = [
        sys.executable, "-m", "hitl_bus.cli", "notify",
        "--claim-after", "1", "--lease", "1", "--attempts", "3", "--backoff", "0.1",
    ]  # fmt: skip
    procs = []
    try:
        for i in range(n):
            with open(tmp_path / f"n{i}.log", "wb") as log:  # the child keeps its own copy
                procs.append(subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stderr=log))
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def test_a_notifier_killed_mid_delivery_leaves_no_pause_untold_or_told_twice(
    bus_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One bucket of events (as on standalone Redis; on Cluster there are 16): both notifiers
    # then read the one group, and each gets some of the pauses, as the kill below needs.
    monkeypatch.setenv("HITL_BUS_INDEX_SHARDS", "1")
    await close_bus()
    reading = await blocked_readers()  # other tests' leftovers, if any
    with webhook_receiver() as receiver, notifier_processes(2, tmp_path) as procs:
        await sinks.add_webhook(receiver.url)
        receiver.hold.clear()  # every delivery waits in the receiver until let go
        await group_ready(readers=reading + 2)
        runs = await asyncio.gather(*(paused_run(["grace"]) for _ in range(6)))
        pids = [p.pid for p in procs]

        async def both_sending() -> bool:
            owners = {_owner(r.client_port, pids) for r in receiver.in_flight()}
            return set(pids) <= owners

        await eventually(both_sending, timeout=20)
        # Held past claim_after: each notifier takes the other's idle entries, and finds
        # their deliveries leased; nothing is sent twice while both live.
        await asyncio.sleep(2.5)
        in_flight = [r.json["run"]["id"] for r in receiver.in_flight()]
        assert sorted(in_flight) == sorted(runs)
        victim = next(
            p for p in procs if any(_owner(r.client_port, [p.pid]) for r in receiver.in_flight())
        )
        victim.send_signal(signal.SIGKILL)
        await asyncio.to_thread(victim.wait, 10)
        receiver.hold.set()

        async def all_told() -> bool:
            told = {r.json["run"]["id"] for r in receiver.answered() if r.answered == 200}
            return told >= set(runs)

        await eventually(all_told, timeout=30)
        await asyncio.sleep(2.5)  # past claim_after and the lease: nothing more comes
        survivor = next(p for p in procs if p is not victim)
        assert survivor.poll() is None, (tmp_path / "n0.log").read_text()
    _assert_each_told_once(receiver, runs)


def _assert_each_told_once(receiver: Receiver, runs: list[str]) -> None:
    answered = [r for r in receiver.requests if r.answered == 200]
    assert sorted(r.json["run"]["id"] for r in answered) == sorted(runs)
    assert any(r.dropped for r in receiver.requests), "the kill landed after the deliveries"
    for run_id in runs:
        ids = {r.headers["webhook-id"] for r in receiver.requests if r.json["run"]["id"] == run_id}
        assert len(ids) == 1  # a delivery tried again keeps its id


async def test_cut_connections_lose_no_pause_and_double_none(bus_url: str) -> None:
    port = int(bus_url.rsplit(":", 1)[1].split("/")[0])
    with webhook_receiver() as receiver:
        await sinks.add_webhook(receiver.url)
        async with running_notifier():
            cutting = asyncio.create_task(kill_clients_every(port, 0.25, 2.5))
            runs = [await paused_run(["grace"]) for _ in range(4)]
            await cutting

            async def all_told() -> bool:
                told = {r.json["run"]["id"] for r in receiver.answered()}
                return told >= set(runs)

            await eventually(all_told, timeout=30)
            await asyncio.sleep(1.5)  # past claim_after: nothing more comes
    told = sorted(r.json["run"]["id"] for r in receiver.requests)
    assert told == sorted(runs)
