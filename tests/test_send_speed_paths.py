"""The cheaper ways a send does its work keep every promise of a send.

The send scripts renew the sender's inbox lazily, add an input key before checking the
schema (and take it out again), write a batch's key set, index and prefixes once per batch
and put the events' JSON together themselves; the command connections pack with hiredis
and queue on a semaphore. None of it may show.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from hitl_bus import get_client, send_input, send_inputs
from hitl_bus import keys as key_names
from hitl_bus.bus import get_bus
from hitl_bus.bus.connection import lean, open_command_client
from hitl_bus.errors import BusConnectionError, InputRejected
from hitl_bus.inputs import inbox
from hitl_bus.inputs.keyset import Mailbox
from hitl_bus.inputs.messaging import deliver
from hitl_bus.inputs.run_input import RawInput, run_input_subclass_from_type, schema_json
from hitl_bus.redis_server import free_port
from tests.helpers import new_run
from tests.models import ShirtOrder

PREFIX = ShirtOrder.default_key_prefix()


async def received_events(run_id: Any) -> list[dict[str, Any]]:
    """The ``data`` of the run's ``input.received`` events, oldest first."""
    events = await get_client().read_events(run_id)
    return [event["data"] for event in events if event["type"] == "input.received"]


async def global_received(run_id: Any) -> list[dict[str, Any]]:
    """The ``data`` of the run's ``input.received`` events on the global stream."""
    found = []
    bucket = key_names.events_of(str(run_id), get_bus().index_shards)  # the run's bucket
    for _, fields in await get_bus().client.xrange(bucket):
        if fields[b"type"] == b"input.received" and fields[b"run_id"].decode() == str(run_id):
            found.append(json.loads(fields[b"data"]))
    return found


@pytest.mark.realredis
async def test_a_send_renews_the_inbox_at_most_every_tenth_of_its_ttl(
    admin: aioredis.Redis,
) -> None:
    run = await new_run()
    bus = get_bus()
    marker = key_names.inbox(inbox.inbox().id)
    ttl_ms = int(bus.settings.inbox_ttl * 1000)
    inbox.renewed(bus, float("-inf"))  # due
    await send_input("first", flow_run_id=run.id)
    assert 60_000 < await admin.pttl(marker) <= ttl_ms
    assert await admin.hget(marker, "pid") == str(os.getpid()).encode()

    await admin.pexpire(marker, 60_000)
    await send_input("soon after", flow_run_id=run.id)  # renewed a moment ago: left alone
    assert await admin.pttl(marker) <= 60_000

    inbox.renewed(bus, float("-inf"))  # due again
    await send_inputs(["a", "b"], flow_run_id=run.id)
    assert await admin.pttl(marker) > 60_000


@pytest.mark.realredis
async def test_a_send_remakes_an_inbox_that_is_gone_even_when_not_due(
    admin: aioredis.Redis,
) -> None:
    run = await new_run()
    bus = get_bus()
    marker = key_names.inbox(inbox.inbox().id)
    await send_input("first", flow_run_id=run.id)
    for send in (
        lambda: send_input("again", flow_run_id=run.id),
        lambda: send_inputs(["a", "b"], flow_run_id=run.id),
    ):
        await admin.delete(marker)  # as after a flush or a restart
        await send()
        assert await admin.hget(marker, "pid") == str(os.getpid()).encode()
        assert 0 < await admin.pttl(marker) <= int(bus.settings.inbox_ttl * 1000)


