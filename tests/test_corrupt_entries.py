"""A corrupt entry in Redis is a logged skip: receivers go on, a run's page still loads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from hitl_bus import (
    flow,
    get_client,
    get_run_logger,
    keys,
    pause_flow_run,
    receive_input,
    send_input,
    start_flow_run,
)
from hitl_bus.bus import get_bus
from hitl_bus.engine import create_flow_run
from hitl_bus.engine.states import State, StateType
from hitl_bus.web import create_app
from tests.helpers import eventually
from tests.models import ShirtOrder

NOT_UTF8 = b"\xff\xfe"


def warned(caplog: pytest.LogCaptureFixture, stream: str, entry_id: bytes | str) -> bool:
    """A warning names both the stream and the entry."""
    entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return any(
        r.levelno == logging.WARNING and stream in r.getMessage() and entry in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize("consumer", [None, "reader"])
@pytest.mark.parametrize("field", ["key", "sender"])
async def test_a_receiver_skips_an_entry_that_is_not_utf8(
    bus_url: str, caplog: pytest.LogCaptureFixture, field: str, consumer: str | None
) -> None:
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    stream = keys.input_stream(str(run.id), "str-auto")
    fields = {"key": b"str-auto-1", "sender": b"hitl.client.x", "data": b'{"value": "bad"}'}
    fields[field] = NOT_UTF8
    bad_id = await get_bus().client.xadd(stream, fields)
    await send_input("good", flow_run_id=run.id)
    receiver = receive_input(str, flow_run_id=run.id, timeout=2, consumer=consumer)
    with caplog.at_level(logging.WARNING, logger="hitl_bus.inputs"):
        async with asyncio.timeout(5):  # never a hang
            assert await receiver.next() == "good"
    assert warned(caplog, stream, bad_id)


@pytest.mark.usefixtures("real_redis_url")
async def test_a_pushed_corrupt_entry_is_skipped_too(caplog: pytest.LogCaptureFixture) -> None:
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    stream = keys.input_stream(str(run.id), "str-auto")
    receiver = receive_input(str, flow_run_id=run.id, timeout=5)
    waiting = asyncio.create_task(receiver.next())
    await asyncio.sleep(0.2)  # parked on the dispatcher: the entries are pushed to it
    bad_id = await get_bus().client.xadd(stream, {"key": NOT_UTF8, "data": b'{"value": "x"}'})
    await send_input("after", flow_run_id=run.id)
    with caplog.at_level(logging.WARNING, logger="hitl_bus.inputs"):
        assert await asyncio.wait_for(waiting, 5) == "after"
    assert warned(caplog, stream, bad_id)


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("HITL_BUS_PUBLIC_READS", "1")
    transport = httpx.ASGITransport(app=create_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@flow
async def shirt_with_logs() -> str:
    get_run_logger().info("asking")
    order = await pause_flow_run(wait_for_input=ShirtOrder, timeout=60)
    return f"{order.size} {order.color}"


async def paused_with_history() -> str:
    run = await start_flow_run(shirt_with_logs)

    async def paused() -> bool:
        return (await get_client().read_flow_run(run.id)).state.is_paused()

    await eventually(paused)
    await send_input("hello", flow_run_id=run.id)
    return str(run.id)


async def corrupt(run_id: str, where: str) -> tuple[str, str]:
    """Write one corrupt entry into a part of the run; returns (key, entry or field)."""
    client = get_bus().client
    match where:
        case "input":
            stream = keys.input_stream(run_id, "str-auto")
            fields = {"key": b"str-auto-x", "sender": b"s", "data": b"{not json"}
            return stream, (await client.xadd(stream, fields)).decode()
        case "input key":
            stream = keys.input_stream(run_id, "str-auto")
            fields = {"key": NOT_UTF8, "sender": b"s", "data": b'{"value": 1}'}
            return stream, (await client.xadd(stream, fields)).decode()
        case "event":
            stream = keys.run_events(run_id)
            fields = {"type": b"state.changed", "run_id": run_id, "ts": b"1", "data": b"{oops"}
            return stream, (await client.xadd(stream, fields)).decode()
        case "event ts":
            stream = keys.run_events(run_id)
            fields = {"type": b"input.received", "run_id": run_id, "ts": b"soon", "data": b"{}"}
            return stream, (await client.xadd(stream, fields)).decode()
        case "event state":
            stream = keys.run_events(run_id)
            fields = {"type": b"state.changed", "run_id": run_id, "ts": b"1", "data": b"{}"}
            return stream, (await client.xadd(stream, fields)).decode()
        case "log":
            stream = keys.run_logs(run_id)
            fields = {"level": b"INFO", "logger": b"x", "message": NOT_UTF8, "ts": b"1"}
            return stream, (await client.xadd(stream, fields)).decode()
        case "receivers":
            await client.hset(keys.run_receivers(run_id), "str-auto", b"{not json")
            return keys.run_receivers(run_id), "str-auto"
        case "values":
            await client.hset(keys.run_values(run_id), "paused-1-description", b"{not json")
            return keys.run_values(run_id), "paused-1-description"
    raise AssertionError(where)


@pytest.mark.usefixtures("real_redis_url")
@pytest.mark.parametrize(
    "where",
    ["input", "input key", "event", "event ts", "event state", "log", "receivers", "values"],
)
async def test_a_run_with_a_corrupt_entry_still_loads(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    run_id = await paused_with_history()
    key, entry = await corrupt(run_id, where)
    with caplog.at_level(logging.WARNING):
        detail = await api.get(f"/api/runs/{run_id}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert [s["type"] for s in body["history"]] == ["PENDING", "RUNNING", "PAUSED"]
    assert [i["data"] for i in body["inputs"]] == [{"value": "hello"}]
    assert [r["message"] for r in body["logs"]] == ["asking"]
    assert body["pause"]["schema"]["properties"]["size"]["enum"][0] == "small"
    assert warned(caplog, key, entry)
