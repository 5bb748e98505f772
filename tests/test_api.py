"""The JSON HTTP API: every route and its errors, through the ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
import pytest

from hitl_bus import (
    flow,
    get_client,
    get_run_logger,
    pause_flow_run,
    receive_input,
    start_flow_run,
)
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


@pytest.fixture
async def closed_api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the token set and reads not opened: everything needs a login."""
    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_reads_need_the_token_unless_opened(
    closed_api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await closed_api.get("/api/runs")).status_code == 401
    assert (await closed_api.get("/api/events")).status_code == 401
    assert (await closed_api.get("/api/runs", headers=AUTH)).status_code == 200
    page = await closed_api.get("/")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/"
    monkeypatch.setenv("HITL_BUS_PUBLIC_READS", "true")
    assert (await closed_api.get("/api/runs")).status_code == 200
    monkeypatch.delenv("HITL_BUS_PUBLIC_READS")
    monkeypatch.delenv("HITL_BUS_API_TOKEN")  # no token: reads open, writes off
    assert (await closed_api.get("/api/runs")).status_code == 200


def _csrf(html: str) -> str:
    return html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


async def test_session_login_csrf_and_logout(closed_api: httpx.AsyncClient) -> None:
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    cancel = f"/api/runs/{run.id}/cancel"
    wrong = await closed_api.get("/login", params={"token": "nope"})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    login = await closed_api.get("/login", params={"token": TOKEN, "next": "//evil.example"})
    assert login.status_code == 303 and login.headers["location"] == "/"  # no open redirect
    assert "httponly" in login.headers["set-cookie"].lower()
    assert "samesite=strict" in login.headers["set-cookie"].lower()
    assert (await closed_api.get("/api/runs")).status_code == 200  # the session reads
    token = _csrf((await closed_api.get("/")).text)

    assert (await closed_api.post(cancel)).status_code == 403  # no CSRF token
    forged = await closed_api.post(
        cancel, headers={"X-CSRF-Token": token, "Origin": "http://evil.example"}
    )
    assert forged.status_code == 403  # right token, foreign origin
    cross_site = await closed_api.post(
        cancel, headers={"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"}
    )
    assert cross_site.status_code == 403
    assert (await get_client().read_flow_run(run.id)).state.type == StateType.RUNNING
    ok = await closed_api.post(cancel, headers={"X-CSRF-Token": token, "Origin": "http://test"})
    assert ok.status_code == 200

    out = await closed_api.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert (await closed_api.get("/api/runs")).status_code == 401


async def test_form_login_refuses_a_cross_site_post(closed_api: httpx.AsyncClient) -> None:
    evil = await closed_api.post(
        "/login", data={"token": TOKEN}, headers={"Origin": "http://evil.example"}
    )
    assert evil.status_code == 403
    bad = await closed_api.post("/login", data={"token": "nope"})
    assert bad.status_code == 401
    good = await closed_api.post("/login", data={"token": TOKEN, "next": "/runs/x"})
    assert good.status_code == 303 and good.headers["location"] == "/runs/x"


async def test_list_deployments_and_start_with_checked_parameters(api: httpx.AsyncClient) -> None:
    from hitl_bus.deployments.registry import register

    @flow
    async def tidy(days: int = 7, mode: Literal["quick", "deep"] = "quick") -> None:
        return None

    await register(tidy.to_deployment("nightly", parameters={"days": 3}))
    listed = (await api.get("/api/deployments")).json()
    assert [(d["name"], d["parameters"], d["accepted"]) for d in listed] == [
        ("tidy/nightly", {"days": 3}, ["days", "mode"])
    ]
    schema = listed[0]["parameter_schema"]
    assert schema["properties"]["days"]["type"] == "integer"
    assert schema["properties"]["mode"]["enum"] == ["quick", "deep"]

    url = "/api/deployments/tidy/nightly/runs"
    bad = await api.post(url, json={"parameters": {"days": "x", "mode": "slow"}}, headers=AUTH)
    assert bad.status_code == 422
    assert {tuple(e["loc"]): e["msg"] for e in bad.json()["errors"]} == {
        ("days",): "must be a whole number",
        ("mode",): "must be one of: quick, deep",
    }
    assert (await api.get("/api/runs")).json() == []  # nothing was queued
    good = await api.post(url, json={"parameters": {"mode": "deep"}}, headers=AUTH)
    assert good.status_code == 200
    assert good.json()["run"]["parameters"] == {"days": 3, "mode": "deep"}


