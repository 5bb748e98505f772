"""Prefect's input API, as its documentation describes it: metadata, load, the async twins,
respond, the receiver's pull interface and ``prefect.input.actions``."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from hitl_bus import (
    RunInput,
    flow,
    get_client,
    keyset_from_base_key,
    pause_flow_run,
    receive_input,
    resume_flow_run,
    send_input,
    start_flow_run,
)
from hitl_bus import keys as key_names
from hitl_bus.bus import get_bus
from hitl_bus.context import current_run_id
from hitl_bus.engine import store
from hitl_bus.engine.states import State, StateType
from hitl_bus.errors import (
    FlowRunNotFound,
    InputNotFound,
    MissingContextError,
    NotAnswerable,
    ObjectAlreadyExists,
    ReceiveTimeout,
)
from hitl_bus.inputs import (
    FlowRunInput,
    RunInputMetadata,
    acreate_flow_run_input,
    acreate_flow_run_input_from_model,
    adelete_flow_run_input,
    afilter_flow_run_input,
    aread_flow_run_input,
    create_flow_run_input,
    delete_flow_run_input,
    filter_flow_run_input,
    read_flow_run_input,
    run_input_subclass_from_type,
)
from hitl_bus.inputs.inbox import inbox, touch
from hitl_bus.inputs.messaging import deliver
from hitl_bus.inputs.values import acreate_value
from tests.helpers import eventually, new_run
from tests.models import UserName

pytestmark = [pytest.mark.usefixtures("bus_url"), pytest.mark.also_on_cluster]


class Approval(RunInput):
    approved: bool = False
    note: str = ""


def _new_run_id() -> str:
    async def make() -> str:
        return str((await new_run()).id)

    return asyncio.run(make())


# -- 1. RunInputMetadata ------------------------------------------------------------------


async def test_metadata_receiver_is_the_receiving_runs_uuid_and_sender_keeps_its_name() -> None:
    run = await new_run()
    await send_input("ada", flow_run_id=run.id, sender="hitl.client.not-an-inbox")
    msg = await receive_input(str, flow_run_id=run.id, with_metadata=True, timeout=1).next()
    assert isinstance(msg.metadata.receiver, uuid.UUID)
    assert msg.metadata.receiver == run.id
    assert msg.metadata.sender == "hitl.client.not-an-inbox"
    assert RunInputMetadata(key="k", receiver=run.id).sender is None  # sender is optional


async def test_an_inbox_receivers_metadata_names_the_inbox_uuid() -> None:
    box = inbox()
    await touch(get_bus())  # the inbox exists once used
    await deliver(box, "reply", sender=f"hitl.flow-run.{uuid.uuid4()}")
    msg = await receive_input(str, with_metadata=True, timeout=1).next()  # outside any run
    assert msg.value == "reply"
    assert msg.metadata.receiver == uuid.UUID(box.id)


# -- 2. RunInput.load, AutomaticRunInput.load, load_from_flow_run_input --------------------


async def test_load_returns_the_response_with_its_metadata() -> None:
    run = await new_run()
    keyset = keyset_from_base_key("pause-7")
    await acreate_flow_run_input(keyset["response"], {"name": "Ada"}, flow_run_id=run.id)
    loaded = await UserName.aload(keyset, flow_run_id=run.id)
    assert loaded.name == "Ada"
    assert loaded.metadata == RunInputMetadata(key="pause-7-response", sender=None, receiver=run.id)


async def test_load_with_nothing_or_an_empty_response_saved_builds_the_defaults() -> None:
    run = await new_run()
    nothing = await Approval.aload(keyset_from_base_key("none"), flow_run_id=run.id)
    assert (nothing.approved, nothing.note) == (False, "")
    assert nothing.metadata.key == "none-response"
    await acreate_flow_run_input("empty-response", {}, flow_run_id=run.id)
    empty = await Approval.aload(keyset_from_base_key("empty"), flow_run_id=run.id)
    assert empty.model_dump() == {"approved": False, "note": ""}
    with pytest.raises(InputNotFound, match="none-response") as caught:
        await UserName.aload(keyset_from_base_key("none"), flow_run_id=run.id)
    assert isinstance(caught.value, LookupError)


async def test_an_automatic_inputs_load_returns_the_plain_value() -> None:
    run = await new_run()
    await acreate_flow_run_input("count-response", {"value": 5}, flow_run_id=run.id)
    int_input = run_input_subclass_from_type(int)
    assert await int_input.aload(keyset_from_base_key("count"), flow_run_id=run.id) == 5


async def test_load_outside_a_run_without_a_run_id_is_a_runtime_error() -> None:
    with pytest.raises(MissingContextError) as caught:
        await UserName.aload(keyset_from_base_key("x"))
    assert isinstance(caught.value, RuntimeError)


async def test_load_from_flow_run_input_carries_the_records_key_sender_and_run() -> None:
    run = await new_run()
    await acreate_flow_run_input_from_model(
        "who-1", UserName(name="Ada"), flow_run_id=run.id, sender="hitl.client.x"
    )
    (record,) = await afilter_flow_run_input("who-", flow_run_id=run.id)
    loaded = UserName.load_from_flow_run_input(record)
    assert loaded.name == "Ada"
    assert loaded.metadata == RunInputMetadata(key="who-1", sender="hitl.client.x", receiver=run.id)


# -- 3. The async twins and the sync faces -------------------------------------------------


async def test_async_twins_save_load_send_to_and_respond() -> None:
    asker, answerer = await new_run(), await new_run()
    keyset = keyset_from_base_key("ask")
    await UserName.with_initial_data(description="Who?").asave(keyset, flow_run_id=asker.id)
    assert await aread_flow_run_input("ask-description", flow_run_id=asker.id) == "Who?"
    await UserName(name="Ada").asend_to(answerer.id, sender=f"hitl.flow-run.{asker.id}")
    got = await UserName.receive(flow_run_id=answerer.id, timeout=1).anext()
    await got.arespond("hello Ada")
    reply = await receive_input(str, flow_run_id=asker.id, timeout=1).anext()
    assert reply == "hello Ada"
    await acreate_flow_run_input("ask-response", {"name": "Bo"}, flow_run_id=asker.id)
    assert (await UserName.aload(keyset, flow_run_id=asker.id)).name == "Bo"


def test_the_plain_faces_block_in_sync_code() -> None:
    asker, answerer = _new_run_id(), _new_run_id()
    keyset = keyset_from_base_key("sync")
    UserName.save(keyset, flow_run_id=asker)
    UserName(name="Ada").send_to(answerer, sender=f"hitl.flow-run.{asker}")
    got = UserName.receive(flow_run_id=answerer, timeout=1).next()
    got.respond("hi")
    assert receive_input(str, flow_run_id=asker, timeout=1).next() == "hi"
    create_flow_run_input("sync-response", {"name": "Cy"}, flow_run_id=asker)
    assert UserName.load(keyset, flow_run_id=asker).name == "Cy"
    assert read_flow_run_input("sync-response", flow_run_id=asker) == {"name": "Cy"}
    assert [r.key for r in filter_flow_run_input("sync-", limit=5, flow_run_id=asker)] == [
        "sync-schema",
        "sync-response",
    ]
    delete_flow_run_input("sync-response", flow_run_id=asker)
    assert read_flow_run_input("sync-response", flow_run_id=asker) is None


# -- 4. respond to an input that cannot be answered ----------------------------------------


async def test_respond_to_an_input_without_an_answerable_sender_is_a_runtime_error() -> None:
    run = await new_run()
    await acreate_flow_run_input("q-response", {"name": "Ada"}, flow_run_id=run.id)
    loaded = await UserName.aload(keyset_from_base_key("q"), flow_run_id=run.id)
    with pytest.raises(RuntimeError):  # no sender: it was loaded, not sent
        await loaded.arespond("hi")
    await send_input("x", flow_run_id=run.id, sender="someone-else")
    msg = await receive_input(str, flow_run_id=run.id, with_metadata=True, timeout=1).anext()
    with pytest.raises(NotAnswerable, match="someone-else") as caught:
        await msg.respond("hi")
    assert isinstance(caught.value, RuntimeError)


# -- 5. The receiver: anext, filter_for_inputs, to_instance --------------------------------


async def test_anext_gives_the_next_input_and_raises_receive_timeout_when_none_comes() -> None:
    run = await new_run()
    receiver = receive_input(str, flow_run_id=run.id, timeout=0.1)
    await send_input("a", flow_run_id=run.id)
    assert await receiver.anext() == "a"
    with pytest.raises(ReceiveTimeout) as caught:
        await receiver.anext()
    assert isinstance(caught.value, TimeoutError)


async def test_filter_for_inputs_takes_one_unseen_input_at_a_time_oldest_first() -> None:
    run = await new_run()
    for name in ["ada", "bob", "cy"]:
        await send_input(name, flow_run_id=run.id)
    first = await receive_input(str, flow_run_id=run.id, with_metadata=True, timeout=1).next()
    receiver = receive_input(str, flow_run_id=run.id, exclude_keys=[first.metadata.key])
    (bob,) = await receiver.filter_for_inputs()
    assert isinstance(bob, FlowRunInput)
    assert bob.decoded_value == {"value": "bob"}
    assert bob.flow_run_id == run.id and bob.key.startswith("str-auto-")
    assert bob.key in receiver.exclude_keys
    assert receiver.to_instance(bob) == "bob"
    assert await receiver.anext() == "cy"  # next() goes on after what the filter took
    assert await receiver.filter_for_inputs() == []  # nothing waits, nothing is left
    await send_input("dee", flow_run_id=run.id)
    (dee,) = await receiver.filter_for_inputs()
    assert dee.decoded_value == {"value": "dee"}


async def test_to_instance_of_a_receiver_with_metadata_keeps_the_wrapper() -> None:
    run = await new_run()
    await send_input("ada", flow_run_id=run.id, sender="hitl.client.x")
    receiver = receive_input(str, flow_run_id=run.id, with_metadata=True)
    (record,) = await receiver.filter_for_inputs()
    wrapped = receiver.to_instance(record)
    assert wrapped.value == "ada"
    assert wrapped.metadata == RunInputMetadata(
        key=record.key, sender="hitl.client.x", receiver=run.id
    )


def test_filter_for_inputs_sync_blocks_in_sync_code() -> None:
    run_id = _new_run_id()
    send_input(1, flow_run_id=run_id)
    receiver = receive_input(int, flow_run_id=run_id)
    (record,) = receiver.filter_for_inputs_sync()
    assert receiver.to_instance(record) == 1
    assert receiver.filter_for_inputs_sync() == []


# -- 6. prefect.input.actions --------------------------------------------------------------


async def test_create_then_read_gives_the_value_and_a_missing_key_reads_none() -> None:
    run = await new_run()
    await acreate_flow_run_input("answer", {"n": [1, 2]}, flow_run_id=run.id)
    assert await aread_flow_run_input("answer", flow_run_id=run.id) == {"n": [1, 2]}
    assert await aread_flow_run_input("nothing", flow_run_id=run.id) is None


async def test_a_key_must_be_lowercase_letters_digits_and_dashes() -> None:
    run = await new_run()
    for bad in ["Upper", "with_underscore", "sp ace", ""]:
        with pytest.raises(ValueError, match=repr(bad)):
            await acreate_flow_run_input(bad, 1, flow_run_id=run.id)
    await acreate_flow_run_input("a--b-", 1, flow_run_id=run.id)  # Prefect's rule allows these
    assert await aread_flow_run_input("a--b-", flow_run_id=run.id) == 1


async def test_creating_a_key_the_run_has_raises_and_changes_nothing() -> None:
    run = await new_run()
    await acreate_flow_run_input("once", "first", flow_run_id=run.id)
    with pytest.raises(ObjectAlreadyExists):
        await acreate_flow_run_input("once", "second", flow_run_id=run.id)
    assert await aread_flow_run_input("once", flow_run_id=run.id) == "first"
    await send_input("sent", flow_run_id=run.id, key="sent-key")
    with pytest.raises(ObjectAlreadyExists):  # a sent input's key counts too
        await acreate_flow_run_input("sent-key", "x", flow_run_id=run.id)
    assert await aread_flow_run_input("sent-key", flow_run_id=run.id) == {"value": "sent"}


async def test_a_create_retried_after_a_lost_reply_succeeds_once() -> None:
    run = await new_run()
    record_id = uuid.uuid4()
    for _ in range(2):  # the same call twice: the second finds its own record
        await acreate_value(str(run.id), "retried", b'"v"', None, record_id)
    with pytest.raises(ObjectAlreadyExists):
        await acreate_value(str(run.id), "retried", b'"w"', None, uuid.uuid4())
    (record,) = await afilter_flow_run_input("retried", flow_run_id=run.id)
    assert (record.id, record.decoded_value) == (record_id, "v")


async def test_actions_on_an_unknown_run_or_outside_a_run() -> None:
    with pytest.raises(FlowRunNotFound):
        await acreate_flow_run_input("k", 1, flow_run_id=uuid.uuid4())
    for call in [
        acreate_flow_run_input("k", 1),
        aread_flow_run_input("k"),
        afilter_flow_run_input("k"),
        adelete_flow_run_input("k"),
    ]:
        with pytest.raises(MissingContextError) as caught:
            await call
        assert isinstance(caught.value, RuntimeError)


async def test_inside_a_run_actions_default_to_it_and_the_sender_is_the_run() -> None:
    @flow
    async def keeps_notes() -> tuple[str | None, Any, list[FlowRunInput]]:
        await acreate_flow_run_input_from_model("note", Approval(approved=True))
        await acreate_flow_run_input("plain", 1)
        return (
            current_run_id(),
            await aread_flow_run_input("note"),
            await afilter_flow_run_input("", limit=5),
        )

    run_id, note, records = await keeps_notes()
    assert note == {"approved": True, "note": ""}
    assert [(r.key, r.sender) for r in records] == [
        ("note", f"hitl.flow-run.{run_id}"),
        ("plain", None),
    ]
    run = await new_run()  # outside a run, a model's sender stays unset
    await acreate_flow_run_input_from_model("note", Approval(), flow_run_id=run.id)
    (outside,) = await afilter_flow_run_input("note", flow_run_id=run.id)
    assert outside.sender is None


async def test_filter_merges_values_and_sent_inputs_oldest_first() -> None:
    run = await new_run()
    await acreate_flow_run_input("msg-a", "value a", flow_run_id=run.id, sender="hitl.client.1")
    await asyncio.sleep(0.002)  # a later millisecond on Redis's clock
    await send_input("sent b", flow_run_id=run.id, key="msg-b")
    await asyncio.sleep(0.002)
    await acreate_flow_run_input("msg-c", "value c", flow_run_id=run.id)
    await send_input("sent d", flow_run_id=run.id, key="msg-d")
    await acreate_flow_run_input("other", "not matched", flow_run_id=run.id)
    records = await afilter_flow_run_input("msg-", limit=10, flow_run_id=run.id)
    assert [r.key for r in records] == ["msg-a", "msg-b", "msg-c", "msg-d"]
    assert [r.decoded_value for r in records] == [
        "value a",
        {"value": "sent b"},
        "value c",
        {"value": "sent d"},
    ]
    a, b = records[0], records[1]
    assert a.sender == "hitl.client.1" and b.sender is not None
    assert b.sender.startswith("hitl.client.")  # sent from outside any run: this inbox
    assert a.created.tzinfo is not None and a.created <= b.created
    assert abs((datetime.now(UTC) - a.created).total_seconds()) < 60
    assert len({r.id for r in records}) == 4
    assert {r.flow_run_id for r in records} == {run.id}
    assert (await afilter_flow_run_input("msg-", limit=10, flow_run_id=run.id))[0].id == a.id
    limited = await afilter_flow_run_input(
        "msg-", limit=2, exclude_keys={"msg-a"}, flow_run_id=run.id
    )
    assert [r.key for r in limited] == ["msg-b", "msg-c"]
    assert [r.key for r in await afilter_flow_run_input("msg-", flow_run_id=run.id)] == ["msg-a"]


async def test_delete_removes_a_value_or_a_sent_input() -> None:
    run = await new_run()
    await acreate_flow_run_input("kept", 1, flow_run_id=run.id)
    await acreate_flow_run_input("gone", 2, flow_run_id=run.id)
    await send_input("x", flow_run_id=run.id, key="sent-gone")
    await send_input("y", flow_run_id=run.id, key="sent-kept")
    await adelete_flow_run_input("gone", flow_run_id=run.id)
    await adelete_flow_run_input("sent-gone", flow_run_id=run.id)
    await adelete_flow_run_input("never-there", flow_run_id=run.id)  # no error: safe to retry
    assert await aread_flow_run_input("gone", flow_run_id=run.id) is None
    assert await aread_flow_run_input("sent-gone", flow_run_id=run.id) is None
    keys = [r.key for r in await afilter_flow_run_input("", limit=10, flow_run_id=run.id)]
    assert keys == ["kept", "sent-kept"]
    assert [v async for v in receive_input(str, flow_run_id=run.id, timeout=0.1)] == ["y"]
    await acreate_flow_run_input("gone", 3, flow_run_id=run.id)  # the key is free again
    await acreate_flow_run_input("sent-gone", 4, flow_run_id=run.id)
    assert await aread_flow_run_input("sent-gone", flow_run_id=run.id) == 4


async def test_a_corrupt_record_is_left_out_and_the_rest_still_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = await new_run()
    run_id = str(run.id)
    await acreate_flow_run_input("rec-1", 1, flow_run_id=run_id)
    await send_input("x", flow_run_id=run_id, key="rec-2")
    client = get_bus().client
    await client.hset(key_names.run_value_meta(run_id), "rec-1", b"{not json")
    await client.hset(key_names.input_index(run_id), "rec-3", b"no-prefix")
    await client.hset(key_names.run_values(run_id), "rec-4", b"\xff\xfe")
    records = await afilter_flow_run_input("rec-", limit=10, flow_run_id=run_id)
    assert [r.key for r in records] == ["rec-1", "rec-2"]  # bad metadata reads as created at 0
    assert records[0].created == datetime.fromtimestamp(0, UTC)
    assert "rec-3" in caplog.text and "rec-4" in caplog.text


async def test_a_pauses_values_are_ordered_by_when_they_were_written() -> None:
    @flow
    async def asks() -> str:
        user = await pause_flow_run(
            wait_for_input=UserName.with_initial_data(description="Who?", name="x")
        )
        return user.name

    run = await start_flow_run(asks)

    async def paused() -> bool:
        return (await get_client().read_flow_run(run.id)).state.is_paused()

    await eventually(paused)
    await resume_flow_run(run.id, {"name": "Ada"})
    records = await afilter_flow_run_input("", limit=10, flow_run_id=run.id)
    by_suffix = {r.key.rsplit("-", 1)[-1]: r for r in records}
    assert {"schema", "description", "response"} <= set(by_suffix)
    assert by_suffix["response"].decoded_value == {"name": "Ada"}
    assert by_suffix["response"].sender is None
    assert by_suffix["schema"].created.year >= 2024  # stamped by the pause, not left at 0
    assert by_suffix["schema"].created <= by_suffix["response"].created
    assert records[-1].key == by_suffix["response"].key


async def test_new_keys_live_on_the_runs_slot_and_expire_with_a_finished_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HITL_BUS_RUN_RETENTION", "30")
    run_id = str(uuid.uuid4())
    meta, index = key_names.run_value_meta(run_id), key_names.input_index(run_id)
    assert {key_names.slot(k) for k in (meta, index)} == {key_names.slot(key_names.run(run_id))}

    run = await new_run()
    run_id = str(run.id)
    meta, index = key_names.run_value_meta(run_id), key_names.input_index(run_id)
    await acreate_flow_run_input("before", 1, flow_run_id=run_id)
    await send_input("x", flow_run_id=run_id)
    await store.set_state(run_id, State(type=StateType.COMPLETED))
    client = get_bus().client
    for key in (meta, index):
        assert 0 < await client.pttl(key) <= 30_000, key

    later = await new_run()  # keys first made after the run finished get its lifetime
    await store.set_state(str(later.id), State(type=StateType.COMPLETED))
    await acreate_flow_run_input("after", 1, flow_run_id=later.id)
    await send_input("y", flow_run_id=later.id)
    for key in (key_names.run_value_meta(str(later.id)), key_names.input_index(str(later.id))):
        assert 0 < await client.pttl(key) <= 30_000, key


def test_flow_run_input_is_a_typed_frozen_record() -> None:
    record = FlowRunInput(
        id=uuid.uuid4(),
        created=datetime.now(UTC),
        flow_run_id=uuid.uuid4(),
        key="k",
        value='{"a": 1}',
        sender=None,
    )
    assert record.decoded_value == {"a": 1}
    with pytest.raises(ValueError):
        record.key = "other"  # type: ignore[misc]
    assert set(FlowRunInput.model_fields) == {
        "id",
        "created",
        "flow_run_id",
        "key",
        "value",
        "sender",
    }
