"""The global run indexes and event stream split into buckets: one list, one sweep, one
stream of every run's events, spread over the masters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from hitl_bus import get_client, keys
from hitl_bus.bus import get_bus
from hitl_bus.client import RunEvent
from hitl_bus.engine import indexes
from hitl_bus.engine.runs import create_flow_run, read_flow_runs, sweep_expired
from hitl_bus.engine.states import Paused, Running, StateType
from hitl_bus.redis_server import RedisServer
from tests.cluster import on_node
from tests.helpers import eventually
from tests.notify_support import paused_run, running_notifier, webhook_receiver

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
        await indexes.index_state(
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
    assert await indexes.forget_expired() == 8
    assert await read_flow_runs(limit=100) == []


async def _first(events: AsyncIterator[RunEvent], count: int) -> list[RunEvent]:
    taken: list[RunEvent] = []
    async with contextlib.aclosing(events):
        async for event in events:
            taken.append(event)
            if len(taken) == count:
                break
    return taken


async def test_every_runs_events_follow_as_one_stream_from_every_bucket() -> None:
    client = get_client()
    start = await client.event_position()
    assert start.count("_") == 3  # one entry id per bucket
    live: list[RunEvent] = []

    async def follow_live() -> None:
        live.extend(await _first(client.follow_events(after=start), 12))

    follower = asyncio.create_task(follow_live())
    await asyncio.sleep(0.2)  # parked on the dispatcher: the runs below arrive live
    created = [await create_flow_run(f"flow-{i}", {}) for i in range(12)]
    assert len({keys.index_shard(str(run.id), 4) for run in created}) > 1
    await asyncio.wait_for(follower, 10)
    ids = sorted(str(run.id) for run in created)
    assert sorted(event.run_id for event in live) == ids  # each run's Scheduled, once

    # Every event's id is a position a follower starts after, across buckets: the stored
    # events after the fifth one are the other seven, none twice.
    rest = await asyncio.wait_for(_first(client.follow_events(after=live[4].id), 7), 10)
    assert sorted(event.run_id for event in live[:5] + rest) == ids
    for shard in range(4):  # a bucket holds its own runs' events only
        for _, fields in await get_bus().client.xrange(keys.events(shard, 4)):
            assert keys.index_shard(fields[b"run_id"].decode(), 4) == shard


async def test_a_position_for_another_number_of_buckets_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="names 2 event buckets; this store has 4"):
        await _first(get_client().follow_events(after="1-0_2-0"), 1)


async def test_the_notifier_tells_of_runs_in_every_bucket(bus_url: str) -> None:
    from hitl_bus.notify import sinks

    if bus_url.startswith("fakeredis"):
        pytest.skip("the notifier's blocking group reads need a real server")
    with webhook_receiver() as receiver:
        await sinks.add_webhook(receiver.url)
        async with running_notifier():
            run_ids = [await paused_run(None) for _ in range(6)]

            async def told() -> bool:
                return len(receiver.answered()) >= 6

            await eventually(told, timeout=20)
    assert len({keys.index_shard(run_id, 4) for run_id in run_ids}) > 1
    assert sorted(request.json["run"]["id"] for request in receiver.answered()) == sorted(run_ids)


@pytest.mark.cluster
async def test_on_cluster_the_default_buckets_spread_index_writes_over_the_masters(
    cluster_url: str, redis_cluster: list[RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    del cluster_url
    monkeypatch.setenv("HITL_BUS_INDEX_SHARDS", "0")  # the default: 16 on Cluster
    await asyncio.gather(*(create_flow_run("spread", {}) for _ in range(600)))
    assert get_bus().index_shards == 16
    counts: dict[str, list[int]] = {}
    for pattern, size in (("hitl:*runs", "ZCARD"), ("hitl:events", "XLEN"),
                          ("hitl:{hitl-index-*}:events", "XLEN")):  # fmt: skip
        per_master = []
        for node in redis_cluster:
            total = 0
            for raw in on_node(node.port, "KEYS", pattern):
                name = raw.decode() if isinstance(raw, bytes) else raw
                total += int(on_node(node.port, size, name))
            per_master.append(total)
        counts[pattern] = per_master
    runs_per_master = counts["hitl:*runs"]
    unsplit, buckets = counts["hitl:events"], counts["hitl:{hitl-index-*}:events"]
    events_per_master = [a + b for a, b in zip(unsplit, buckets, strict=True)]
    for per_master in (runs_per_master, events_per_master):  # one entry per run each
        assert sum(per_master) == 600
        mean = sum(per_master) / len(per_master)
        assert max(per_master) <= 1.5 * mean, per_master
    assert len(await read_flow_runs(limit=1000)) == 600


async def test_a_browsers_position_for_another_bucket_count_starts_the_feed_from_now() -> None:
    from hitl_bus.web import live

    feeds = [live.events(None)]
    now = await live.start(feeds, None)
    assert now["events"].count("_") == 3
    for sent in ("1-0_2-0", "1-0_2-0_3-0_x", "garbage"):  # two buckets; not ids; not a position
        assert (await live.start(feeds, sent))["events"].count("_") == 3
    kept = "5-0_6-0_7-0_8-0"
    assert (await live.start(feeds, kept))["events"] == kept