async def test_sent_input_is_checked_against_the_receiver(api: httpx.AsyncClient) -> None:
    @flow
    async def orders() -> str:
        order = await receive_input(ShirtOrder, timeout=30).next()
        return f"{order.size} {order.color}"

    run = await start_flow_run(orders)

    async def receiving() -> bool:
        return bool((await api.get(f"/api/runs/{run.id}")).json()["receivers"])

    await eventually(receiving)
    url = f"/api/runs/{run.id}/input"
    prefix = ShirtOrder.default_key_prefix()
    bad = await api.post(url, json={"data": {"size": "huge"}, "key_prefix": prefix}, headers=AUTH)
    assert bad.status_code == 422
    assert {tuple(e["loc"]): e["msg"] for e in bad.json()["errors"]} == {
        ("size",): "must be one of: small, medium, large, xlarge",
        ("color",): "is required",
    }
    good = {"data": {"size": "large", "color": "red"}, "key_prefix": prefix}
    assert (await api.post(url, json=good, headers=AUTH)).status_code == 200
    finished = await get_client().wait_for_flow_run(run.id, timeout=5)
    assert finished.state.type == StateType.COMPLETED
    detail = (await api.get(f"/api/runs/{run.id}")).json()
    assert [(i["key_prefix"], i["data"]) for i in detail["inputs"]] == [
        (prefix, {"size": "large", "color": "red"})
    ]
    assert detail["receivers"][prefix]["properties"]["size"]["enum"][0] == "small"


async def test_a_paused_runs_description_is_sanitized_html(api: httpx.AsyncClient) -> None:
    @flow
    async def described() -> None:
        form = ShirtOrder.with_initial_data(
            description="**Pick** one. <script>x()</script> [bad](javascript:x())"
        )
        await pause_flow_run(wait_for_input=form, timeout=60)

    run = await start_flow_run(described)

    async def paused() -> bool:
        return (await get_client().read_flow_run(run.id)).state.is_paused()

    await eventually(paused)
    html = (await api.get(f"/api/runs/{run.id}")).json()["pause"]["description_html"]
    assert "<strong>Pick</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "href" not in html


