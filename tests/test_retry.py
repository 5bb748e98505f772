"""The retry policy: what is retried, for how long, and what never is."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    NoScriptError,
    RedisClusterException,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hitl_bus import keys as key_names
from hitl_bus.bus import get_bus
from hitl_bus.bus.deadlines import ReadDeadlines
from hitl_bus.bus.retrying import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    ReconnectRetry,
    is_transient,
    reconnect_backoff,
)
from hitl_bus.errors import BusConnectionError
from hitl_bus.redis_server import RedisServer
from hitl_bus.settings import get_settings


class Flaky:
    """A call failing with ``errors`` in turn, then returning ``"ok"``; counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Failures:
    """The ``fail`` callback: records each failure count it is given."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    async def __call__(self, error: Exception, failures: int) -> None:
        self.counts.append(failures)


async def reached_policy(timeout: float = 5.0) -> ReconnectRetry:
    """A policy for a URL this process has reached (one successful call)."""
    policy = ReconnectRetry(f"redis://test-{uuid.uuid4().hex}", timeout)
    assert await policy.call_with_retry(Flaky(), Failures(), with_failure_count=True) == "ok"
    return policy


async def test_transient_errors_are_retried_until_the_call_succeeds() -> None:
    policy = await reached_policy()
    call = Flaky(
        RedisConnectionError("Connection closed by server."),
        RedisTimeoutError("Timeout reading from socket"),
        BusyLoadingError("Redis is loading the dataset in memory"),
        RedisClusterException("Redis Cluster cannot be connected. Please provide at least ..."),
    )
    failures = Failures()
    assert await policy.call_with_retry(call, failures, with_failure_count=True) == "ok"
    assert call.calls == 5
    assert failures.counts == [1, 2, 3, 4]  # the connection is dropped before each retry


@pytest.mark.parametrize(
    "error",
    [
        ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        NoScriptError("NOSCRIPT No matching script"),
        AuthenticationError("invalid username-password pair"),
        RedisClusterException("Keys in request don't hash to the same slot"),
    ],
)
async def test_other_errors_are_raised_at_once(error: Exception) -> None:
    policy = await reached_policy()
    call = Flaky(error)
    with pytest.raises(type(error)):
        await policy.call_with_retry(call, Failures(), with_failure_count=True)
    assert call.calls == 1


def test_what_counts_as_transient() -> None:
    assert is_transient(RedisConnectionError("x"))
    assert is_transient(RedisTimeoutError("x"))
    assert is_transient(BusyLoadingError("x"))
    assert is_transient(ClusterDownError("CLUSTERDOWN The cluster is down"))
    assert is_transient(RedisClusterException("Redis Cluster cannot be connected. Please ..."))
    assert not is_transient(ResponseError("ERR unknown command"))
    assert not is_transient(AuthenticationError("x"))


async def test_a_redis_that_stays_down_fails_after_the_window() -> None:
    policy = await reached_policy(timeout=0.3)
    call = Flaky(*[RedisConnectionError(f"refused {i}") for i in range(10_000)])
    began = time.monotonic()
    with pytest.raises(RedisConnectionError):
        await policy.call_with_retry(call, Failures(), with_failure_count=True)
    waited = time.monotonic() - began
    assert 0.3 <= waited < 10  # the window, then the error (generous upper bound)
    assert call.calls > 2  # tried again and again meanwhile, backing off


async def test_the_window_is_zero_when_the_setting_is_zero() -> None:
    policy = await reached_policy(timeout=0)
    call = Flaky(RedisConnectionError("x"))
    with pytest.raises(RedisConnectionError):
        await policy.call_with_retry(call, Failures(), with_failure_count=True)
    assert call.calls == 1


async def test_a_url_never_reached_fails_at_once_unless_redis_is_loading() -> None:
    never = ReconnectRetry(f"redis://test-{uuid.uuid4().hex}", 5.0)
    refused = Flaky(RedisConnectionError("Error 111 connecting"))
    with pytest.raises(RedisConnectionError):
        await never.call_with_retry(refused, Failures(), with_failure_count=True)
    assert refused.calls == 1  # a wrong address is not waited for
    loading = Flaky(BusyLoadingError("loading"), BusyLoadingError("loading"))
    assert await never.call_with_retry(loading, Failures(), with_failure_count=True) == "ok"
    assert loading.calls == 3  # a server is there, loading: wait for it


async def test_nested_retries_share_one_window() -> None:
    """redis-py reconnects inside a retried command: the whole stays within one window."""
    policy = await reached_policy(timeout=0.3)
    outer_calls = 0

    async def command() -> str:
        nonlocal outer_calls
        outer_calls += 1
        reconnect = Flaky(*[RedisConnectionError("refused") for _ in range(10_000)])
        return await policy.call_with_retry(reconnect, Failures(), with_failure_count=True)

    began = time.monotonic()
    with pytest.raises(RedisConnectionError):
        await policy.call_with_retry(command, Failures(), with_failure_count=True)
    assert outer_calls == 1  # the inner loop used the window up; the outer does not start anew
    assert time.monotonic() - began < 10


async def test_without_a_fail_count_the_callback_gets_the_error_only() -> None:
    policy = await reached_policy()
    seen: list[Exception] = []

    async def fail(error: Exception) -> None:
        seen.append(error)

    error = RedisConnectionError("cut")
    assert await policy.call_with_retry(Flaky(error), fail) == "ok"
    assert seen == [error]


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    backoff = reconnect_backoff()
    for failures in range(1, 12):
        delays = [backoff.compute(failures) for _ in range(200)]
        assert all(0 <= d <= min(BACKOFF_CAP, BACKOFF_BASE * 2**failures) for d in delays)
        if BACKOFF_BASE * 2**failures <= 2 * BACKOFF_CAP:  # past that nearly all are capped
            assert len(set(delays)) > 1  # jittered: clients do not retry in lockstep
    assert max(backoff.compute(20) for _ in range(200)) <= BACKOFF_CAP


def test_one_policy_serves_every_connection_of_a_pool() -> None:
    import copy

    policy = ReconnectRetry("redis://x", 1.0)
    assert copy.deepcopy(policy) is policy  # redis-py deep-copies it into each connection


def test_the_reconnect_timeout_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_settings().reconnect_timeout == 30.0
    monkeypatch.setenv("HITL_BUS_RECONNECT_TIMEOUT", "2.5")
    assert get_settings().reconnect_timeout == 2.5
    monkeypatch.setenv("HITL_BUS_RECONNECT_TIMEOUT", "-1")
    with pytest.raises(ValueError):
        get_settings()


# -- against real servers ------------------------------------------------------------------


def _down_for(server: RedisServer, seconds: float) -> threading.Thread:
    """Stop ``server`` now and start it again (same port and data) ``seconds`` later."""
    server.stop()

    def back() -> None:
        time.sleep(seconds)
        server.start()

    thread = threading.Thread(target=back)
    thread.start()
    return thread


async def _each(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    return [await call() for call in calls]


@pytest.mark.realredis
async def test_commands_and_pipelines_wait_for_a_restarting_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with RedisServer(appendonly=True) as server:
        monkeypatch.setenv("HITL_BUS_REDIS_URL", server.url)
        client = get_bus().client
        await client.set("k", "before")
        thread = _down_for(server, 0.5)
        try:

            async def pipeline() -> list[Any]:
                async with client.pipeline(transaction=True) as pipe:
                    pipe.incr("n")
                    pipe.get("k")
                    return await pipe.execute()  # type: ignore[no-any-return]

            got = await _each(lambda: client.get("k"), pipeline, lambda: client.set("k", "after"))
        finally:
            thread.join()
        assert got == [b"before", [1, b"before"], True]
        assert await client.get("k") == b"after"


@pytest.mark.realredis
async def test_a_cancelled_command_leaves_no_reply_behind_for_the_next(
    real_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command cancelled while Redis works on it must not hand its late reply to the
    next command on its connection, nor keep the connection's place in the pool."""
    monkeypatch.setenv("HITL_BUS_COMMAND_CONNECTIONS", "2")
    client = get_bus().client
    key = f"test:cancel:{uuid.uuid4()}"
    for round_ in range(6):
        slow = asyncio.ensure_future(client.blpop([key + ":empty"], timeout=0.05))
        await asyncio.sleep(0.01)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert await client.set(key, str(round_)) is True
        assert await client.get(key) == str(round_).encode()
    # Every permit came back: as many commands as connections run at once, then more.
    replies = await asyncio.gather(*(client.incr(key + ":n") for _ in range(10)))
    assert sorted(replies) == list(range(1, 11))


