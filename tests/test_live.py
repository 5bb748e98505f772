"""The SSE streams: a corrupt entry is skipped, not the end of the stream; quiet means pings."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest

from hitl_bus import keys
from hitl_bus.bus import get_bus
from hitl_bus.people.store import BOOTSTRAP_ADMIN
from hitl_bus.web import live
from tests.helpers import eventually, new_run
from tests.test_api import live_server

pytestmark = pytest.mark.usefixtures("real_redis_url")
NOT_UTF8 = b"\xff\xfe"


async def messages(lines: AsyncIterator[str], wanted: set[str]) -> dict[str, object]:
    """Data of the first message of each name in ``wanted``, read until all have come."""
    found: dict[str, object] = {}
    name = ""
    async for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and name in wanted and name not in found:
            found[name] = json.loads(line[5:])
            if found.keys() == wanted:
                break
    return found


async def followed() -> None:
    """Until the server's followers wait on the dispatcher (events, logs, replies' streams)."""

    async def waiting() -> bool:
        return get_bus().dispatcher.waiting() >= 3

    await eventually(waiting)
    await asyncio.sleep(0.2)


async def test_a_corrupt_entry_does_not_end_the_live_stream(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run = await new_run()
    run_id = str(run.id)
    # The page reads as the bootstrap admin: replies to them land in their mailbox.
    owner = keys.user_owner(BOOTSTRAP_ADMIN)
    replies = keys.input_stream(owner, "str-auto")
    sender = f"hitl.flow-run.{run_id}"
    redis = get_bus().client
    await redis.sadd(keys.input_streams(owner), "str-auto")
    async with (
        live_server(monkeypatch) as http,
        http.stream("GET", f"/api/runs/{run_id}/live") as stream,
    ):
        lines = stream.aiter_lines()
        await followed()
        with caplog.at_level(logging.WARNING):
            bad = [
                await redis.xadd(
                    keys.run_logs(run_id),
                    {"level": "INFO", "logger": "t", "message": NOT_UTF8, "ts": "1"},
                ),
                await redis.xadd(
                    keys.run_events(run_id),
                    {"type": "state.changed", "run_id": run_id, "ts": "1", "data": b"{oops"},
                ),
                await redis.xadd(replies, {"key": "str-auto-1", "sender": sender, "data": b"{"}),
            ]
            await redis.xadd(
                keys.run_logs(run_id),
                {"level": "INFO", "logger": "t", "message": "after", "ts": "2"},
            )
            await redis.xadd(
                keys.run_events(run_id),
                {"type": "pause.answered", "run_id": run_id, "ts": "2", "data": b"{}"},
            )
            await redis.xadd(
                replies, {"key": "str-auto-2", "sender": sender, "data": b'{"value": "hi"}'}
            )
            found = await asyncio.wait_for(messages(lines, {"log", "pause.answered", "reply"}), 5)
    assert found["log"] == {
        "id": found["log"]["id"],  # type: ignore[index]
        "level": "INFO",
        "logger": "t",
        "message": "after",
        "ts": "2",
    }
    assert found["pause.answered"] == {"run_id": run_id, "ts": 2, "data": {}}
    assert found["reply"] == {
        "id": found["reply"]["id"],  # type: ignore[index]
        "key": "str-auto-2",
        "key_prefix": "str-auto",
        "data": {"value": "hi"},
    }
    for key, entry in zip(
        (keys.run_logs(run_id), keys.run_events(run_id), replies), bad, strict=True
    ):
        assert any(
            key in r.getMessage() and entry.decode() in r.getMessage() for r in caplog.records
        ), key


async def test_a_quiet_stream_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "QUIET", 0.3)
    run = await new_run()
    async with (
        live_server(monkeypatch) as http,
        http.stream("GET", f"/api/runs/{run.id}/live") as stream,
    ):
        found = await asyncio.wait_for(messages(stream.aiter_lines(), {"ping"}), 5)
    assert found == {"ping": {}}


async def _read(lines: AsyncIterator[str], until: str) -> list[tuple[str, str, object]]:
    """``(event, id, data)`` of each message up to the first whose data mentions ``until``."""
    found: list[tuple[str, str, object]] = []
    name, entry_id = "", ""
    async for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("id:"):
            entry_id = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            found.append((name, entry_id, json.loads(line[5:])))
            if until in line:
                return found
    return found


async def test_a_reconnecting_stream_goes_on_after_the_last_event_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = await new_run()
    run_id = str(run.id)
    redis = get_bus().client

    async def log(message: str) -> None:
        fields = {"level": "INFO", "logger": "t", "message": message, "ts": "1"}
        await redis.xadd(keys.run_logs(run_id), fields)  # type: ignore[arg-type]

    await log("one")
    async with live_server(monkeypatch) as http:
        async with http.stream("GET", f"/api/runs/{run_id}/live") as stream:
            first = await asyncio.wait_for(_read(stream.aiter_lines(), "one"), 5)
        assert first[0][0] == "ready"
        last_id = first[-1][1]
        assert last_id.startswith("events:") and ",logs:" in last_id and ",replies:" in last_id

        # While the page is away: a log record and an event.
        await log("two")
        await redis.xadd(
            keys.run_events(run_id),
            {"type": "pause.answered", "run_id": run_id, "ts": "2", "data": b"{}"},
        )
        headers = {"Last-Event-ID": last_id}
        async with http.stream("GET", f"/api/runs/{run_id}/live", headers=headers) as stream:
            lines = stream.aiter_lines()
            again = await asyncio.wait_for(_read(lines, "two"), 5)
            if not any(name == "pause.answered" for name, _, _ in again):
                again += await asyncio.wait_for(_read(lines, run_id), 5)
        # The same through the query string, as a page that opens the stream itself sends it.
        query = {"last_event_id": again[-1][1]}
        async with http.stream("GET", f"/api/runs/{run_id}/live", params=query) as stream:
            lines = stream.aiter_lines()
            await log("three")
            third = await asyncio.wait_for(_read(lines, "three"), 5)
    logged = [data["message"] for name, _, data in again + third if name == "log"]  # type: ignore[index]
    assert logged == ["two", "three"]  # "one" is not sent again, nothing is missed
    assert [name for name, _, _ in again].count("pause.answered") == 1
    assert not any(name == "pause.answered" for name, _, _ in third)


async def test_an_unreadable_last_event_id_starts_from_now(monkeypatch: pytest.MonkeyPatch) -> None:
    run = await new_run()
    async with live_server(monkeypatch) as http:
        for bad in ("nonsense", "events:99999999999999999999999-0", "logs:1-x"):
            headers = {"Last-Event-ID": bad}
            async with http.stream("GET", f"/api/runs/{run.id}/live", headers=headers) as stream:
                assert stream.status_code == 200
                found = await asyncio.wait_for(messages(stream.aiter_lines(), {"ready"}), 5)
                assert found == {"ready": {}}
