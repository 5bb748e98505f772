"""The global run indexes split into buckets: one list, one sweep, spread over the masters."""

from __future__ import annotations

import asyncio

import pytest

from hitl_bus import keys
from hitl_bus.bus import get_bus
from hitl_bus.engine import store
from hitl_bus.engine.runs import create_flow_run, read_flow_runs, sweep_expired
from hitl_bus.engine.states import Paused, Running, StateType
from hitl_bus.redis_server import RedisServer
from tests.cluster import on_node

pytestmark = [pytest.mark.usefixtures("bus_url"), pytest.mark.also_on_cluster]


@pytest.fixture(autouse=True)
def _four_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_BUS_INDEX_SHARDS", "4")


async def test_runs_in_every_bucket_list_as_one_newest_first() -> None:
    created = []
    for i in range(24):
        state = Paused(timeout_seconds=600) if i % 3 == 0 else Running()
        created.append(await create_flow_run(f"flow-{i}", {}, state=state))
        await asyncio.sleep(0.002)  # distinct creation times
    bus = get_bus()
    assert bus.index_shards == 4
    buckets = {keys.index_shard(str(run.id), 4) for run in created}
    assert len(buckets) > 1  # the runs did land in several buckets
    newest_first = [str(run.id) for run in reversed(created)]
    assert [str(run.id) for run in await read_flow_runs(limit=100)] == newest_first
    assert [str(run.id) for run in await read_flow_runs(limit=5)] == newest_first[:5]
    paused = await read_flow_runs(state=StateType.PAUSED, limit=100)
    assert {str(run.id) for run in paused} == {str(r.id) for r in created[::3]}


async def test_the_sweeps_read_every_bucket() -> None:
    due = [await create_flow_run("due", {}, state=Paused(timeout_seconds=0.05)) for _ in range(8)]
    bus = get_bus()
    for run in due:  # paused by a process that is gone: its deadline passed, in its bucket
        await bus.client.hset(
            keys.run(str(run.id)), mapping={"pause_deadline": 1, "pause_key": "1"}
        )
        await store.index_state(
            str(run.id), run.state, previous=StateType.SCHEDULED, pause_deadline_ms=1
        )
    expired = await sweep_expired()
    assert sorted(expired) == sorted(str(run.id) for run in due)


async def test_finished_runs_are_forgotten_in_every_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = [await create_flow_run("short", {}) for _ in range(8)]
    bus = get_bus()
    for run in runs:
        run_id = str(run.id)
        await bus.client.delete(keys.run(run_id))  # as if its retention had passed
        at = (keys.index_shard(run_id, 4), 4)
        await bus.client.zadd(keys.runs_expiring(*at), {run_id: 1})
    assert await store.forget_expired() == 8
    assert await read_flow_runs(limit=100) == []


@pytest.mark.cluster
async def test_on_cluster_the_default_buckets_spread_index_writes_over_the_masters(
    cluster_url: str, redis_cluster: list[RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    del cluster_url
    monkeypatch.setenv("HITL_BUS_INDEX_SHARDS", "0")  # the default: 16 on Cluster
    await asyncio.gather(*(create_flow_run("spread", {}) for _ in range(600)))
    assert get_bus().index_shards == 16
    per_master = []
    for node in redis_cluster:
        total = 0
        for raw in on_node(node.port, "KEYS", "hitl:*runs"):
            name = raw.decode() if isinstance(raw, bytes) else raw
            total += int(on_node(node.port, "ZCARD", name))
        per_master.append(total)
    assert sum(per_master) == 600
    mean = sum(per_master) / len(per_master)
    assert max(per_master) <= 1.5 * mean, per_master
    assert len(await read_flow_runs(limit=1000)) == 600