@pytest.mark.realredis
async def test_idle_connections_cut_by_redis_are_made_again(
    real_redis_url: str, admin: Any
) -> None:
    client = get_bus().client
    key = f"test:cut:{uuid.uuid4()}"
    await asyncio.gather(*(client.incr(key) for _ in range(4)))  # several idle connections
    killed = await admin.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    assert await client.incr(key) == 5
    assert await asyncio.gather(*(client.get(key) for _ in range(3))) == [b"5"] * 3


@pytest.mark.realredis
async def test_a_redis_down_longer_than_the_window_is_a_bus_connection_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HITL_BUS_RECONNECT_TIMEOUT", "0.5")
    with RedisServer() as server:
        monkeypatch.setenv("HITL_BUS_REDIS_URL", server.url)
        client = get_bus().client
        await client.ping()
        server.stop()
        began = time.monotonic()
        with pytest.raises(BusConnectionError, match="HITL_BUS_REDIS_URL"):
            await client.get("k")
        assert 0.5 <= time.monotonic() - began < 10


@pytest.mark.realredis
async def test_a_reply_that_never_comes_times_out_and_the_connection_is_made_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A frozen Redis (SIGSTOP) answers nothing: the read is cut off after the connection's
    socket timeout (5 s) by the loop's one read timer, as redis-py's own timeout would; a
    pause shorter than that is only waited out; after the thaw the client works again and
    no read is left open."""
    monkeypatch.setenv("HITL_BUS_RECONNECT_TIMEOUT", "0")
    with RedisServer() as server:
        monkeypatch.setenv("HITL_BUS_REDIS_URL", server.url)
        client = get_bus().client
        await client.set("k", "v")
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            thaw = asyncio.get_running_loop().call_later(1.0, os.kill, server.pid, signal.SIGCONT)
            assert await client.get("k") == b"v"  # a second of silence is only waited out
            thaw.cancel()
            os.kill(server.pid, signal.SIGSTOP)
            began = time.monotonic()
            with pytest.raises(BusConnectionError):
                async with asyncio.timeout(15):  # never unbounded: a TimeoutError fails here
                    await client.get("k")
            assert 4.5 <= time.monotonic() - began < 15
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert await client.get("k") == b"v"
        assert ReadDeadlines.of_running_loop().open_reads() == 0


@pytest.mark.cluster
async def test_cluster_commands_and_pipelines_wait_for_a_restarting_master(
    cluster_url: str,
    redis_cluster: list[RedisServer],
) -> None:
    import redis as sync_redis

    client = get_bus().client
    key = "hitl:{retry-test}:k"
    slot = key_names.slot(key)
    with sync_redis.Redis(port=redis_cluster[0].port, protocol=2) as admin:
        owners = {
            s: int(master[1])
            for start, end, master, *_ in admin.execute_command("CLUSTER SLOTS")
            for s in range(start, end + 1)
        }
    node = next(n for n in redis_cluster if n.port == owners[slot])
    await client.set(key, "before")
    thread = _down_for(node, 0.5)  # no AOF on these nodes: the key is gone after
    try:

        async def pipeline() -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.set(key, "during")
                pipe.get(key)
                return await pipe.execute()  # type: ignore[no-any-return]

        got = await _each(pipeline, lambda: client.get(key))
    finally:
        thread.join()
    assert got == [[True, b"during"], b"during"]
    await asyncio.sleep(0)
