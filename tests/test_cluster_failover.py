"""A Cluster master killed mid-chat: its replica takes over and no acknowledged input is lost.

Three masters with a replica each (``cluster-node-timeout`` 1 s), started for this module.
With ``HITL_BUS_MIN_REPLICAS=1`` a send returns only once a replica has it, so when the
master of the chat's slot is killed -9 the replica that takes over holds every input the
sender was told is stored. The killed node is started again and rejoins as the new
primary's replica, so confirmed sends resume; a send that raised meanwhile is retried
with its key, which the bus recognises (stored once).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import redis

from hitl_bus import flow, receive_input, send_input, start_flow_run
from hitl_bus import keys as key_names
from hitl_bus.bus import get_bus
from hitl_bus.errors import BusConnectionError, ReplicationTimeout
from hitl_bus.flow_runs import pause_flow_run, resume_flow_run, wait_for_flow_run
from hitl_bus.redis_server import RedisServer
from tests.cluster import on_node, start_cluster

EXIT = "__exit__"


@pytest.fixture(scope="module")
def replicated_cluster() -> Iterator[list[RedisServer]]:
    with ExitStack() as stack:
        nodes = start_cluster(stack, masters=3, replicas=1, node_timeout_ms=1000)
        _until_healthy(nodes)
        yield nodes


def _until_healthy(nodes: list[RedisServer], timeout: float = 60) -> None:
    """Every node up and ok, and every master with a replica in sync."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ok = all(on_node(n.port, "CLUSTER INFO")["cluster_state"] == "ok" for n in nodes)
            masters = [n for n in nodes if _role(n) == "master"]
            synced = len(masters) == 3 and all(_online_replicas(m) >= 1 for m in masters)
        except Exception:  # noqa: BLE001 - a node still starting
            ok = synced = False
        if ok and synced:
            return
        assert time.monotonic() < deadline, "the cluster did not become healthy"
        time.sleep(0.1)


def _role(node: RedisServer) -> str:
    info: Any = on_node(node.port, "INFO", "replication")
    return str(info["role"])


def _online_replicas(node: RedisServer) -> int:
    info: Any = on_node(node.port, "INFO", "replication")
    replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    return sum(1 for r in replicas if r.get("state") == "online")


def _owner(nodes: list[RedisServer], key: str) -> RedisServer:
    """The master that serves ``key``'s slot now (the others answer MOVED)."""
    for node in nodes:
        if node.pid is None or _role(node) != "master":
            continue
        try:
            on_node(node.port, "EXISTS", key)
        except redis.ResponseError:
            continue
        return node
    raise AssertionError("no master serves the slot")


async def _send_until_stored(value: str, run_id: Any, key: str, refused: list[str]) -> None:
    """Send until the bus says it is stored and replicated; a retry with the key is safe.

    ``refused`` collects the sends the bus could not confirm (the failover window).
    """
    deadline = time.monotonic() + 60
    while True:
        try:
            await send_input(value, flow_run_id=run_id, key=key)
            return
        except (ReplicationTimeout, BusConnectionError) as exc:
            refused.append(f"{key}: {type(exc).__name__}")
            assert time.monotonic() < deadline, f"{key} was never confirmed"
            await asyncio.sleep(0.1)


async def test_a_master_killed_mid_chat_loses_no_acknowledged_input(
    replicated_cluster: list[RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes = replicated_cluster
    for node in nodes:
        if _role(node) == "master":
            on_node(node.port, "FLUSHALL")
    seed = nodes[0]
    monkeypatch.setenv("HITL_BUS_REDIS_URL", f"redis+cluster://127.0.0.1:{seed.port}/")
    monkeypatch.setenv("HITL_BUS_MIN_REPLICAS", "1")
    monkeypatch.setenv("HITL_BUS_REPLICA_TIMEOUT_MS", "1000")
    received: list[str] = []

    @flow
    async def listener() -> None:
        async for text in receive_input(str, timeout=None):
            if text == EXIT:
                return
            received.append(text)

    @flow
    async def approval() -> str:
        return await pause_flow_run(wait_for_input=str, timeout=600)

    chat = await start_flow_run(listener)
    victim = _owner(nodes, key_names.run(str(chat.id)))
    # A paused run on the same master: it must be answerable after the failover.
    paused = None
    for _ in range(60):
        candidate = await start_flow_run(approval)
        if _owner(nodes, key_names.run(str(candidate.id))) is victim:
            paused = candidate
            break
    assert paused is not None
    await asyncio.sleep(0.5)  # both runs are up: waiting and paused

    def come_back() -> None:
        """After the replica took over, the killed node returns as its replica."""
        time.sleep(4)
        victim.kill_and_restart()

    acknowledged: list[str] = []
    refused: list[str] = []
    loop = asyncio.get_running_loop()
    restart = None
    for i in range(30):
        if i == 10:
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            restart = loop.run_in_executor(None, come_back)
        await _send_until_stored(f"m{i}", chat.id, f"m-{i}", refused)
        acknowledged.append(f"m{i}")
    assert restart is not None
    await restart
    # The failover happened: the replica serves the slot, the killed node is its replica.
    # (Sends meanwhile either waited inside the bus's reconnect window or were refused
    # with an error and retried here: ``refused``.)
    assert _owner(nodes, key_names.run(str(chat.id))) is not victim, refused
    await _send_until_stored(EXIT, chat.id, "exit", refused)
    done = await wait_for_flow_run(chat.id, timeout=60)
    assert done.state.is_completed(), done.state
    assert received == acknowledged  # every acknowledged input, once, in order

    await resume_flow_run(paused.id, {"value": "approved"})
    answered = await wait_for_flow_run(paused.id, timeout=60)
    assert answered.state.is_completed(), answered.state
    await get_bus().refresh_topology()
    _until_healthy(nodes)
