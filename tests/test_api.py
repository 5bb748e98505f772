"""The JSON HTTP API: every route and its errors, through the ASGI app."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from hitl_bus import flow, get_client, pause_flow_run, receive_input, start_flow_run
from hitl_bus.engine import create_flow_run
from hitl_bus.engine.states import State, StateType
from hitl_bus.web import create_app
from tests.helpers import eventually
from tests.models import ShirtOrder

pytestmark = pytest.mark.usefixtures("bus_url")
TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
    monkeypatch.setenv("HITL_BUS_PUBLIC_READS", "1")  # reads opened by the setting
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def paused_shirt() -> str:
    @flow
    async def shirt() -> str:
        order = await pause_flow_run(wait_for_input=ShirtOrder, timeout=60)
        return f"{order.size} {order.color}"

    run = await start_flow_run(shirt)

    async def paused() -> bool:
        return (await get_client().read_flow_run(run.id)).state.is_paused()

    await eventually(paused)
    return str(run.id)


async def test_list_and_read_runs(api: httpx.AsyncClient) -> None:
    run_id = await paused_shirt()
    listed = await api.get("/api/runs", params={"state": "paused"})
    assert listed.status_code == 200
    assert [r["id"] for r in listed.json()] == [run_id]
    detail = (await api.get(f"/api/runs/{run_id}")).json()
    assert detail["run"]["state"]["type"] == "PAUSED"
    assert detail["pause"]["schema"]["properties"]["size"]["enum"][0] == "small"
    assert [s["type"] for s in detail["history"]] == ["PENDING", "RUNNING", "PAUSED"]
    assert (await api.get(f"/api/runs/{uuid.uuid4()}")).status_code == 404
    assert (await api.get("/api/runs/not-a-uuid")).status_code == 422


async def test_resume_with_statuses(api: httpx.AsyncClient) -> None:
    run_id = await paused_shirt()
    url = f"/api/runs/{run_id}/resume"
    assert (
        await api.post(url, json={"input": {"size": "large", "color": "red"}})
    ).status_code == 401
    bad = await api.post(url, json={"input": {"size": "huge"}}, headers=AUTH)
    assert bad.status_code == 422
    assert {tuple(e["loc"]) for e in bad.json()["errors"]} >= {("size",)}
    ok = await api.post(url, json={"input": {"size": "large", "color": "red"}}, headers=AUTH)
    assert ok.status_code == 200
    again = await api.post(url, json={"input": {"size": "large", "color": "red"}}, headers=AUTH)
    assert again.status_code == 409
    missing = await api.post(f"/api/runs/{uuid.uuid4()}/resume", json={}, headers=AUTH)
    assert missing.status_code == 404


async def test_writes_are_off_without_a_configured_token(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HITL_BUS_API_TOKEN")
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    refused = await api.post(f"/api/runs/{run.id}/cancel", headers=AUTH)
    assert refused.status_code == 403


async def test_send_input_values_and_objects(api: httpx.AsyncClient) -> None:
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    url = f"/api/runs/{run.id}/input"
    assert (await api.post(url, json={"value": "Ada"}, headers=AUTH)).status_code == 200
    sent = await api.post(
        url, json={"data": {"size": "small", "color": "red"}, "key_prefix": "shirtorder-auto"},
        headers=AUTH,
    )  # fmt: skip
    assert sent.status_code == 200 and sent.json()["key"].startswith("shirtorder-auto-")
    assert await receive_input(str, flow_run_id=run.id, timeout=1).next() == "Ada"
    order = await receive_input(ShirtOrder, flow_run_id=run.id, timeout=1).next()
    assert order.color == "red"
    bad_prefix = await api.post(url, json={"value": 1, "key_prefix": "Bad Prefix"}, headers=AUTH)
    assert bad_prefix.status_code == 422
    assert (await api.post(url, json={"data": {"a": 1}}, headers=AUTH)).status_code == 422
    missing = await api.post(f"/api/runs/{uuid.uuid4()}/input", json={"value": 1}, headers=AUTH)
    assert missing.status_code == 404


async def test_payload_too_large_is_413(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HITL_BUS_MAX_PAYLOAD_BYTES", "64")
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    big = await api.post(f"/api/runs/{run.id}/input", json={"value": "x" * 100}, headers=AUTH)
    assert big.status_code == 413


async def test_cancel_and_unknown_deployment(api: httpx.AsyncClient) -> None:
    run = await create_flow_run("x", state=State(type=StateType.SCHEDULED))
    cancelled = await api.post(f"/api/runs/{run.id}/cancel", headers=AUTH)
    assert cancelled.json()["state"]["type"] == "CANCELLED"
    start = await api.post("/api/deployments/nope/nothing/runs", json={}, headers=AUTH)
    assert start.status_code == 404


async def test_openapi_and_health(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    spec = (await api.get("/openapi.json")).json()
    assert "/api/runs/{run_id}/resume" in spec["paths"]


@pytest.mark.usefixtures("real_redis_url")
async def test_live_events_over_sse() -> None:
    import uvicorn

    from hitl_bus.redis_server import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: _now(server.started))
        run = await create_flow_run("x", state=State(type=StateType.RUNNING))
        seen: list[str] = []
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
            http.stream("GET", "/api/events", params={"run_id": str(run.id)}) as response,
        ):
            assert response.status_code == 200

            async def read() -> None:
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        seen.append(line.split(":", 1)[1].strip())
                        if "input.received" in seen:
                            return

            reading = asyncio.create_task(read())
            await asyncio.sleep(0.2)
            from hitl_bus import send_input

            await send_input("hello", flow_run_id=run.id)
            async with asyncio.timeout(5):  # pushed, not at a poll
                await reading
        assert "input.received" in seen
    finally:
        server.should_exit = True
        await serving


async def _now(value: bool) -> bool:
    return value
