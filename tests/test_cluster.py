"""What only a Redis Cluster shows: keys on slots, slots over masters, connections per slot
and per master, scripts loaded again on every master, the global indexes on other slots.

The cluster is the session's (``tests/cluster.py``). The send/receive/respond scenarios run on
it too, from ``test_inputs.py`` (marked ``also_on_cluster``).
"""

from __future__ import annotations

import asyncio

import pytest

from hitl_bus import flow, get_client, receive_input, send_input, start_flow_run
from hitl_bus import keys as key_names
from hitl_bus.bus import get_bus
from hitl_bus.bus.connection import CLIENT_NAME
from hitl_bus.redis_server import RedisServer
from tests.cluster import on_node
from tests.helpers import eventually, new_run

pytestmark = pytest.mark.cluster


def _slot_owners(port: int) -> dict[int, int]:
    """Slot -> port of the master that serves it, from ``CLUSTER SLOTS``."""
    owners = {}
    for start, end, master, *_ in on_node(port, "CLUSTER SLOTS"):
        for slot in range(start, end + 1):
            owners[slot] = int(master[1])
    return owners


async def test_runs_spread_over_the_masters(
    cluster_url: str, redis_cluster: list[RedisServer]
) -> None:
    runs = [await new_run() for _ in range(12)]
    for run in runs:
        await send_input("hi", flow_run_id=run.id)
    owners = _slot_owners(redis_cluster[0].port)
    expected = {str(run.id): owners[key_names.slot(key_names.run(str(run.id)))] for run in runs}
    held: dict[str, set[int]] = {}
    for node in redis_cluster:
        for raw in on_node(node.port, "KEYS", "hitl:{*"):
            held.setdefault(key_names.hash_tag(raw.decode()), set()).add(node.port)
    for run_id, port in expected.items():
        assert held[run_id] == {port}, "every key of a run lives on its slot's master"
    assert len(set(expected.values())) >= 2


async def test_send_and_receive_on_runs_in_many_slots(cluster_url: str) -> None:
    runs = [await new_run() for _ in range(12)]
    assert len({key_names.slot(key_names.run(str(r.id))) for r in runs}) > 1
    for i, run in enumerate(runs):
        await send_input(i, flow_run_id=run.id)
        await send_input(i + 100, flow_run_id=run.id)
    for i, run in enumerate(runs):
        receiver = receive_input(int, flow_run_id=run.id, timeout=1)
        assert [await receiver.next(), await receiver.next()] == [i, i + 100]


async def test_waiting_receivers_in_many_slots_are_woken_by_push(
    cluster_url: str, redis_cluster: list[RedisServer]
) -> None:
    runs = [await new_run() for _ in range(12)]
    slots = {key_names.slot(key_names.run(str(run.id))) for run in runs}
    receivers = [
        receive_input(str, flow_run_id=run.id, poll_interval=3600, timeout=None) for run in runs
    ]
    tasks = [asyncio.create_task(r.next()) for r in receivers]

    async def parked() -> bool:
        return get_bus().dispatcher.waiting() == len(tasks)

    await eventually(parked)
    # A second stream on a slot whose reader is already blocked: it must take it up.
    tasks.append(asyncio.create_task(receive_input(int, flow_run_id=runs[0].id).next()))
    await eventually(parked)
    await asyncio.sleep(0.1)
    assert not any(t.done() for t in tasks)
    # The documented cost: one reader connection per slot with waiters, plus the
    # command pools (at most ``command_connections`` per master, and the seed's
    # CLUSTER SLOTS connection redis-py keeps).
    held = sum(
        1
        for node in redis_cluster
        for c in on_node(node.port, "CLIENT LIST")
        if c.get("name") == CLIENT_NAME
    )
    assert held <= len(slots) + 4 * len(redis_cluster) + 1
    for i, run in enumerate(runs):
        await send_input(f"v{i}", flow_run_id=run.id)
    await send_input(7, flow_run_id=runs[0].id)
    async with asyncio.timeout(2):
        got = await asyncio.gather(*tasks)
    assert got == [f"v{i}" for i in range(12)] + [7]


async def test_concurrent_callers_queue_for_a_connection(
    cluster_url: str, redis_cluster: list[RedisServer]
) -> None:
    # Connections other tests' loops may still hold are not this test's: count newer ones.
    before = {
        n.port: max(int(c["id"]) for c in on_node(n.port, "CLIENT LIST")) for n in redis_cluster
    }
    runs = [await new_run() for _ in range(12)]
    await asyncio.gather(
        *(send_input(n, flow_run_id=run.id) for run in runs for n in range(5))
    )  # 60 at once on pools of 4 per master: the callers wait their turn
    for node in redis_cluster:
        held = [
            c
            for c in on_node(node.port, "CLIENT LIST")
            if c.get("name") == CLIENT_NAME and int(c["id"]) > before[node.port]
        ]
        assert len(held) <= 4 + 1  # the command pool, and maybe the seed's connection
    for run in runs:
        receiver = receive_input(int, flow_run_id=run.id, timeout=1)
        assert sorted([await receiver.next() for _ in range(5)]) == [0, 1, 2, 3, 4]


async def test_input_arrival_is_an_event_on_the_run_and_the_global_stream(
    cluster_url: str,
) -> None:
    run = await new_run()
    await send_input("ada", flow_run_id=run.id)
    events = await get_client().read_events(run.id)
    arrivals = [e["data"]["key_prefix"] for e in events if e["type"] == "input.received"]
    assert arrivals == ["str-auto"]
    bus = get_bus()  # the run's bucket of the global stream (16 buckets on Cluster)
    everything = await bus.client.xrange(key_names.events_of(str(run.id), bus.index_shards))
    assert any(f[b"type"] == b"input.received" for _, f in everything)


async def test_scripts_are_loaded_again_on_every_master(
    cluster_url: str, redis_cluster: list[RedisServer]
) -> None:
    runs = [await new_run() for _ in range(12)]
    await send_input("before", flow_run_id=runs[0].id)
    for node in redis_cluster:
        on_node(node.port, "SCRIPT", "FLUSH")
    for run in runs:  # from outside a run: also renews the inbox, another slot
        await send_input("after", flow_run_id=run.id)
    got = [v async for v in receive_input(str, flow_run_id=runs[0].id, timeout=0.2)]
    assert got == ["before", "after"]


async def test_pause_resume_and_suspend_on_cluster(cluster_url: str) -> None:
    from hitl_bus import (
        execute_flow_run,
        pause_flow_run,
        resume_flow_run,
        suspend_flow_run,
        sweep_expired,
    )
    from hitl_bus.errors import FlowRunSuspended

    @flow
    async def asks() -> str:
        return str(await pause_flow_run(wait_for_input=str, timeout=30))

    @flow
    async def suspends() -> int:
        return int(await suspend_flow_run(wait_for_input=int)) + 1

    runs = [await start_flow_run(asks) for _ in range(6)]

    async def all_paused() -> bool:
        states = [(await get_client().read_flow_run(r.id)).state for r in runs]
        return all(s.is_paused() for s in states)

    await eventually(all_paused)
    for run in runs:
        await resume_flow_run(run.id, {"value": f"hi {run.id}"})

    async def all_completed() -> bool:
        states = [(await get_client().read_flow_run(r.id)).state for r in runs]
        return all(s.is_completed() for s in states)

    await eventually(all_completed)
    with pytest.raises(FlowRunSuspended) as info:
        await suspends()
    await resume_flow_run(info.value.flow_run_id, {"value": 41})
    assert await execute_flow_run(suspends, info.value.flow_run_id) == 42
    assert await sweep_expired() == []
