"""The client's followers: pushed, typed, silent while idle, and a corrupt entry is a skip."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from hitl_bus import (
    flow,
    get_client,
    get_run_logger,
    keys,
    receive_input,
    send_input,
    start_flow_run,
)
from hitl_bus.bus import get_bus
from hitl_bus.client import HitlClient, LogRecord, Reply, RunEvent
from hitl_bus.engine.runs import set_state
from hitl_bus.engine.states import State, StateType
from hitl_bus.inputs import inbox
from tests.helpers import eventually, new_run
from tests.models import ShirtOrder

NOT_UTF8 = b"\xff\xfe"


def warned(caplog: pytest.LogCaptureFixture, stream: str, entry_id: bytes) -> bool:
    """A warning names both the stream and the entry."""
    return any(
        r.levelno == logging.WARNING
        and stream in r.getMessage()
        and entry_id.decode() in r.getMessage()
        for r in caplog.records
    )


def log_fields(message: bytes | str, ts: bytes = b"1700000000000") -> dict[str, Any]:
    return {"level": "INFO", "logger": "t", "message": message, "ts": ts}


class Following:
    """A follower run as a task: what it gave so far, and a way to wait for more."""

    def __init__(self, items: AsyncIterator[Any]) -> None:
        self.items = items
        self.seen: list[Any] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for item in self.items:
            self.seen.append(item)

    async def until(self, count: int, timeout: float = 5.0) -> list[Any]:
        async def enough() -> bool:
            return len(self.seen) >= count

        await eventually(enough, timeout)
        return self.seen

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def parked() -> None:
    """Until a follower waits on the dispatcher and its reader has re-issued its XREAD."""

    async def waiting() -> bool:
        return get_bus().dispatcher.waiting() > 0

    await eventually(waiting)
    await asyncio.sleep(0.2)


def commands(admin: redis.Redis) -> dict[str, int]:
    """Calls per command so far, leaving out the INFO that asks."""
    stats = admin.info("commandstats")
    return {name: s["calls"] for name, s in stats.items() if name != "cmdstat_info"}


async def assert_idle_costs_nothing(url: str, seconds: float = 1.5) -> None:
    """No command reaches Redis while every follower waits (longer than any old poll)."""
    with redis.Redis.from_url(url) as admin:
        before = commands(admin)
        await asyncio.sleep(seconds)
        assert commands(admin) == before


@pytest.mark.usefixtures("bus_url")
async def test_follow_events_gives_typed_events_as_they_happen() -> None:
    run = await new_run()
    following = Following(get_client().follow_events(run.id))
    await parked()
    await send_input("hello", flow_run_id=run.id)
    await set_state(run.id, State(type=StateType.COMPLETED))
    first, second = await following.until(2)
    await following.stop()
    assert isinstance(first, RunEvent) and first.type == "input.received"
    assert first.run_id == str(run.id) and first.data["key_prefix"] == "str-auto"
    assert second.type == "state.changed" and second.data["state"]["type"] == "COMPLETED"
    everything = Following(get_client().follow_events(run.id, after="0-0"))
    assert [e.id for e in await everything.until(3)][-2:] == [first.id, second.id]
    await everything.stop()


@pytest.mark.usefixtures("bus_url")
async def test_follow_events_without_a_run_follows_every_run() -> None:
    following = Following(get_client().follow_events())
    await parked()
    one, two = await new_run(), await new_run()
    await send_input("a", flow_run_id=one.id)
    await send_input("b", flow_run_id=two.id)

    def inputs() -> list[RunEvent]:
        return [e for e in following.seen if e.type == "input.received"]

    await eventually(lambda: _now(len(inputs()) == 2))
    received = inputs()
    await following.stop()
    assert [e.run_id for e in received] == [str(one.id), str(two.id)]


async def test_followers_wake_when_an_entry_lands_and_send_nothing_while_idle(
    real_redis_url: str,
) -> None:
    run = await new_run()
    stream = keys.run_logs(str(run.id))
    await get_bus().client.xadd(stream, log_fields("stored"))
    client = HitlClient()
    followers = [
        Following(client.follow_events(run.id)),
        Following(client.follow_logs(run.id, after="0-0")),
        Following(client.follow_replies(run.id)),
    ]
    events, logs, _ = followers
    assert [r.message for r in await logs.until(1)] == ["stored"]
    await parked()
    await assert_idle_costs_nothing(real_redis_url)
    await get_bus().client.xadd(stream, log_fields("new"))
    await send_input("hi", flow_run_id=run.id)
    async with asyncio.timeout(1):  # pushed: no poll to wait for
        assert [r.message for r in await logs.until(2)] == ["stored", "new"]
        assert (await events.until(1))[0].type == "input.received"
    for following in followers:
        await following.stop()


@pytest.mark.usefixtures("bus_url")
async def test_follow_logs_gives_records_and_ends_with_the_run_when_asked() -> None:
    @flow
    async def talks() -> None:
        get_run_logger().info("one")
        await receive_input(str, timeout=10).next()
        get_run_logger().warning("two")

    run = await start_flow_run(talks)
    records: list[LogRecord] = []

    async def follow() -> None:
        async for record in get_client().follow_logs(run.id, after="0-0", until_final=True):
            records.append(record)

    following = asyncio.create_task(follow())
    await eventually(lambda: _now(bool(records)))
    await send_input("go", flow_run_id=run.id)
    async with asyncio.timeout(5):
        await following  # ended by itself: the run is over
    assert [(r.level, r.message) for r in records] == [("INFO", "one"), ("WARNING", "two")]
    assert records[0].ts > 0 and records[0].as_dict()["ts"] == str(records[0].ts)
    done: list[LogRecord] = [
        r async for r in get_client().follow_logs(run.id, after="0-0", until_final=True)
    ]
    assert done == records  # a finished run: what is stored, then the end


async def _now(value: bool) -> bool:
    return value


@pytest.mark.usefixtures("bus_url")
@pytest.mark.parametrize("kind", ["events", "logs", "replies"])
async def test_a_corrupt_entry_is_a_logged_skip(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    run = await new_run()
    run_id = str(run.id)
    client = HitlClient()
    bus = get_bus().client
    if kind == "events":
        stream = keys.run_events(run_id)
        following = Following(client.follow_events(run_id))
        bad = {"type": "state.changed", "run_id": run_id, "ts": "1", "data": b"{not json"}
        good = {"type": "pause.answered", "run_id": run_id, "ts": "1", "data": b"{}"}
    elif kind == "logs":
        stream = keys.run_logs(run_id)
        following = Following(client.follow_logs(run_id))
        bad, good = log_fields(NOT_UTF8), log_fields("fine")
    else:
        stream = keys.input_stream(inbox.inbox().id, "str-auto")
        await bus.sadd(keys.input_streams(inbox.inbox().id), "str-auto")
        following = Following(client.follow_replies(run_id))
        sender = f"hitl.flow-run.{run_id}"
        bad = {"key": "str-auto-1", "sender": sender, "data": b"{not json"}
        good = {"key": "str-auto-2", "sender": sender, "data": b'{"value": "fine"}'}
    await parked()
    with caplog.at_level(logging.WARNING):
        bad_id = await bus.xadd(stream, bad)
        await bus.xadd(stream, good)
        [item] = await following.until(1)
    await following.stop()
    assert warned(caplog, stream, bad_id)
    assert item.id != bad_id.decode()
    assert following.task.cancelled()  # it went on after the bad entry; only stop() ended it


@flow
async def answers_in_kind() -> None:
    """Replies with the type it was sent, then waits for more and says nothing meanwhile."""
    async for name in receive_input(str, with_metadata=True, timeout=30):
        if name.value == "bye":
            return
        await name.respond(f"Hello, {name.value}!")


async def test_a_reply_on_a_new_prefix_is_pushed_without_polling(real_redis_url: str) -> None:
    run = await start_flow_run(answers_in_kind)
    inbox_streams = keys.input_streams(inbox.inbox().id)
    assert not await get_bus().client.exists(inbox_streams)  # the inbox has no reply type yet
    following = Following(get_client().follow_replies(run.id))
    await parked()
    await assert_idle_costs_nothing(real_redis_url)
    await send_input("Ada", flow_run_id=run.id)  # from this process's inbox
    async with asyncio.timeout(2):
        [reply] = await following.until(1)
    assert isinstance(reply, Reply)
    assert (reply.key_prefix, reply.data, reply.sender) == (
        "str-auto",
        {"value": "Hello, Ada!"},
        f"hitl.flow-run.{run.id}",
    )
    await parked()
    await assert_idle_costs_nothing(real_redis_url)  # the run waits; so does the follower
    await send_input("bye", flow_run_id=run.id)
    await following.stop()


@flow
async def answers_with_an_order() -> None:
    """Replies with a type it was never sent (a prefix new to the inbox), then ends."""
    question = await receive_input(str, with_metadata=True, timeout=30).next()
    await question.respond(ShirtOrder(size="large", color="red"))
    get_run_logger().info("answered")


@pytest.mark.usefixtures("bus_url")
async def test_a_reply_of_another_new_type_shows_at_the_runs_next_event() -> None:
    run = await start_flow_run(answers_with_an_order)
    following = Following(get_client().follow_replies(run.id))
    other = Following(get_client().follow_replies(run.id))
    await parked()
    await send_input("size?", flow_run_id=run.id)
    async with asyncio.timeout(5):
        [reply] = await following.until(1)
        assert [r.id for r in await other.until(1)] == [reply.id]
    assert (reply.key_prefix, reply.data) == ("shirtorder-auto", {"size": "large", "color": "red"})
    await following.stop()
    await other.stop()


@flow
async def answers_with_an_order_then_waits() -> None:
    """Replies with a type new to the inbox, then waits quietly (no event of the run)."""
    question = await receive_input(str, with_metadata=True, timeout=30).next()
    await asyncio.sleep(0.5)  # well after the follower saw the question arrive
    await question.respond(ShirtOrder(size="small", color="black"))
    await receive_input(str, timeout=30, exclude_keys=[question.metadata.key]).next()


@pytest.mark.usefixtures("bus_url")
async def test_a_reply_of_a_new_type_is_pushed_while_the_run_is_quiet() -> None:
    run = await start_flow_run(answers_with_an_order_then_waits)
    following = Following(get_client().follow_replies(run.id))
    await parked()
    await send_input("size?", flow_run_id=run.id)
    async with asyncio.timeout(5):  # the run writes no event until it is sent "bye"
        [reply] = await following.until(1)
    assert (reply.key_prefix, reply.data) == (
        "shirtorder-auto",
        {"size": "small", "color": "black"},
    )
    await send_input("bye", flow_run_id=run.id)
    await following.stop()


@pytest.mark.usefixtures("bus_url")
async def test_follow_replies_of_an_inbox_gives_every_runs_replies() -> None:
    runs = [await start_flow_run(answers_in_kind) for _ in range(2)]
    following = Following(get_client().follow_replies())
    await parked()
    for number, run in enumerate(runs):
        await send_input(f"n{number}", flow_run_id=run.id)
    replies = await following.until(2)
    assert sorted(r.data["value"] for r in replies) == ["Hello, n0!", "Hello, n1!"]
    assert {r.sender for r in replies} == {f"hitl.flow-run.{run.id}" for run in runs}
    for run in runs:
        await send_input("bye", flow_run_id=run.id)
    await following.stop()


@pytest.mark.usefixtures("bus_url")
async def test_replies_from_other_runs_are_not_given_for_a_run() -> None:
    mine, theirs = [await start_flow_run(answers_in_kind) for _ in range(2)]
    following = Following(get_client().follow_replies(mine.id))
    await parked()
    await send_input("them", flow_run_id=theirs.id)
    await send_input("me", flow_run_id=mine.id)
    [reply] = await following.until(1)
    await asyncio.sleep(0.2)
    assert [r.data for r in following.seen] == [{"value": "Hello, me!"}] == [reply.data]
    for run in (mine, theirs):
        await send_input("bye", flow_run_id=run.id)
    await following.stop()


def test_the_sync_client_follows_too(real_redis_url: str) -> None:
    """Blocking iteration, one step at a time on the portal loop; closing it stops the wait."""
    client = get_client(sync_client=True)

    @flow
    def counts() -> None:
        logger = get_run_logger()
        for number in range(3):
            logger.info("count %d", number)

    counts()  # a sync flow called from sync code: done when it returns
    [run] = client.read_flow_runs(flow_name="counts")
    records = client.follow_logs(run.id, after="0-0", until_final=True)
    assert [r.message for r in records] == ["count 0", "count 1", "count 2"]
    events = client.follow_events(run.id, after="0-0")
    assert next(events).type == "state.changed"
    events.close()
