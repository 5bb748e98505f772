"""``send_inputs``: many inputs to one run in one step, with ``send_input``'s guarantees."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from hitl_bus import (
    asend_inputs,
    flow,
    get_client,
    receive_input,
    send_input,
    send_inputs,
    start_flow_run,
)
from hitl_bus import keys as key_names
from hitl_bus.bus import get_bus
from hitl_bus.errors import FlowRunNotFound, InputRejected
from hitl_bus.inputs.run_input import RawInput
from tests.faults import ReplyLosingProxy
from tests.helpers import eventually, greeter, new_run
from tests.models import ShirtOrder, UserName

PREFIX = ShirtOrder.default_key_prefix()
WORDS = [f"word-{i}" for i in range(25)]


GOT: dict[str, list[str]] = {}  # what each flow below received, by the name it was given


@flow
async def collects(n: int, name: str) -> None:
    words = receive_input(str, timeout=30)
    GOT[name] = [await words.next() for _ in range(n)]


@flow
async def orders(n: int, name: str) -> None:
    received = receive_input(ShirtOrder, timeout=30)
    GOT[name] = [f"{o.size} {o.color}" for o in [await received.next() for _ in range(n)]]


async def stored(run_id: Any) -> list[tuple[str, Any]]:
    """(key prefix, data) of every input the run has, oldest first within each prefix."""
    return [(i["key_prefix"], i["data"]) for i in await get_client().read_inputs(run_id, 1000)]


async def receiving(run_id: Any, prefix: str) -> None:
    async def announced() -> bool:
        return prefix in await get_client().read_receivers(run_id)

    await eventually(announced)


@pytest.mark.also_on_cluster
@pytest.mark.usefixtures("bus_url")
async def test_a_waiting_receiver_gets_the_whole_batch_in_order() -> None:
    name = uuid.uuid4().hex
    run = await start_flow_run(collects, n=len(WORDS), name=name)
    await receiving(run.id, "str-auto")
    sent = await send_inputs(WORDS, flow_run_id=run.id)
    assert len(sent) == len(set(sent)) == len(WORDS)
    assert all(key.startswith("str-auto-") for key in sent)
    finished = await get_client().wait_for_flow_run(run.id, timeout=20)
    assert finished.state.is_completed()
    assert GOT[name] == WORDS
    events = [e for e in await get_client().read_events(run.id) if e["type"] == "input.received"]
    assert [e["data"]["key"] for e in events] == sent


@pytest.mark.also_on_cluster
@pytest.mark.usefixtures("bus_url")
async def test_values_models_and_run_inputs_mix_in_one_batch() -> None:
    run = await new_run()
    keys = await asend_inputs(
        [3, ShirtOrder(size="large", color="red"), "hi", UserName(name="Ada"), 4],
        run.id,
        keys=[None, "order-1", None, None, None],
    )
    assert keys[1] == "order-1"
    by_prefix: dict[str, list[Any]] = {}
    for prefix, data in await stored(run.id):
        by_prefix.setdefault(prefix, []).append(data)
    assert by_prefix == {
        "int-auto": [{"value": 3}, {"value": 4}],  # the order given, per stream
        PREFIX: [{"size": "large", "color": "red"}],
        "str-auto": [{"value": "hi"}],
        "username-auto": [{"name": "Ada"}],
    }
    prefixed = await send_inputs(["x", "y"], flow_run_id=run.id, key_prefix="letters")
    assert all(key.startswith("letters-") for key in prefixed)
    assert [d for p, d in await stored(run.id) if p == "letters"] == [
        {"value": "x"},
        {"value": "y"},
    ]


@pytest.mark.also_on_cluster
@pytest.mark.usefixtures("bus_url")
async def test_a_batch_sent_again_with_its_keys_is_stored_once() -> None:
    run = await new_run()
    keys = ["w-1", "w-2", "w-3"]
    assert await send_inputs(["a", "b", "c"], flow_run_id=run.id, keys=keys) == keys
    assert await send_inputs(["a", "b", "c"], flow_run_id=run.id, keys=keys) == keys
    # a key already there is skipped; the rest of the batch is stored
    await send_inputs(["c", "d"], flow_run_id=run.id, keys=["w-3", "w-4"])
    assert await stored(run.id) == [("str-auto", {"value": v}) for v in "abcd"]
    events = [e for e in await get_client().read_events(run.id) if e["type"] == "input.received"]
    assert [e["data"]["key"] for e in events] == ["w-1", "w-2", "w-3", "w-4"]


@pytest.mark.also_on_cluster
@pytest.mark.usefixtures("bus_url")
async def test_one_input_refused_by_the_schema_refuses_the_batch() -> None:
    name = uuid.uuid4().hex
    run = await start_flow_run(orders, n=2, name=name)
    await receiving(run.id, PREFIX)
    good = RawInput(size="large", color="red")
    # The first time this process sees the schema (the script hands it over), then known.
    for attempt in range(2):
        with pytest.raises(InputRejected) as refused:
            await send_inputs(
                [good, good, RawInput(size="huge", color="red"), good],
                flow_run_id=run.id,
                key_prefix=PREFIX,
            )
        assert refused.value.index == 2, attempt
        assert refused.value.key_prefix == PREFIX
        assert {tuple(e["loc"]) for e in refused.value.errors} == {("size",)}
        assert str(refused.value).startswith("input 2 of the batch: ")
        assert await stored(run.id) == []  # nothing of the batch
        events = await get_client().read_events(run.id)
        assert not [e for e in events if e["type"] == "input.received"]
    await send_inputs([good, RawInput(size="small", color="black")], run.id, key_prefix=PREFIX)
    finished = await get_client().wait_for_flow_run(run.id, timeout=20)
    assert finished.state.is_completed()
    assert GOT[name] == ["large red", "small black"]


@pytest.mark.usefixtures("bus_url")
async def test_a_batch_is_checked_again_when_the_receivers_schema_changes() -> None:
    run = await new_run()
    bus = get_bus()
    receivers = key_names.run_receivers(str(run.id))
    await bus.client.hset(receivers, "n", '{"type": "object", "required": ["value"]}')
    await send_inputs([RawInput(value=1)], run.id, key_prefix="n")  # the schema is known now
    await bus.client.hset(
        receivers,
        "n",
        '{"type": "object", "properties": {"value": {"type": "integer"}}}',
    )
    with pytest.raises(InputRejected) as refused:
        await send_inputs([RawInput(value=2), RawInput(value="two")], run.id, key_prefix="n")
    assert refused.value.index == 1
    assert [d for _, d in await stored(run.id)] == [{"value": 1}]


@pytest.mark.usefixtures("bus_url")
async def test_the_batch_needs_a_run_and_one_key_per_input() -> None:
    with pytest.raises(FlowRunNotFound):
        await send_inputs(["a"], flow_run_id="00000000-0000-0000-0000-000000000000")
    run = await new_run()
    with pytest.raises(ValueError, match="2 keys for 1 inputs"):
        await send_inputs(["a"], flow_run_id=run.id, keys=["k-1", "k-2"])
    assert await send_inputs([], flow_run_id=run.id) == []
    assert await stored(run.id) == []


@pytest.mark.also_on_cluster
@pytest.mark.usefixtures("bus_url")
async def test_replies_to_a_batch_from_a_script_reach_its_inbox() -> None:
    run = await start_flow_run(greeter)
    await receiving(run.id, "str-auto")
    replies = receive_input(str, timeout=10)
    await send_inputs(["Ada", "Bob"], flow_run_id=run.id)
    assert [await replies.next(), await replies.next()] == ["Hello, Ada!", "Hello, Bob!"]
    await send_input("exit", flow_run_id=run.id)
    assert (await get_client().wait_for_flow_run(run.id, timeout=10)).state.is_completed()


@pytest.mark.usefixtures("bus_url")
def test_the_sync_face_blocks_until_stored() -> None:
    async def make() -> Any:
        return await new_run()

    from hitl_bus._sync import run_blocking

    run = run_blocking(make())
    keys = send_inputs(["a", "b"], flow_run_id=run.id)
    assert len(keys) == 2

    async def read() -> list[tuple[str, Any]]:
        return await stored(run.id)

    assert run_blocking(read()) == [("str-auto", {"value": "a"}), ("str-auto", {"value": "b"})]


@pytest.fixture
async def proxy(
    real_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ReplyLosingProxy]:
    port = redis.Redis.from_url(real_redis_url).connection_pool.connection_kwargs["port"]
    losing = await ReplyLosingProxy(port).start()
    monkeypatch.setenv("HITL_BUS_REDIS_URL", losing.url)
    yield losing
    await losing.aclose()


async def test_a_batch_whose_reply_was_lost_is_retried_and_stored_once(
    proxy: ReplyLosingProxy,
) -> None:
    run = await new_run()
    await send_inputs(["warm-up"], flow_run_id=run.id)  # the script is loaded now
    before = proxy.seen[b"EVALSHA"]
    proxy.arm(b"EVALSHA")
    await send_inputs(["one", "two", "three"], flow_run_id=run.id)  # the retry: applied
    assert proxy.lost  # Redis had stored the batch
    assert proxy.seen[b"EVALSHA"] - before == 2  # the lost call and its retry
    assert [d["value"] for _, d in await stored(run.id)] == ["warm-up", "one", "two", "three"]
