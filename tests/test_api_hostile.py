"""Hostile request bodies: refused with a clear status, naming the field, changing nothing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import BaseModel

from hitl_bus import flow, get_client, pause_flow_run, start_flow_run
from hitl_bus.deployments.registry import register
from hitl_bus.engine import create_flow_run
from hitl_bus.engine.states import State, StateType
from hitl_bus.inputs import RunInput
from hitl_bus.web import api, create_app
from tests.helpers import eventually

pytestmark = pytest.mark.usefixtures("real_redis_url")
TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


class Anything(RunInput):
    """A pause that takes any value, so only the body reading can refuse one."""

    v: Any = None


@flow
async def waits_for_anything() -> Any:
    return (await pause_flow_run(wait_for_input=Anything, timeout=60)).v


@flow
async def takes_anything(v: Any = None) -> Any:
    return v


@pytest.fixture
async def api_client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
    transport = httpx.ASGITransport(app=create_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def snapshot(url: str) -> dict[bytes, bytes | None]:
    """Every key in Redis with its serialized value: equal snapshots, nothing written."""
    admin = aioredis.Redis.from_url(url)
    try:
        return {key: await admin.dump(key) for key in sorted(await admin.keys("*"))}
    finally:
        await admin.aclose()


async def paused_run() -> str:
    run = await start_flow_run(waits_for_anything)

    async def paused() -> bool:
        return (await get_client().read_flow_run(run.id)).state.is_paused()

    await eventually(paused)
    return str(run.id)


async def write_targets() -> dict[str, tuple[str, bytes]]:
    """Each write route with a body, and how a value ``V`` goes in it."""
    running = await create_flow_run("x", state=State(type=StateType.RUNNING))
    await register(takes_anything.to_deployment("any"))
    return {
        "input": (f"/api/runs/{running.id}/input", b'{"value": V}'),
        "resume": (f"/api/runs/{await paused_run()}/resume", b'{"input": {"v": V}}'),
        "start": ("/api/deployments/takes-anything/any/runs", b'{"parameters": {"v": V}}'),
    }


HOSTILE = {
    "int beyond 64 bits": b"123456789012345678901234567890",
    "negative int beyond 64 bits": b"-9223372036854775809",
    "int of 5000 digits": b"9" * 5000,
    "lone surrogate": b'"\\ud800"',
    "not UTF-8": b'"\xff\xfe"',
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "-Infinity": b"-Infinity",
    "1e400": b"1e400",
    "-1e400": b"-1e400",
}
LOC = {
    "input": ["body", "value"],
    "resume": ["body", "input", "v"],
    "start": ["body", "parameters", "v"],
}


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_a_hostile_value_is_refused_naming_the_field_and_nothing_is_written(
    api_client: httpx.AsyncClient, real_redis_url: str, value: bytes
) -> None:
    targets = await write_targets()
    before = await snapshot(real_redis_url)
    for route, (url, template) in targets.items():
        refused = await api_client.post(url, content=template.replace(b"V", value), headers=AUTH)
        assert refused.status_code == 422, (route, refused.text)
        body = refused.json()
        assert body["errors"][0]["loc"] == LOC[route], route
        assert body["detail"].startswith("the request is not valid")
    assert await snapshot(real_redis_url) == before
    # The same routes take a big but exact number: the refusal was about the value alone.
    exact = b"18446744073709551615"  # the largest 64-bit unsigned integer
    for route, (url, template) in targets.items():
        ok = await api_client.post(url, content=template.replace(b"V", exact), headers=AUTH)
        assert ok.status_code == 200, (route, ok.text)
        if route == "start":
            assert ok.json()["run"]["parameters"] == {"v": 2**64 - 1}


async def test_every_write_honours_the_payload_limit(
    api_client: httpx.AsyncClient, real_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = await write_targets()
    running = await create_flow_run("x", state=State(type=StateType.RUNNING))
    cancel = f"/api/runs/{running.id}/cancel"
    monkeypatch.setenv("HITL_BUS_MAX_PAYLOAD_BYTES", "1024")
    before = await snapshot(real_redis_url)
    big = b'"' + b"x" * 10_000 + b'"'
    for route, (url, template) in targets.items():
        refused = await api_client.post(url, content=template.replace(b"V", big), headers=AUTH)
        assert refused.status_code == 413, (route, refused.text)
        assert "over the limit of 1024 bytes" in refused.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: cut off while reading
        yield b'{"input": {"v": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}}'

    url = targets["resume"][0]
    streamed = await api_client.post(url, content=chunks(), headers=AUTH)
    assert streamed.status_code == 413
    assert (await api_client.post(cancel, content=big, headers=AUTH)).status_code == 413
    assert await snapshot(real_redis_url) == before


async def test_a_body_that_is_not_json_is_refused(api_client: httpx.AsyncClient) -> None:
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    url = f"/api/runs/{run.id}/input"
    form = {"Authorization": AUTH["Authorization"]}
    as_form = await api_client.post(url, data={"value": "1"}, headers=form)
    assert as_form.status_code == 415
    for content in (b"", b"{", b"[1] 2", b"\xef\xbb\xbf{}"):
        refused = await api_client.post(url, content=content, headers=AUTH)
        assert refused.status_code == 422, content
        assert refused.json()["errors"][0]["loc"] == ["body"]


async def test_request_errors_share_the_projects_shape(api_client: httpx.AsyncClient) -> None:
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    bad_state = await api_client.get("/api/runs", params={"state": "bogus"}, headers=AUTH)
    assert bad_state.status_code == 422
    assert bad_state.json()["errors"][0]["loc"] == ["query", "state"]
    bad_limit = await api_client.get("/api/runs", params={"limit": 0}, headers=AUTH)
    assert bad_limit.status_code == 422
    assert [e["loc"] for e in bad_limit.json()["errors"]] == [["query", "limit"]]
    assert "input" not in bad_limit.json()["errors"][0]  # the request is not echoed back
    url = f"/api/runs/{run.id}/input"
    prefix = await api_client.post(url, json={"value": 1, "key_prefix": "Bad!"}, headers=AUTH)
    assert prefix.status_code == 422
    assert prefix.json()["errors"][0]["loc"] == ["body", "key_prefix"]
    assert "lowercase" in prefix.json()["errors"][0]["msg"]
    no_prefix = await api_client.post(url, json={"data": {"a": 1}}, headers=AUTH)
    assert no_prefix.status_code == 422
    assert "needs the receiver's 'key_prefix'" in no_prefix.json()["errors"][0]["msg"]


class Boom(BaseModel):
    must_be_int: int


async def test_an_internal_error_is_500_with_an_id_the_log_repeats(
    api_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(**_: Any) -> Any:
        Boom.model_validate({"must_be_int": "x"})  # a bug of ours, not the client's

    monkeypatch.setattr(api.client, "read_flow_runs", broken)
    with caplog.at_level(logging.ERROR, logger="hitl_bus.web"):
        failed = await api_client.get("/api/runs", headers=AUTH)
    assert failed.status_code == 500
    assert failed.headers["x-content-type-options"] == "nosniff"  # headers as on any answer
    assert "frame-ancestors 'none'" in failed.headers["content-security-policy"]
    error_id = failed.json()["error_id"]
    assert error_id in failed.json()["detail"]
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0].__name__ == "ValidationError"

    async def also_broken(**_: Any) -> Any:
        raise ValueError("an internal mistake")

    monkeypatch.setattr(api.client, "read_flow_runs", also_broken)
    assert (await api_client.get("/api/runs", headers=AUTH)).status_code == 500
    other = (await api_client.get(f"/api/runs/{uuid.uuid4()}", headers=AUTH)).status_code
    assert other == 404  # the project's own errors keep their status
