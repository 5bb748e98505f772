"""The dispatcher's readers on a real redis-server: connections shared by every waiter, no
command while idle, reconnection after a cut connection or a restart without losing or
repeating an input."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from hitl_bus import receive_input, send_input
from hitl_bus.bus import get_bus
from hitl_bus.bus.connection import CLIENT_NAME
from hitl_bus.bus.reading import open_reader_client, read_streams
from hitl_bus.inputs.receiving import InputReceiver
from hitl_bus.redis_server import RedisServer
from tests.helpers import new_run, until_waiting

pytestmark = pytest.mark.realredis


@pytest.fixture
def aof_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A server of this test's own, with AOF (``appendfsync always``), that the test may restart."""
    with RedisServer(appendonly=True) as server:
        monkeypatch.setenv("HITL_BUS_REDIS_URL", server.url)
        yield server


async def _bus_client_ids(admin: aioredis.Redis) -> set[int]:
    return {int(c["id"]) for c in await admin.client_list() if c.get("name") == CLIENT_NAME}


async def _calls(admin: aioredis.Redis) -> int:
    """Commands Redis has run so far, not counting the ``INFO`` calls that measure it."""
    stats = await admin.info("commandstats")
    return sum(s["calls"] for name, s in stats.items() if name != "cmdstat_info")


async def _take(receiver: InputReceiver[Any], n: int) -> list[Any]:
    return [await receiver.next() for _ in range(n)]


async def test_a_thousand_waiting_receivers_share_at_most_eight_connections(
    admin: aioredis.Redis,
) -> None:
    others = await _bus_client_ids(admin)  # connections of other loops, not this test's
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, len(await _bus_client_ids(admin) - others))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        runs = await asyncio.gather(*(new_run() for _ in range(1000)))
        receivers = [receive_input(str, flow_run_id=run.id, timeout=None) for run in runs]
        tasks = [asyncio.create_task(r.next()) for r in receivers]
        await until_waiting(1000)
        parked = len(await _bus_client_ids(admin) - others)
        assert 1 <= parked <= 8
        await asyncio.gather(*(send_input(f"v{i}", flow_run_id=r.id) for i, r in enumerate(runs)))
        async with asyncio.timeout(30):
            got = await asyncio.gather(*tasks)
        assert got == [f"v{i}" for i in range(1000)]
    finally:
        sampler.cancel()
    assert peak <= 8


async def test_idle_receivers_send_redis_no_commands(admin: aioredis.Redis) -> None:
    runs = [await new_run() for _ in range(98)]
    receivers = [receive_input(str, flow_run_id=run.id, timeout=None) for run in runs]
    receivers.append(receive_input(str, flow_run_id=runs[0].id, consumer="c", timeout=None))
    receivers.append(receive_input(str, timeout=None))  # outside a run: the inbox
    tasks = [asyncio.create_task(r.next()) for r in receivers]
    await until_waiting(100)
    await asyncio.sleep(0.3)  # let the readers settle into their blocking XREADs
    before = await _calls(admin)
    await asyncio.sleep(1.0)
    assert await _calls(admin) - before == 0
    assert not any(t.done() for t in tasks)
    await send_input("wake", flow_run_id=runs[-1].id)
    async with asyncio.timeout(5):
        assert await tasks[97] == "wake"
    for task in tasks:
        task.cancel()


Receiving = tuple[Any, InputReceiver[Any], asyncio.Task[list[Any]]]


async def _receiving_after_a_first_input() -> Receiving:
    """A run whose receiver took input 1 and now waits (parked on a reader) for three more."""
    run = await new_run()
    receiver = receive_input(int, flow_run_id=run.id, timeout=None)
    first = asyncio.create_task(receiver.next())
    await send_input(1, flow_run_id=run.id)
    async with asyncio.timeout(5):
        assert await first == 1
    rest = asyncio.create_task(_take(receiver, 3))
    await until_waiting(1)
    return run, receiver, rest