@pytest.mark.realredis
async def test_an_inbox_keeps_its_inputs_while_it_is_sent_to(admin: aioredis.Redis) -> None:
    """Every send renews an inbox's input keys together, so their time left is checked on
    the stream alone: keys renewed a moment ago are left as they are, older ones renewed."""
    bus = get_bus()
    ttl_ms = int(bus.settings.inbox_ttl * 1000)
    await inbox.touch(bus)
    box = inbox.inbox()
    await deliver(box, "first")  # a new key prefix: its stream gets the ttl at once
    owned = [
        key_names.inbox(box.id),
        key_names.input_stream(box.id, "str-auto"),
        key_names.input_streams(box.id),
        key_names.input_keys(box.id),
        key_names.input_index(box.id),
    ]
    for key in owned:
        assert 0.9 * ttl_ms < await admin.pttl(key) <= ttl_ms, key
    for key in owned:
        await admin.pexpire(key, int(ttl_ms * 0.95))
    await deliver(box, "second")  # renewed within the last tenth of the ttl
    for key in owned:
        assert await admin.pttl(key) <= int(ttl_ms * 0.95), key
    for key in owned:
        await admin.pexpire(key, ttl_ms // 2)
    await deliver(box, "third")
    for key in owned:
        assert await admin.pttl(key) > int(ttl_ms * 0.9), key
    assert len(await admin.xrange(owned[1])) == 3


@pytest.mark.realredis
async def test_every_key_prefix_a_run_was_sent_is_recorded(admin: aioredis.Redis) -> None:
    run = await new_run()
    for value in ("a", "b", 1, "c", 2):  # the second send of a prefix skips the set
        await send_input(value, flow_run_id=run.id)
    recorded = await admin.smembers(key_names.input_streams(str(run.id)))
    assert recorded == {b"str-auto", b"int-auto"}


@pytest.mark.realredis
async def test_a_mailbox_made_again_records_its_key_prefixes_again(
    admin: aioredis.Redis,
) -> None:
    box = Mailbox.for_person("grace")
    prefixes = key_names.input_streams(box.owner)
    await deliver(box, "first")
    assert await admin.smembers(prefixes) == {b"str-auto"}
    await admin.delete(box.marker_key, prefixes)  # expired, as after its retention
    await deliver(box, "again")
    assert await admin.smembers(prefixes) == {b"str-auto"}


@pytest.mark.also_on_cluster
@pytest.mark.usefixtures("bus_url")
async def test_a_refused_input_leaves_its_key_free() -> None:
    run = await new_run()
    receivers = key_names.run_receivers(str(run.id))
    shirts = run_input_subclass_from_type(ShirtOrder)
    await get_bus().client.hset(receivers, PREFIX, schema_json(shirts))
    with pytest.raises(InputRejected):
        await send_input(RawInput(size="huge"), flow_run_id=run.id, key_prefix=PREFIX, key="k-1")
    assert not await get_bus().client.sismember(key_names.input_keys(str(run.id)), "k-1")
    good = ShirtOrder(size="large", color="red")
    await send_input(good, flow_run_id=run.id, key="k-1")  # stored, not "already there"
    inputs = await get_client().read_inputs(run.id)
    assert [(i["key"], i["data"]) for i in inputs] == [("k-1", {"size": "large", "color": "red"})]
    assert [e["key"] for e in await received_events(run.id)] == ["k-1"]


@pytest.mark.also_on_cluster
@pytest.mark.usefixtures("bus_url")
async def test_a_key_twice_in_one_batch_is_stored_once() -> None:
    run = await new_run()
    keys = await send_inputs(["a", "b", "c"], flow_run_id=run.id, keys=["k-1", "k-2", "k-1"])
    assert keys == ["k-1", "k-2", "k-1"]
    inputs = await get_client().read_inputs(run.id)
    assert [(i["key"], i["data"]) for i in inputs] == [
        ("k-1", {"value": "a"}),
        ("k-2", {"value": "b"}),
    ]
    assert [e["key"] for e in await received_events(run.id)] == ["k-1", "k-2"]


@pytest.mark.usefixtures("bus_url")
async def test_a_batch_past_one_command_slice_keeps_every_promise() -> None:
    """More inputs than the script puts in one SMISMEMBER, SADD or HSET."""
    run = await new_run()
    values = [f"v{i}" for i in range(2300)]
    keys = await send_inputs(values, flow_run_id=run.id)
    run_id = str(run.id)
    client = get_bus().client
    assert await client.scard(key_names.input_keys(run_id)) == len(values)
    assert await client.hlen(key_names.input_index(run_id)) == len(values)
    assert await client.smembers(key_names.input_streams(run_id)) == {b"str-auto"}
    stream = key_names.input_stream(run_id, "str-auto")
    entries = await client.xrange(stream)
    assert [fields[b"key"].decode() for _, fields in entries] == keys
    index = await client.hmget(key_names.input_index(run_id), keys[0], keys[-1])
    assert index == [
        entries[0][0] + b" str-auto",
        entries[-1][0] + b" str-auto",
    ]
    received = await client.xrange(key_names.run_events(run_id))
    assert [
        json.loads(fields[b"data"])["key"]
        for _, fields in received
        if fields[b"type"] == b"input.received"
    ] == keys
    assert await send_inputs(values, flow_run_id=run.id, keys=keys) == keys  # all there
    assert await client.xlen(stream) == len(values)


@pytest.mark.also_on_cluster
@pytest.mark.usefixtures("bus_url")
async def test_the_event_carries_a_sender_that_needs_escaping() -> None:
    run = await new_run()
    sender = 'a "quoted" / slashed \\ ünïcode sender'
    await send_input("one", flow_run_id=run.id, sender=sender, key="k-1")
    await send_inputs(["two"], flow_run_id=run.id, sender=sender, keys=["k-2"])
    expected = [
        {"key": "k-1", "key_prefix": "str-auto", "sender": sender},
        {"key": "k-2", "key_prefix": "str-auto", "sender": sender},
    ]
    assert await received_events(run.id) == expected
    assert await global_received(run.id) == expected  # in Cluster it follows the script


def test_commands_are_packed_to_the_same_bytes_with_the_same_errors() -> None:
    packer = lean(Connection)()
    plain = Connection()
    for command in [
        ("EVALSHA", "a" * 40, 2, "k1", "k2", b"\x00\xff", 0, -7, 1.5, 10**20, "é"),
        ("CONFIG GET", "maxmemory"),  # a name with a space: split as redis-py does
        ("SET", "k", memoryview(b"v")),
        ("SET", "k", bytearray(b"v")),
    ]:
        assert b"".join(packer.pack_command(*command)) == b"".join(
            bytes(part) for part in plain.pack_command(*command)
        )
    for bad in (True, None, [1]):
        with pytest.raises(DataError):
            packer.pack_command("SET", "k", bad)


@pytest.mark.realredis
async def test_callers_queue_for_the_command_connections(
    real_redis_url: str, admin: aioredis.Redis
) -> None:
    async def waited() -> int:
        """Connections whose last command was the BLPOP (no other test sends one)."""
        return sum(1 for c in await admin.client_list() if c.get("cmd") == "blpop")

    client = open_command_client(real_redis_url, max_connections=2)
    try:
        waits = (client.execute_command("BLPOP", "nothing-here", 0.05) for _ in range(6))
        assert await asyncio.gather(*waits) == [None] * 6
        assert await waited() == 2
        assert len(await asyncio.gather(*(client.ping() for _ in range(50)))) == 50
    finally:
        await client.aclose()


async def test_a_failed_connect_gives_its_permit_back_once() -> None:
    """redis-py releases a connection it could not connect; the permit is not doubled."""
    client = open_command_client(f"redis://127.0.0.1:{free_port()}/0", max_connections=1)
    try:
        for _ in range(3):
            with pytest.raises(BusConnectionError):
                await client.ping()
        permits = client.connection_pool._free
        await permits.acquire()
        assert permits.locked()  # the one permit there is, and no more
        permits.release()
    finally:
        await client.aclose()
