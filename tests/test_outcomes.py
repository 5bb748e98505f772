"""What became of an input: receivers record ``input.taken``, ``reject_input`` records why not."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError, field_validator

from hitl_bus import RunInput, flow, get_client, receive_input, send_input, start_flow_run
from hitl_bus.inputs import InputReceiver, areject_input, reject_input
from hitl_bus.inputs.inbox import inbox
from hitl_bus.inputs.keyset import Mailbox
from hitl_bus.inputs.messaging import deliver
from hitl_bus.inputs.run_input import RawInput
from tests.helpers import new_run

pytestmark = [pytest.mark.usefixtures("bus_url"), pytest.mark.also_on_cluster]


class Percent(RunInput):
    value: float

    @field_validator("value")
    @classmethod
    def at_most_100(cls, value: float) -> float:
        if value > 100:
            raise ValueError("a percentage is at most 100")
        return value


async def _events(run_id: object, kind: str) -> list[dict[str, object]]:
    return [e["data"] for e in await get_client().read_events(str(run_id)) if e["type"] == kind]


async def _outcomes_once_done(run_id: object) -> list[tuple[object, object]]:
    """The run's ``input.taken`` and ``input.skipped`` events, in order, once it completed."""
    final = await get_client().wait_for_flow_run(run_id, timeout=20)
    assert final.state.is_completed()
    return [
        (e["type"], e["data"]["key"])
        for e in await get_client().read_events(str(run_id))
        if e["type"] in ("input.taken", "input.skipped")
    ]


async def _send(run_id: object, value: float) -> str:
    target = Mailbox.for_run(str(run_id))
    raw = RawInput.model_validate({"value": value})  # as a send box sends it: not checked here
    return await deliver(target, raw, key_prefix="percent-auto")


@flow
async def takes_two_percentages() -> list[float]:
    taken: list[float] = []
    inputs: InputReceiver[Percent] = receive_input(Percent, timeout=10)
    while len(taken) < 2:
        try:
            item = await inputs.next()
        except ValidationError as exc:  # the receiver knows which input that was
            await reject_input(inputs, str(exc.errors()[0]["msg"]))
            continue
        if item.value == 0:
            await reject_input(item, "zero means nothing to do")
            continue
        taken.append(item.value)
    return taken


async def test_a_run_records_each_input_it_takes_and_why_it_skips_one() -> None:
    run = await start_flow_run(takes_two_percentages)
    keys = [await _send(run.id, value) for value in (50, 150, 0, 70)]
    final = await get_client().wait_for_flow_run(run.id, timeout=20)
    assert final.state.is_completed()
    # Written in the background, so in any order: what was handed out; 150 never was.
    taken = {d["key"] for d in await _events(run.id, "input.taken")}
    assert taken == {keys[0], keys[2], keys[3]}
    too_high = "Value error, a percentage is at most 100"
    assert await _events(run.id, "input.skipped") == [  # awaited, so in the flow's order
        {"key": keys[1], "reason": too_high},
        {"key": keys[2], "reason": "zero means nothing to do"},
    ]
    assert await get_client().read_input_outcomes(run.id) == {
        keys[0]: {"status": "taken"},
        keys[1]: {"status": "skipped", "reason": too_high},
        keys[2]: {"status": "skipped", "reason": "zero means nothing to do"},  # a skip wins
        keys[3]: {"status": "taken"},
    }


async def test_taken_inputs_are_recorded_in_order_and_before_their_skip() -> None:
    run = await start_flow_run(takes_two_percentages)
    keys = [await _send(run.id, value) for value in (0, 50, 0, 70)]
    assert await _outcomes_once_done(run.id) == [
        ("input.taken", keys[0]), ("input.skipped", keys[0]),
        ("input.taken", keys[1]),
        ("input.taken", keys[2]), ("input.skipped", keys[2]),
        ("input.taken", keys[3]),
    ]  # fmt: skip


async def test_reject_input_by_key_outside_a_run_needs_the_run() -> None:
    run = await new_run()
    await send_input("hi", flow_run_id=run.id, key="greeting-1")
    with pytest.raises(ValueError, match="flow_run_id"):
        await areject_input("greeting-1", "not now")
    await areject_input("greeting-1", "  not\n now  ", flow_run_id=run.id)
    assert await _events(run.id, "input.skipped") == [{"key": "greeting-1", "reason": "not now"}]


async def test_a_receiver_outside_a_run_records_nothing_and_an_inbox_has_no_events() -> None:
    run = await new_run()
    await send_input("hi", flow_run_id=run.id)
    assert await receive_input(str, flow_run_id=run.id, timeout=1).next() == "hi"
    assert await _events(run.id, "input.taken") == []
    await areject_input("x-1", "whatever", flow_run_id=inbox().id)  # not a run: nothing to write
    assert await get_client().read_input_outcomes(run.id) == {}


async def test_a_receiver_that_read_nothing_cannot_reject() -> None:
    run = await new_run()
    with pytest.raises(ValueError, match="not read an input"):
        await areject_input(receive_input(str, flow_run_id=run.id, timeout=0), "no")
    with pytest.raises(ValueError, match="received input"):
        await areject_input(Percent(value=1), "no")  # made here, never received


async def test_a_skip_waits_for_a_taken_write_already_under_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The background write of ``input.taken`` events may already have taken the keys
    when the flow skips one of them: the skip is written only after that write."""
    from hitl_bus.inputs import receiving

    written = receiving.record_events

    async def slow(bus: object, run_id: str, kind: str, events: list[object]) -> None:
        if events:
            await asyncio.sleep(0.2)  # a write held up, say by a reconnect
        await written(bus, run_id, kind, events)  # type: ignore[arg-type]

    monkeypatch.setattr(receiving, "record_events", slow)

    @flow
    async def takes_then_skips() -> None:
        inputs: InputReceiver[Percent] = receive_input(Percent, timeout=10)
        first, second = await inputs.next(), await inputs.next()
        await asyncio.sleep(0.05)  # the background write has both keys and is under way
        await reject_input(second, "changed my mind")
        assert first.value == 50

    run = await start_flow_run(takes_then_skips)
    keys = [await _send(run.id, value) for value in (50, 60)]
    assert await _outcomes_once_done(run.id) == [
        ("input.taken", keys[0]), ("input.taken", keys[1]), ("input.skipped", keys[1]),
    ]  # fmt: skip