async def test_receiver_continues_after_connection_kill_and_redis_restart(
    aof_server: RedisServer,
) -> None:
    run, receiver, rest = await _receiving_after_a_first_input()

    admin = redis.Redis(port=aof_server.port, protocol=2)
    assert admin.client_kill_filter(_type="normal") >= 1  # skips the admin itself
    admin.close()
    await asyncio.sleep(0.2)  # the reader reconnects to the live server
    await asyncio.to_thread(aof_server.stop)
    await asyncio.sleep(0.3)  # ... and now fails to, backing off
    await asyncio.to_thread(aof_server.start)
    assert not rest.done()

    for n in [2, 3, 4]:
        await send_input(n, flow_run_id=run.id)  # the command pool reconnects
    async with asyncio.timeout(15):
        assert await rest == [2, 3, 4]
    extra = asyncio.create_task(receiver.next())
    await asyncio.sleep(0.3)
    assert not extra.done(), "an input was delivered twice"
    extra.cancel()
    assert [v async for v in receive_input(int, flow_run_id=run.id, timeout=0.2)] == [1, 2, 3, 4]


async def test_inputs_sent_while_the_receiver_is_disconnected_arrive_once_in_order(
    aof_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _, rest = await _receiving_after_a_first_input()

    # Hold the reader's reconnection until the inputs are in.
    bus = get_bus()
    gate = asyncio.Event()
    held = 0

    def gated(open_connection: Any) -> Any:
        async def opening(where: Any) -> Any:
            nonlocal held
            held += 1
            await gate.wait()
            return await open_connection(where)

        return opening

    # A blocking reader's connection, or (HITL_BUS_WAKE=bells) the bells' one.
    monkeypatch.setattr(bus, "open_reader", gated(bus.open_reader))
    monkeypatch.setattr(bus, "open_node", gated(bus.open_node))
    await asyncio.to_thread(aof_server.kill)  # kill -9: only the AOF keeps the data
    await asyncio.sleep(0.2)
    await asyncio.to_thread(aof_server.start)
    for n in [2, 3, 4]:
        await send_input(n, flow_run_id=run.id)
    await asyncio.sleep(0.3)
    assert held and not rest.done()
    gate.set()
    async with asyncio.timeout(15):
        assert await rest == [2, 3, 4]

    # Everything acknowledged survives another crash, each input once.
    await asyncio.to_thread(aof_server.kill)
    await asyncio.to_thread(aof_server.start)
    got = [v async for v in receive_input(int, flow_run_id=run.id, timeout=0.2)]
    assert got == [1, 2, 3, 4]


async def test_a_reader_connection_reads_what_the_client_reads(real_redis_url: str) -> None:
    """The readers' direct XREAD answers in redis-py's own form, with and without entries."""
    reader = open_reader_client(real_redis_url)
    plain = get_bus().client
    try:
        await reader.ping()  # the reader's one connection, as its owner opens it
        assert reader.connection is not None and reader.connection.is_connected  # direct
        one, two, empty = "test:read:a", "test:read:b", "test:read:none"
        await plain.delete(one, two, empty)
        for n in range(3):
            await plain.xadd(one, {"n": str(n), "text": "héllo"})
        await plain.xadd(two, {"only": "field"})
        request = {one: "0-0", two: "0-0", empty: "0-0"}
        direct = await read_streams(reader, request, block=None, count=2)
        assert direct == await plain.xread(request, count=2)
        assert [len(entries) for _, entries in direct] == [2, 1]
        assert await read_streams(reader, {empty: "0-0"}, block=10, count=5) == []
        await plain.xgroup_create(one, "g", id="0")
        as_group = await read_streams(reader, {one: ">"}, block=None, count=2, group=("g", "c"))
        assert as_group == direct[:1]  # the same two entries, now pending for c
        await plain.xdel(one, direct[0][1][0][0])
        history = await read_streams(reader, {one: "0"}, block=None, count=5, group=("g", "c"))
        assert history == await plain.xreadgroup("g", "c", {one: "0"}, count=5)
        assert history[0][1][0][1] == {}  # deleted since it was handed out
    finally:
        await reader.aclose()


async def test_a_background_waiter_is_served_after_the_others_on_its_stream(
    admin: aioredis.Redis,
) -> None:
    """A run's cancel watch waits on the control stream a paused flow waits on: the flow,
    registered later, still runs first in the loop turn both wake in."""
    dispatcher = get_bus().dispatcher
    stream = f"test:order:{id(admin)}"
    woke: list[str] = []

    async def wait(name: str, background: bool) -> None:
        await dispatcher.wait(stream, "0-0", 5, background=background)
        woke.append(name)

    watch = asyncio.create_task(wait("background", True))
    await asyncio.sleep(0.05)  # registered first
    waiter = asyncio.create_task(wait("foreground", False))
    await asyncio.sleep(0.05)
    await admin.xadd(stream, {"type": "resumed"})
    await asyncio.gather(watch, waiter)
    assert woke == ["foreground", "background"]
    await admin.delete(stream)
