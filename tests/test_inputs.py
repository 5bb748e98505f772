"""The seed's send/receive/respond scenarios, on fakeredis, a real redis-server and the Cluster."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

import pytest
import redis.asyncio as aioredis
from pydantic import BaseModel, ValidationError

from hitl_bus import (
    RunInput,
    flow,
    get_client,
    receive_input,
    send_input,
    start_flow_run,
)
from hitl_bus import keys as key_names
from hitl_bus.bus import get_bus
from hitl_bus.errors import FlowRunNotFound, PayloadTooLarge, ReceiveTimeout
from hitl_bus.inputs.inbox import inbox
from hitl_bus.inputs.messaging import deliver
from tests.helpers import greeter, new_run, until_waiting

pytestmark = [pytest.mark.usefixtures("bus_url"), pytest.mark.also_on_cluster]

KEY_RE = re.compile(r"^[a-z0-9-]+$")


class GreeterInput(RunInput):
    name: str


async def test_receive_all_inputs_oldest_first() -> None:
    run = await new_run()
    for name in ["ada", "bob", "cy"]:
        await send_input(name, flow_run_id=run.id)
    got = [value async for value in receive_input(str, flow_run_id=run.id, timeout=0.2)]
    assert got == ["ada", "bob", "cy"]


async def test_with_metadata_carries_key_sender_and_receiver() -> None:
    run = await new_run()
    await send_input("ada", flow_run_id=str(run.id), sender="hitl.flow-run.not-a-run")
    msg = await receive_input(str, flow_run_id=run.id, with_metadata=True, timeout=1).next()
    assert msg.value == "ada"
    assert msg.metadata.key.startswith("str-auto-")
    assert KEY_RE.match(msg.metadata.key)
    assert msg.metadata.sender == "hitl.flow-run.not-a-run"
    assert msg.metadata.receiver == run.id  # the receiving run's UUID, as in Prefect


async def test_exclude_keys_skips_seen_inputs() -> None:
    run = await new_run()
    for name in ["ada", "bob", "cy"]:
        await send_input(name, flow_run_id=run.id)
    seen = [
        m.metadata.key
        async for m in receive_input(str, flow_run_id=run.id, with_metadata=True, timeout=0.2)
    ]
    await send_input("dee", flow_run_id=run.id)
    rest = [
        v async for v in receive_input(str, flow_run_id=run.id, exclude_keys=seen[:2], timeout=0.2)
    ]
    assert rest == ["cy", "dee"]


async def test_type_mismatch_is_not_delivered_but_waits_for_its_type() -> None:
    run = await new_run()
    await send_input("just a string", flow_run_id=run.id)
    await send_input(GreeterInput(name="ada"), flow_run_id=run.id)
    typed = [m async for m in receive_input(GreeterInput, flow_run_id=run.id, timeout=0.2)]
    assert [m.name for m in typed] == ["ada"]
    strings = [v async for v in receive_input(str, flow_run_id=run.id, timeout=0.2)]
    assert strings == ["just a string"]


async def test_base_model_is_upgraded_and_matches_by_class_name() -> None:
    class Point(BaseModel):
        x: int
        y: int

    run = await new_run()
    await send_input(Point(x=1, y=2), flow_run_id=run.id)
    got = await receive_input(Point, flow_run_id=run.id, timeout=1).next()
    assert isinstance(got, RunInput) and isinstance(got, Point)
    assert (got.x, got.y) == (1, 2)


async def test_timeout_ends_iteration_quietly() -> None:
    run = await new_run()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert [v async for v in receive_input(str, flow_run_id=run.id, timeout=0.2)] == []
    assert loop.time() - started < 5


async def test_raise_timeout_error_raises_timeout_error() -> None:
    run = await new_run()
    with pytest.raises(TimeoutError):
        async for _ in receive_input(
            str, flow_run_id=run.id, timeout=0.1, raise_timeout_error=True
        ):
            pass


async def test_next_always_raises_on_timeout() -> None:
    run = await new_run()
    with pytest.raises(ReceiveTimeout):
        await receive_input(str, flow_run_id=run.id, timeout=0.1).next()


async def test_next_waits_for_one_input() -> None:
    run = await new_run()
    receiver = receive_input(int, flow_run_id=run.id, timeout=5)
    waiting = asyncio.create_task(receiver.next())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await send_input(42, flow_run_id=run.id)
    assert await waiting == 42


async def test_push_wakes_a_waiting_receiver_without_polling() -> None:
    run = await new_run()
    receiver = receive_input(str, flow_run_id=run.id, poll_interval=3600, timeout=None)
    waiting = asyncio.create_task(receiver.next())
    await asyncio.sleep(0.2)  # the receiver is parked on the dispatcher now
    await send_input("ping", flow_run_id=run.id)
    async with asyncio.timeout(1.0):
        assert await waiting == "ping"


async def test_respond_reaches_a_sender_outside_any_run() -> None:
    run = await start_flow_run(greeter)
    replies = receive_input(str, timeout=5)  # outside a run: this process's inbox
    await send_input("Ada", flow_run_id=run.id)
    assert await replies.next() == "Hello, Ada!"
    await send_input("Bob", flow_run_id=run.id)
    assert await replies.next() == "Hello, Bob!"
    await send_input("exit", flow_run_id=run.id)
    assert replies.mailbox == inbox()


async def test_respond_between_two_runs() -> None:
    @flow
    async def sender(names: list[str]) -> list[str]:
        run = await start_flow_run(greeter)
        replies = receive_input(str, timeout=5)
        out = []
        for name in names:
            await send_input(name, flow_run_id=run.id)
            out.append(await replies.next())
        await send_input("exit", flow_run_id=run.id)
        return out

    assert await sender(["Ada", "Bob"]) == ["Hello, Ada!", "Hello, Bob!"]


async def test_invalid_input_raises_once_then_is_skipped() -> None:
    run = await new_run()
    await send_input("not a number", flow_run_id=run.id, key_prefix="int-auto")
    await send_input(7, flow_run_id=run.id)
    receiver = receive_input(int, flow_run_id=run.id, timeout=0.5)
    with pytest.raises(ValidationError):
        await receiver.next()
    assert await receiver.next() == 7


async def test_corrupt_entries_are_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    run = await new_run()
    await send_input(1, flow_run_id=run.id)
    stream = key_names.input_stream(str(run.id), "int-auto")
    client = get_bus().client
    await client.xadd(stream, {"key": "int-auto-x", "sender": "someone", "data": b"{not json"})
    await client.xadd(stream, {"garbage": "1"})
    await send_input(2, flow_run_id=run.id)
    with caplog.at_level(logging.WARNING, logger="hitl_bus.inputs"):
        got = [v async for v in receive_input(int, flow_run_id=run.id, timeout=0.2)]
    assert got == [1, 2]
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 2


async def test_unknown_and_malformed_run_ids_are_rejected() -> None:
    with pytest.raises(FlowRunNotFound):
        await send_input("x", flow_run_id=uuid.uuid4())
    with pytest.raises(FlowRunNotFound, match="not a flow run id"):
        await send_input("x", flow_run_id="}bad{")
    with pytest.raises(FlowRunNotFound):
        await receive_input(str, flow_run_id=uuid.uuid4(), timeout=0.1).next()


async def test_payload_over_the_limit_is_refused_and_nothing_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HITL_BUS_MAX_PAYLOAD_BYTES", "100")
    run = await new_run()
    await send_input("small", flow_run_id=run.id)
    with pytest.raises(PayloadTooLarge):
        await send_input("x" * 200, flow_run_id=run.id)
    await send_input("also small", flow_run_id=run.id)
    got = [v async for v in receive_input(str, flow_run_id=run.id, timeout=0.2)]
    assert got == ["small", "also small"]


async def test_default_limit_is_one_mebibyte() -> None:
    run = await new_run()
    with pytest.raises(PayloadTooLarge) as info:
        await send_input("x" * (1024 * 1024), flow_run_id=run.id)
    assert info.value.limit == 1024 * 1024


async def test_durable_consumer_continues_where_it_stopped() -> None:
    run = await new_run()
    for n in [1, 2, 3]:
        await send_input(n, flow_run_id=run.id)
    first = receive_input(int, flow_run_id=run.id, consumer="worker", timeout=0.2)
    assert await first.next() == 1
    assert await first.next() == 2  # moving past 1 acknowledged it; 2 is not yet
    # A restart: a new receiver with the same consumer name.
    again = receive_input(int, flow_run_id=run.id, consumer="worker", timeout=0.2)
    assert await again.next() == 2
    assert await again.next() == 3
    # Another restart before moving past 3: it comes again, then what is new.
    await send_input(4, flow_run_id=run.id)
    third = receive_input(int, flow_run_id=run.id, consumer="worker", timeout=0.2)
    assert [v async for v in third] == [3, 4]
    # Iterating to the end moved past everything.
    assert [
        v async for v in receive_input(int, flow_run_id=run.id, consumer="worker", timeout=0.2)
    ] == []


async def test_durable_consumer_wakes_on_push() -> None:
    run = await new_run()
    receiver = receive_input(str, flow_run_id=run.id, consumer="c", timeout=None)
    waiting = asyncio.create_task(receiver.next())
    await asyncio.sleep(0.1)
    await send_input("hello", flow_run_id=run.id)
    async with asyncio.timeout(1.0):
        assert await waiting == "hello"


async def test_many_receivers_on_one_stream_each_get_everything() -> None:
    run = await new_run()
    receivers = [receive_input(int, flow_run_id=run.id, timeout=2) for _ in range(5)]
    tasks = [asyncio.create_task(r.next()) for r in receivers]
    await asyncio.sleep(0.05)
    await send_input(5, flow_run_id=run.id)
    assert await asyncio.gather(*tasks) == [5] * 5


async def test_input_arrival_is_an_event() -> None:
    run = await new_run()
    await send_input("ada", flow_run_id=run.id)
    events = await get_client().read_events(run.id)
    arrivals = [e for e in events if e["type"] == "input.received"]
    assert len(arrivals) == 1
    assert arrivals[0]["data"]["key_prefix"] == "str-auto"


async def test_resending_the_same_key_is_idempotent() -> None:
    from hitl_bus.inputs.keyset import Mailbox
    from hitl_bus.inputs.messaging import deliver

    run = await new_run()
    target = Mailbox.for_run(run.id)
    await deliver(target, "once", key="str-auto-fixed")
    await deliver(target, "once", key="str-auto-fixed")
    assert [v async for v in receive_input(str, flow_run_id=run.id, timeout=0.2)] == ["once"]


async def test_raw_stream_shape_is_plain_json() -> None:
    run = await new_run()
    await send_input({"a": 1}, flow_run_id=run.id)
    entries = await get_bus().client.xrange(key_names.input_stream(str(run.id), "dict-auto"))
    ((_, fields),) = entries
    assert fields[b"data"] == b'{"value":{"a":1}}'
    assert fields[b"sender"].startswith(b"hitl.client.")


async def test_zero_timeout_takes_what_is_there_without_waiting() -> None:
    run = await new_run()
    assert [v async for v in receive_input(int, flow_run_id=run.id, timeout=0)] == []
    for n in [1, 2]:
        await send_input(n, flow_run_id=run.id)
    assert [v async for v in receive_input(int, flow_run_id=run.id, timeout=0)] == [1, 2]
    grouped = receive_input(int, flow_run_id=run.id, timeout=0, consumer="zero")
    assert [v async for v in grouped] == [1, 2]
    with pytest.raises(ReceiveTimeout):
        await receive_input(int, flow_run_id=run.id, timeout=0, consumer="zero").next()


async def test_a_send_repeated_with_its_key_is_stored_once() -> None:
    run = await new_run()
    for _ in range(3):  # the application retries, not knowing whether the first one landed
        assert await send_input("order", flow_run_id=run.id, key="order-42") is None
    await send_input("other", flow_run_id=run.id, key="order-43")
    got = receive_input(str, flow_run_id=run.id, timeout=0, with_metadata=True)
    assert [(i.value, i.metadata.key) async for i in got] == [
        ("order", "order-42"),
        ("other", "order-43"),
    ]
    events = await get_client().read_events(run.id)
    assert len([e for e in events if e["type"] == "input.received"]) == 2


@pytest.mark.parametrize(
    "key", ["Order-42", "order 42", "order--42", "-order", "order_42", "", "x" * 201]
)
async def test_an_input_key_of_the_wrong_shape_is_refused(key: str) -> None:
    run = await new_run()
    with pytest.raises(ValueError, match="input key"):
        await send_input("order", flow_run_id=run.id, key=key)
    assert [v async for v in receive_input(str, flow_run_id=run.id, timeout=0)] == []


async def test_a_reply_repeated_with_its_key_is_stored_once() -> None:
    @flow
    async def answers_twice() -> None:
        async for msg in receive_input(str, with_metadata=True, timeout=5):
            for _ in range(2):
                await msg.respond(f"Hello, {msg.value}!", key=f"reply-to-{msg.metadata.key}")
            return

    run = await start_flow_run(answers_twice)
    await send_input("Ada", flow_run_id=run.id, key="ada")
    replies = receive_input(str, timeout=5, with_metadata=True)
    first = await replies.next()
    assert (first.value, first.metadata.key) == ("Hello, Ada!", "reply-to-ada")
    assert [r async for r in receive_input(str, timeout=0.3)] == ["Hello, Ada!"]


@pytest.mark.realredis
async def test_flushed_redis_recreates_a_consumer_group_on_demand(admin: aioredis.Redis) -> None:
    receiver = receive_input(int, consumer="c", timeout=5)  # on this process's inbox
    await deliver(inbox(), 1)
    assert await receiver.next() == 1
    await admin.flushall()
    waiting = asyncio.create_task(receiver.next())
    await until_waiting(1)
    await deliver(inbox(), 2)
    async with asyncio.timeout(5):
        assert await waiting == 2