@contextlib.asynccontextmanager
async def live_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a real port (SSE needs a real connection), with a Bearer-token client."""
    import uvicorn

    from hitl_bus.redis_server import free_port

    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: _now(server.started))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:
            yield http
    finally:
        server.should_exit = True
        await serving


async def _sse(lines: AsyncIterator[str], event: str, count: int) -> list[Any]:
    """The data of the next ``count`` events named ``event`` among SSE ``lines``."""
    found: list[Any] = []
    name = ""
    async for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and name == event:
            found.append(json.loads(line[5:]))
            if len(found) == count:
                return found
    return found


@pytest.mark.usefixtures("real_redis_url")
async def test_live_logs_and_replies_over_sse(monkeypatch: pytest.MonkeyPatch) -> None:
    @flow
    async def chatty() -> None:
        get_run_logger().info("ready")
        async for name in receive_input(str, with_metadata=True, timeout=10):
            get_run_logger().info("got %s", name.value)
            if name.value == "bye":
                return
            await name.respond(f"Hello, {name.value}!")

    async with live_server(monkeypatch) as http:
        run = await start_flow_run(chatty)
        logs_url, replies_url = f"/api/runs/{run.id}/logs", f"/api/runs/{run.id}/replies"
        async with http.stream("GET", logs_url) as logs, http.stream("GET", replies_url) as replies:
            log_lines = logs.aiter_lines()
            first = await asyncio.wait_for(_sse(log_lines, "log", 1), 5)
            assert first[0]["message"] == "ready"  # what was written before we came
            reply = asyncio.create_task(_sse(replies.aiter_lines(), "reply", 1))
            await asyncio.sleep(0.3)  # the replies stream is looking
            sent = await http.post(f"/api/runs/{run.id}/input", json={"value": "Ada"})
            assert sent.status_code == 200
            assert (await asyncio.wait_for(reply, 5))[0]["data"] == {"value": "Hello, Ada!"}
            later = await asyncio.wait_for(_sse(log_lines, "log", 1), 5)
            assert later[0]["message"] == "got Ada"
        await http.post(f"/api/runs/{run.id}/input", json={"value": "bye"})
        unknown = await http.get(f"/api/runs/{uuid.uuid4()}/logs")
        assert unknown.status_code == 404


async def test_redis_down_is_503(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from hitl_bus.redis_server import free_port

    port = free_port()
    monkeypatch.setenv("HITL_BUS_REDIS_URL", f"redis://127.0.0.1:{port}/0")  # nobody
    monkeypatch.setenv("HITL_BUS_PUBLIC_READS", "1")
    transport = httpx.ASGITransport(app=create_app())
    with caplog.at_level(logging.WARNING, logger="hitl_bus.web"):
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            down = await client.get("/api/runs")
    assert down.status_code == 503
    # Worded for the person; the address and the error are for the server's log.
    assert down.json()["detail"].startswith("The server can't reach its store;")
    assert "127.0.0.1" not in down.json()["detail"]
    assert f"127.0.0.1:{port}" in caplog.text


async def test_a_page_asked_for_while_redis_is_down_says_so_in_plain_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hitl_bus.redis_server import free_port

    monkeypatch.setenv("HITL_BUS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # nobody
    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        client.cookies.set("hitl_session", "some-session")  # its record is in Redis
        page = await client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert "The server can't reach its store" in page.text
    assert "127.0.0.1" not in page.text and "<script" not in page.text


async def test_the_session_cookie_can_be_https_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
    monkeypatch.setenv("HITL_BUS_SESSION_HTTPS_ONLY", "1")
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
        login = await client.get("/login", params={"token": TOKEN})
    assert login.status_code == 303
    assert "secure" in login.headers["set-cookie"].lower()


@pytest.mark.usefixtures("real_redis_url")
async def test_one_live_stream_carries_events_logs_and_replies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @flow
    async def echo() -> None:
        get_run_logger().info("listening")
        async for text in receive_input(str, with_metadata=True, timeout=10):
            await text.respond(text.value.upper())
            return

    async with live_server(monkeypatch) as http:
        run = await start_flow_run(echo)
        async with http.stream("GET", f"/api/runs/{run.id}/live") as live:
            lines = live.aiter_lines()
            assert (await asyncio.wait_for(_sse(lines, "log", 1), 5))[0]["message"] == "listening"
            await asyncio.sleep(0.3)  # the replies follower is looking
            sent = await http.post(f"/api/runs/{run.id}/input", json={"value": "hi"})
            assert sent.status_code == 200

            async def until_replied_and_completed() -> list[tuple[str, Any]]:
                seen: list[tuple[str, Any]] = []
                name = ""
                async for line in lines:
                    if line.startswith("event:"):
                        name = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and name in ("reply", "state.changed"):
                        seen.append((name, json.loads(line[5:])["data"]))
                        names = {n for n, _ in seen}
                        if names == {"reply", "state.changed"} and any(
                            d["state"]["type"] == "COMPLETED" for n, d in seen if n != "reply"
                        ):
                            return seen
                return seen

            seen = await asyncio.wait_for(until_replied_and_completed(), 5)
            assert ("reply", {"value": "HI"}) in seen
        detail = (await http.get(f"/api/runs/{run.id}", params={"logs": "false"})).json()
        assert "logs" not in detail and detail["inputs"][0]["data"] == {"value": "hi"}
        assert (await http.get(f"/api/runs/{uuid.uuid4()}/live")).status_code == 404
