"""HITL_BUS_MIN_REPLICAS: an answer returns only once a replica has it, else it says so.

A primary and a replica ``redis-server`` started here; the replica is frozen (SIGSTOP) to
play a replica that has fallen behind, and thawed again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis

from hitl_bus import flow, resume_flow_run, send_input, start_flow_run
from hitl_bus import keys as key_names
from hitl_bus.bus import get_bus
from hitl_bus.bus.core import close_bus
from hitl_bus.errors import ReplicationTimeout
from hitl_bus.flow_runs import pause_flow_run, wait_for_flow_run
from hitl_bus.redis_server import RedisServer
from tests.helpers import eventually, new_run


@pytest.fixture
def primary_and_replica(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[RedisServer, RedisServer]]:
    # No diskless-sync delay: the replica is in sync at once, not after 5 s.
    with RedisServer(extra_args=["--repl-diskless-sync-delay", "0"]) as primary:
        replica = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(primary.port)])
        with replica:
            deadline = time.monotonic() + 20
            with redis.Redis(port=primary.port) as admin:
                while (admin.info("replication").get("slave0") or {}).get("state") != "online":
                    assert time.monotonic() < deadline, "the replica did not connect"
                    time.sleep(0.05)
            monkeypatch.setenv("HITL_BUS_REDIS_URL", primary.url)
            monkeypatch.setenv("HITL_BUS_MIN_REPLICAS", "1")
            try:
                yield primary, replica
            finally:
                if replica.pid is not None:
                    os.kill(replica.pid, signal.SIGCONT)


def _on(server: RedisServer, *command: object) -> object:
    with redis.Redis(port=server.port) as client:
        return client.execute_command(*command)


async def test_a_send_returns_once_the_replica_has_it(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    _, replica = primary_and_replica
    run = await new_run()
    await send_input("kept", flow_run_id=run.id)
    # Confirmed before returning: the replica has it already, no waiting here.
    assert _on(replica, "XLEN", key_names.input_stream(str(run.id), "str-auto")) == 1


async def test_a_send_the_replica_did_not_confirm_raises_and_a_retry_stores_it_once(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = primary_and_replica
    run = await new_run()
    stream = key_names.input_stream(str(run.id), "str-auto")
    assert replica.pid is not None
    os.kill(replica.pid, signal.SIGSTOP)
    with pytest.raises(ReplicationTimeout, match="0 of 1 replica"):
        await send_input("late", flow_run_id=run.id, key="answer-1")
    assert _on(primary, "XLEN", stream) == 1  # on the primary, not yet confirmed
    os.kill(replica.pid, signal.SIGCONT)
    await send_input("late", flow_run_id=run.id, key="answer-1")  # the same answer again
    assert _on(primary, "XLEN", stream) == 1  # recognised, not stored twice

    async def replicated() -> bool:
        return _on(replica, "XLEN", stream) == 1

    await eventually(replicated, timeout=20)


async def test_a_resume_returns_once_the_replica_has_the_answer(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    _, replica = primary_and_replica

    @flow
    async def waits() -> str:
        return await pause_flow_run(wait_for_input=str)

    run = await start_flow_run(waits)

    async def paused() -> bool:
        state = _on(replica, "HGET", key_names.run(str(run.id)), "state")
        return isinstance(state, bytes) and b'"PAUSED"' in state

    await eventually(paused, timeout=20)
    await resume_flow_run(run.id, {"value": "yes"})
    stored = _on(replica, "HGETALL", key_names.run_values(str(run.id)))
    assert isinstance(stored, dict) and stored[b"paused-1-response"] == b'{"value":"yes"}'
    assert (await wait_for_flow_run(run.id, timeout=10)).state.is_completed()
    await asyncio.sleep(0)


async def test_on_a_cluster_without_replicas_a_send_says_it_was_not_replicated(
    cluster_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    del cluster_url  # the fixture configures the bus
    """The WAIT follows the script on its slot's node; no replica there: the send says so."""
    monkeypatch.setenv("HITL_BUS_MIN_REPLICAS", "1")
    monkeypatch.setenv("HITL_BUS_REPLICA_TIMEOUT_MS", "100")
    monkeypatch.setenv("HITL_BUS_MIN_REPLICAS", "0")
    run = await new_run()
    await close_bus()  # settings are read when a bus opens
    monkeypatch.setenv("HITL_BUS_MIN_REPLICAS", "1")
    with pytest.raises(ReplicationTimeout, match="0 of 1 replica"):
        await send_input("unconfirmed", flow_run_id=run.id)
    stream = key_names.input_stream(str(run.id), "str-auto")
    assert await get_bus().client.xlen(stream) == 1  # stored on its primary all the same
