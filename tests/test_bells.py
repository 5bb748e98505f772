"""Bells (``HITL_BUS_WAKE=bells``, the default on Cluster): keyspace notifications wake the
waiters, one connection per node whatever the number of slots, and a lost bell loses
nothing because every subscription is followed by a read of the stream."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from hitl_bus import keys as key_names
from hitl_bus import receive_input, send_input
from hitl_bus.bus import get_bus
from hitl_bus.bus.bells import keyspace_flags
from hitl_bus.bus.connection import CLIENT_NAME
from hitl_bus.redis_server import RedisServer
from tests.cluster import on_node
from tests.helpers import eventually, new_run


def test_keyspace_flags_add_stream_events_to_what_is_set() -> None:
    assert keyspace_flags("") == "Kt"
    assert keyspace_flags("Ex") == "EKtx"
    assert keyspace_flags("KEA") == "AEK"  # "A" has the stream class already
    assert keyspace_flags("Kt") == "Kt"


async def _parked(n: int) -> None:
    dispatcher = get_bus().dispatcher

    async def settled() -> bool:
        return dispatcher.waiting() == n and dispatcher.settled()

    await eventually(settled, timeout=30)


@pytest.mark.cluster
async def test_on_cluster_connections_grow_with_nodes_not_slots(
    cluster_url: str, redis_cluster: list[RedisServer]
) -> None:
    runs = [await new_run() for _ in range(150)]
    slots = {key_names.slot(key_names.run(str(run.id))) for run in runs}
    assert len(slots) > 100
    tasks = [
        asyncio.create_task(receive_input(str, flow_run_id=run.id, timeout=None).next())
        for run in runs
    ]
    await _parked(len(tasks))
    assert get_bus().dispatcher.connections() <= len(redis_cluster)
    per_node = [
        sum(1 for c in on_node(node.port, "CLIENT LIST") if c.get("name") == CLIENT_NAME)
        for node in redis_cluster
    ]
    # Per master: the bells' connection and its role checks, the command pool (at most
    # ``command_connections``), and maybe the seed's CLUSTER SLOTS connection.
    assert all(count <= 2 + 4 + 1 for count in per_node), per_node
    for i, run in enumerate(runs):
        await send_input(f"v{i}", flow_run_id=run.id)
    async with asyncio.timeout(10):
        got = await asyncio.gather(*tasks)
    assert got == [f"v{i}" for i in range(len(runs))]


@pytest.fixture
def bells(real_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HITL_BUS_WAKE", "bells")
    return real_redis_url


async def test_standalone_bells_turn_on_notifications_and_wake_receivers(
    bells: str, admin: aioredis.Redis
) -> None:
    await admin.config_set("notify-keyspace-events", "")
    run = await new_run()
    receiver = receive_input(int, flow_run_id=run.id, timeout=None)
    first = asyncio.create_task(receiver.next())
    await _parked(1)
    flags = (await admin.config_get("notify-keyspace-events"))["notify-keyspace-events"]
    assert set("Kt") <= set(flags.decode() if isinstance(flags, bytes) else flags)
    await send_input(1, flow_run_id=run.id)
    async with asyncio.timeout(5):
        assert await first == 1
    assert get_bus().dispatcher.connections() == 1


async def test_inputs_sent_while_the_bells_are_cut_arrive_once_in_order(
    bells: str, admin: aioredis.Redis
) -> None:
    run = await new_run()
    receiver = receive_input(int, flow_run_id=run.id, timeout=None)
    first = asyncio.create_task(receiver.next())
    await _parked(1)
    await send_input(1, flow_run_id=run.id)
    async with asyncio.timeout(5):
        assert await first == 1
    rest = asyncio.create_task(_take(receiver, 3))
    await _parked(1)
    # Cut the bells' connection and send while it is down: the notifications are lost.
    killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    assert killed >= 1
    for n in [2, 3, 4]:
        await send_input(n, flow_run_id=run.id)
    async with asyncio.timeout(10):
        assert await rest == [2, 3, 4]
    extra = asyncio.create_task(receiver.next())
    await asyncio.sleep(0.3)
    assert not extra.done(), "an input was delivered twice"
    extra.cancel()


async def test_an_entry_added_before_the_subscription_is_read_after_it(
    bells: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race a doorbell invites: the entry lands after the caller's first read and
    before Redis confirms the subscription; the read that follows the confirmation finds it."""
    run = await new_run()
    bus = get_bus()
    open_node = bus.open_node
    sent = asyncio.Event()

    async def slow_open(node: object) -> object:
        client = await open_node(node)  # type: ignore[arg-type]
        await send_input(9, flow_run_id=run.id)  # before any subscription exists
        sent.set()
        return client

    monkeypatch.setattr(bus, "open_node", slow_open)
    async with asyncio.timeout(10):
        assert await receive_input(int, flow_run_id=run.id, timeout=None).next() == 9
    assert sent.is_set()


async def _take(receiver: object, n: int) -> list[int]:
    out = []
    for _ in range(n):
        out.append(await receiver.next())  # type: ignore[attr-defined]
    return out


def test_unknown_wake_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from hitl_bus.settings import get_settings

    monkeypatch.setenv("HITL_BUS_WAKE", f"bell-{uuid.uuid4().hex[:4]}")
    with pytest.raises(ValidationError, match="wake"):
        get_settings()


async def test_without_config_rights_the_bells_give_way_to_blocking_reads(
    bells: str,
    admin: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A managed Redis may refuse ``CONFIG``: the waiters are still woken, by XREAD."""
    await admin.config_set("notify-keyspace-events", "")
    await admin.execute_command(
        "ACL", "SETUSER", "noconfig", "on", ">pw", "~*", "&*", "+@all", "-config"
    )
    try:
        monkeypatch.setenv("HITL_BUS_REDIS_URL", bells.replace("redis://", "redis://noconfig:pw@"))
        run = await new_run()
        first = asyncio.create_task(receive_input(int, flow_run_id=run.id, timeout=None).next())
        dispatcher = get_bus().dispatcher

        async def fell_back() -> bool:
            return not dispatcher.bells and dispatcher.settled() and dispatcher.waiting() == 1

        await eventually(fell_back, timeout=10)
        await send_input(5, flow_run_id=run.id)
        async with asyncio.timeout(5):
            assert await first == 5
        assert "keyspace notifications cannot be turned on" in caplog.text
    finally:
        await admin.execute_command("ACL", "DELUSER", "noconfig")


async def test_on_standalone_auto_waits_with_xreads_then_bells_past_the_threshold(
    real_redis_url: str,
) -> None:
    """Few streams: blocking XREADs (quicker per wake-up). Past ``bells_past``: bells, so no
    wake-up re-sends a long key list."""
    dispatcher = get_bus().dispatcher
    assert not dispatcher.bells and dispatcher.bells_past is not None
    dispatcher.bells_past = 5  # the default is 256
    runs = [await new_run() for _ in range(12)]
    tasks = []
    for run in runs:  # one at a time, so the threshold is crossed in order
        tasks.append(asyncio.create_task(receive_input(str, flow_run_id=run.id).next()))
        await _parked(len(tasks))
    on_bells = [
        stream
        for place, reader in dispatcher._readers.items()
        if place == ("bells", None)
        for stream in reader.streams
    ]
    assert len(on_bells) == 12 - 5
    for i, run in enumerate(runs):
        await send_input(f"v{i}", flow_run_id=run.id)
    async with asyncio.timeout(5):
        assert await asyncio.gather(*tasks) == [f"v{i}" for i in range(12)]
