"""Who made each write: resumes, sends, cancels and starts record their actor."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from typer.testing import CliRunner

from hitl_bus import (
    flow,
    get_client,
    pause_flow_run,
    receive_input,
    resume_flow_run,
    run_deployment,
    send_input,
    start_flow_run,
)
from hitl_bus.client.records import RunEvent, actor_label, deed_of
from hitl_bus.context import acting
from hitl_bus.deployments.registry import register
from hitl_bus.engine.cancelling import acancel_flow_run, cancel_flow_run
from hitl_bus.engine.resuming import aresume_flow_run
from hitl_bus.inputs import inbox
from hitl_bus.inputs.keyset import Mailbox
from hitl_bus.inputs.received import read_received
from hitl_bus.people.roles import Role
from hitl_bus.people.store import add_person
from tests.helpers import eventually, new_run, start_paused

pytestmark = pytest.mark.usefixtures("bus_url")

GRACE = "hitl.user.grace"


@flow
async def asks_once() -> Any:
    return await pause_flow_run(wait_for_input=str)


@flow
async def echo() -> None:
    async for msg in receive_input(str, with_metadata=True, timeout=5):
        if msg.value == "exit":
            return
        await msg.respond(f"Hello, {msg.value}!")


async def _events(run_id: Any, kind: str = "state.changed") -> list[dict[str, Any]]:
    return [e for e in await get_client().read_events(run_id) if e["type"] == kind]


async def _final(run_id: Any) -> None:
    async def done() -> bool:
        return (await get_client().read_flow_run(run_id)).state.is_final()

    await eventually(done)


async def test_a_resume_records_who_is_acting() -> None:
    await add_person("grace", Role.RESPONDER)
    run_id = await start_paused(asks_once)
    with acting(GRACE):
        await resume_flow_run(run_id, {"value": "yes"})
    history = await get_client().read_state_history(run_id)
    resumed = [s for s in history if s.state_details.actor == GRACE]
    assert [s.type.value for s in resumed] == ["RUNNING"]
    changes = await _events(run_id)
    assert [e["data"]["actor"] for e in changes if "actor" in e["data"]] == [GRACE]
    await _final(run_id)
    # The stored answer names who gave it (Prefect's filter_flow_run_input sender).
    from hitl_bus.input import filter_flow_run_input

    records = await filter_flow_run_input(key_prefix="paused-1-response", flow_run_id=run_id)
    assert [r.sender for r in records] == [GRACE]


async def test_an_explicit_actor_wins_and_a_plain_program_records_none() -> None:
    first = await start_paused(asks_once)
    with acting(GRACE):  # the keyword says who, whatever the context
        await aresume_flow_run(first, {"value": "a"}, actor="hitl.client.batch-job")
    second = await start_paused(asks_once)
    await aresume_flow_run(second, {"value": "b"})
    history = await get_client().read_state_history(first)
    assert [s.state_details.actor for s in history if s.is_running()][-1] == "hitl.client.batch-job"
    assert all(s.state_details.actor is None for s in await get_client().read_state_history(second))
    assert all("actor" not in e["data"] for e in await _events(second))


async def test_a_flow_that_resumes_another_run_is_its_actor() -> None:
    target = await start_paused(asks_once)

    @flow
    async def resumer() -> str:
        from hitl_bus import get_run_context

        await resume_flow_run(target, {"value": "from a flow"})
        return get_run_context().flow_run.run_id

    own_id = await resumer()
    history = await get_client().read_state_history(target)
    assert [s.state_details.actor for s in history if s.is_running()][-1] == (
        f"hitl.flow-run.{own_id}"
    )


async def test_the_sync_face_carries_the_actor_through_the_portal() -> None:
    await add_person("grace", Role.RESPONDER)
    run_id = await start_paused(asks_once)

    def resume_from_plain_code() -> None:  # no loop in this thread: it blocks on the portal
        with acting(GRACE):
            resume_flow_run(run_id, {"value": "sync"})

    await asyncio.to_thread(resume_from_plain_code)
    history = await get_client().read_state_history(run_id)
    assert [s.state_details.actor for s in history if s.is_running()][-1] == GRACE
    await _final(run_id)


@pytest.mark.also_on_cluster
async def test_a_cancel_records_its_actor_explicit_or_acting() -> None:
    queued = await new_run()
    with acting(GRACE):
        state = await acancel_flow_run(queued.id)
    assert state.state_details.actor == GRACE
    stored = await get_client().read_flow_run(queued.id)
    assert stored.state.is_cancelling() and stored.state.state_details.actor == GRACE
    assert (await _events(queued.id))[-1]["data"]["actor"] == GRACE

    other = await new_run()
    await get_client().cancel_flow_run(other.id, actor="hitl.user.linus")
    assert (await get_client().read_flow_run(other.id)).state.state_details.actor == (
        "hitl.user.linus"
    )


def test_the_sync_cancel_takes_the_actor_keyword() -> None:
    async def made() -> str:
        return str((await new_run()).id)

    run_id = asyncio.run(made())
    state = cancel_flow_run(run_id, actor=GRACE)
    assert state.state_details.actor == GRACE


async def test_a_start_records_its_actor() -> None:
    @flow
    async def nightly(days: int = 1) -> int:
        return days

    await register(nightly.to_deployment("nightly"))
    with acting(GRACE):
        queued = await run_deployment("nightly/nightly", timeout=0)
    explicit = await run_deployment("nightly/nightly", timeout=0, actor="hitl.user.linus")
    anonymous = await run_deployment("nightly/nightly", timeout=0)
    assert queued.state.state_details.actor == GRACE
    stored = await get_client().read_flow_run(queued.id)
    assert stored.state.is_scheduled() and stored.state.state_details.actor == GRACE
    assert (await _events(queued.id))[0]["data"]["actor"] == GRACE
    assert explicit.state.state_details.actor == "hitl.user.linus"
    assert anonymous.state.state_details.actor is None

    with acting(GRACE):  # a flow run started in process names who started it
        direct = await start_flow_run(nightly, 3)
    assert (await _events(direct.id))[0]["data"]["actor"] == GRACE
    await _final(direct.id)


async def test_a_flow_started_by_a_person_writes_as_itself() -> None:
    target = await new_run()

    @flow
    async def sends() -> str:
        from hitl_bus import get_run_context

        await send_input("hi", flow_run_id=target.id)
        return get_run_context().flow_run.run_id

    with acting(GRACE):
        own = await sends()
    assert [i["sender"] for i in await get_client().read_inputs(target.id)] == [
        f"hitl.flow-run.{own}"
    ]
    assert (await get_client().read_state_history(own))[0].state_details.actor == GRACE


async def test_a_subflow_is_started_by_its_parent() -> None:
    @flow
    async def child() -> None:
        return None

    @flow
    async def parent() -> str:
        from hitl_bus import get_run_context

        await child()
        return get_run_context().flow_run.run_id

    parent_id = await parent()
    runs = await get_client().read_flow_runs(flow_name="child")
    first = (await get_client().read_state_history(runs[0].id))[0]
    assert first.state_details.actor == f"hitl.flow-run.{parent_id}"


@pytest.mark.also_on_cluster
async def test_a_person_sends_as_themselves_and_the_reply_lands_in_their_mailbox() -> None:
    run = await start_flow_run(echo)
    with acting(GRACE):
        await send_input("Grace", flow_run_id=run.id)
    await send_input("Program", flow_run_id=run.id)  # not a person: from this inbox

    async def two_replies() -> bool:
        mailbox = await get_client().read_replies(run.id, person="grace")
        return len(mailbox) == 1 and len(await get_client().read_replies(run.id)) == 1

    await eventually(two_replies)
    sent = await get_client().read_inputs(run.id)
    assert [i["sender"] for i in sent] == [GRACE, inbox.inbox().name]
    received = await _events(run.id, "input.received")
    assert [e["data"]["sender"] for e in received] == [GRACE, inbox.inbox().name]
    mine = await get_client().read_replies(run.id, person="grace")
    assert [r["data"] for r in mine] == [{"value": "Hello, Grace!"}]
    assert mine[0]["sender"] == f"hitl.flow-run.{run.id}"
    with acting(GRACE):  # the person acting reads their own mailbox by default
        assert await get_client().read_replies(run.id) == mine
    program = await get_client().read_replies(run.id)
    assert [r["data"] for r in program] == [{"value": "Hello, Program!"}]
    # Kept under the person's own tag, bounded and expiring like a run's keys.
    box = Mailbox.for_person("grace")
    assert [r.key for r in await read_received(box.owner)] == [mine[0]["key"]]
    await send_input("exit", flow_run_id=run.id)
    await _final(run.id)


async def test_replies_to_a_person_are_followed_as_they_land() -> None:
    run = await start_flow_run(echo)
    client = get_client()
    after = await client.reply_position()
    got: list[Any] = []

    async def follow() -> None:
        async for reply in client.follow_replies(run.id, person="grace", after=after):
            got.append(reply.data)
            if len(got) == 2:
                return

    follower = asyncio.ensure_future(follow())
    with acting(GRACE):
        await send_input("one", flow_run_id=run.id)
        await send_input(["a", "list"], flow_run_id=run.id)  # no reply: echo takes str only
        await send_input("two", flow_run_id=run.id)
    await asyncio.wait_for(follower, 10)
    assert got == [{"value": "Hello, one!"}, {"value": "Hello, two!"}]
    await send_input("exit", flow_run_id=run.id)
    await _final(run.id)


async def test_an_explicit_sender_is_kept_when_a_person_acts() -> None:
    run = await new_run()
    with acting(GRACE):
        await send_input("x", flow_run_id=run.id, sender="hitl.client.someone-else")
    assert [i["sender"] for i in await get_client().read_inputs(run.id)] == [
        "hitl.client.someone-else"
    ]


def test_deeds_and_labels_read_as_people_say_them() -> None:
    def event(kind: str, data: dict[str, Any]) -> RunEvent:
        return RunEvent("1-0", kind, "r", 0, data)

    running = {"type": "RUNNING", "name": "Running"}
    resuming = {"type": "SCHEDULED", "name": "Resuming"}
    assert deed_of(event("state.changed", {"state": running, "actor": GRACE})) == (
        "Resumed",
        GRACE,
    )
    assert deed_of(event("state.changed", {"state": resuming, "actor": GRACE}))[0] == "Resumed"  # type: ignore[index]
    cancelled = {"type": "CANCELLED", "name": "Cancelled"}
    assert deed_of(event("state.changed", {"state": cancelled, "actor": GRACE}))[0] == "Cancelled"  # type: ignore[index]
    scheduled = {"type": "SCHEDULED", "name": "Scheduled"}
    assert deed_of(event("state.changed", {"state": scheduled, "actor": GRACE}))[0] == "Started"  # type: ignore[index]
    assert deed_of(event("state.changed", {"state": running})) is None
    assert deed_of(event("input.received", {"sender": GRACE})) == ("Sent", GRACE)
    assert actor_label(GRACE) == "grace"
    run_id = "1b2c3d4e-0000-4000-8000-000000000000"
    assert actor_label(f"hitl.flow-run.{run_id}") == "flow run 1b2c3d4e"
    assert actor_label(f"hitl.client.{run_id}").startswith("a program")


async def test_runs_show_says_who_resumed_sent_and_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hitl_bus.cli import app

    await add_person("grace", Role.RESPONDER)
    run_id = await start_paused(asks_once)
    with acting(GRACE):
        await send_input("note", flow_run_id=run_id)
        await resume_flow_run(run_id, {"value": "ok"})
    await _final(run_id)
    cancelled = await new_run()
    await acancel_flow_run(cancelled.id, actor="hitl.user.linus")

    def show(run: str) -> str:
        result = CliRunner().invoke(app, ["runs", "show", run])
        assert result.exit_code == 0, result.output
        return result.output

    shown = await asyncio.to_thread(show, run_id)
    assert "Sent by grace at " in shown
    assert "Resumed by grace at " in shown
    assert "Cancelled by linus at " in await asyncio.to_thread(show, str(cancelled.id))


def test_a_persons_mailbox_lives_on_one_slot() -> None:
    from hitl_bus import keys

    box = Mailbox.for_person("grace")
    assert box.name == GRACE and box.owner == "user:grace"
    assert Mailbox.parse(GRACE) == box
    assert Mailbox.parse("hitl.user.Not A Name") is None
    names = [
        box.marker_key,
        keys.input_stream(box.owner, "str-auto"),
        keys.input_streams(box.owner),
        keys.input_keys(box.owner),
        keys.input_index(box.owner),
        keys.inbox_prefixes(box.owner),
    ]
    assert names[0] == "hitl:{user:grace}:mailbox"
    assert {keys.slot(name) for name in names} == {keys.slot(names[0])}
