"""Sessions, CSRF and the docs' read rule, through the ASGI app on real Redis."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from hitl_bus import keys
from hitl_bus.web import create_app
from tests.web import AUTH, TOKEN, log_in

pytestmark = pytest.mark.usefixtures("real_redis_url")


@pytest.fixture
async def admin(real_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(real_redis_url)
    yield client
    await client.aclose()


def csrf(html: str) -> str:
    return html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


# --- sessions ------------------------------------------------------------------------------


async def test_the_cookie_holds_only_a_random_id_kept_in_redis(
    app: httpx.AsyncClient, admin: aioredis.Redis
) -> None:
    login = await app.get("/login", params={"token": TOKEN})
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    session_id = app.cookies["hitl_session"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", session_id)  # 32 random bytes, nothing else
    record = await admin.get(keys.session(session_id))
    assert record is not None and TOKEN.encode() not in record
    ttl = await admin.ttl(keys.session(session_id))
    assert 12 * 3600 - 5 <= ttl <= 12 * 3600  # HITL_BUS_SESSION_MAX_AGE's default
    assert (await app.get("/api/runs")).status_code == 200


async def test_logout_ends_the_session_even_for_a_kept_cookie(
    app: httpx.AsyncClient, admin: aioredis.Redis
) -> None:
    session_id = await log_in(app)
    token = csrf((await app.get("/")).text)
    out = await app.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303 and "hitl_session" not in app.cookies  # the browser forgets it
    assert await admin.exists(keys.session(session_id)) == 0
    # Someone who copied the cookie before:
    app.cookies.set("hitl_session", session_id, domain="test.local")
    assert (await app.get("/api/runs")).status_code == 401
    page = await app.get("/")
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


async def test_a_new_token_ends_old_sessions(
    app: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await log_in(app)
    assert (await app.get("/api/runs")).status_code == 200
    monkeypatch.setenv("HITL_BUS_API_TOKEN", "rotated")
    assert (await app.get("/api/runs")).status_code == 401
    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)  # the old token back: the session was its
    assert (await app.get("/api/runs")).status_code == 200


async def test_each_login_gets_a_new_session_and_a_made_up_id_gets_none(
    app: httpx.AsyncClient, admin: aioredis.Redis
) -> None:
    planted = "chosen-by-an-attacker"
    app.cookies.set("hitl_session", planted, domain="test.local")
    assert (await app.get("/api/runs")).status_code == 401
    first = await log_in(app)
    assert first != planted
    second = await log_in(app)
    assert second != first
    assert await admin.exists(keys.session(first)) == 0  # the earlier one is gone
    app.cookies.set("hitl_session", "x" * 5000, domain="test.local")
    assert (await app.get("/api/runs")).status_code == 401


async def test_a_session_write_needs_its_own_csrf_token(app: httpx.AsyncClient) -> None:
    await log_in(app)
    mine = csrf((await app.get("/")).text)
    transport = httpx.ASGITransport(app=create_app())  # another browser
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as other:
        await log_in(other)
        theirs = csrf((await other.get("/")).text)
    assert mine and theirs and mine != theirs  # a token per session
    url = "/api/runs/00000000-0000-0000-0000-000000000000/cancel"
    assert (await app.post(url, headers={"X-CSRF-Token": theirs})).status_code == 403
    assert (await app.post(url, headers={"X-CSRF-Token": mine})).status_code == 404  # let in


async def test_pages_for_a_visitor_without_a_session_carry_no_csrf_token(
    monkeypatch: pytest.MonkeyPatch, admin: aioredis.Redis
) -> None:
    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
    monkeypatch.setenv("HITL_BUS_PUBLIC_READS", "1")
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = await client.get("/")
    assert page.status_code == 200 and csrf(page.text) == ""
    assert "set-cookie" not in page.headers
    assert await admin.keys(keys.session("*")) == []  # a visit stores nothing


async def test_the_session_cookie_is_secure_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
    monkeypatch.setenv("HITL_BUS_SESSION_HTTPS_ONLY", "1")
    monkeypatch.setenv("HITL_BUS_SESSION_MAX_AGE", "600")
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
        login = await client.get("/login", params={"token": TOKEN})
    cookie = login.headers["set-cookie"].lower()
    assert "secure" in cookie and "max-age=600" in cookie


# --- the API docs --------------------------------------------------------------------------


async def test_docs_and_openapi_need_the_token_when_reads_do(
    app: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await app.get("/openapi.json")).status_code == 401
    docs = await app.get("/docs")
    assert docs.status_code == 303 and docs.headers["location"] == "/login?next=/docs"
    assert (await app.get("/redoc")).status_code == 404  # one docs page, not two
    with_bearer = await app.get("/openapi.json", headers=AUTH)
    assert "/api/runs/{run_id}/resume" in with_bearer.json()["paths"]
    await log_in(app)
    assert (await app.get("/openapi.json")).status_code == 200
    page = await app.get("/docs")
    assert page.status_code == 200
    assert '<script src="/docs/assets/swagger-ui-bundle.js">' in page.text  # served from here
    assert "cdn" not in page.text.lower()
    monkeypatch.setenv("HITL_BUS_PUBLIC_READS", "1")
    app.cookies.clear()
    assert (await app.get("/openapi.json")).status_code == 200
    assert (await app.get("/docs")).status_code == 200


async def test_the_docs_assets_are_served_by_this_server(app: httpx.AsyncClient) -> None:
    bundle = await app.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and "javascript" in bundle.headers["content-type"]
    assert "SwaggerUIBundle" in bundle.text
    css = await app.get("/docs/assets/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


# --- Redis URLs ----------------------------------------------------------------------------


async def test_redis_down_names_no_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from hitl_bus.redis_server import free_port

    monkeypatch.setenv("HITL_BUS_REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("HITL_BUS_PUBLIC_READS", "1")
    transport = httpx.ASGITransport(app=create_app())
    with caplog.at_level(logging.WARNING, logger="hitl_bus.web"):
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            down = await client.get("/api/runs")
    assert down.status_code == 503
    assert "hunter2" not in down.text and "hunter2" not in caplog.text
    assert "127.0.0.1" in caplog.text  # the address is for the server's log, not the page
