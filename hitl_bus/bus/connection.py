"""Open Redis clients from a URL: standalone, Cluster, or an in-memory fake for tests.

The scheme picks the backend, as in saq's ``Queue.from_url``:

- ``redis://``, ``rediss://``, ``unix://``: standalone Redis;
- ``redis+cluster://``, ``rediss+cluster://``: Redis Cluster (any node as seed);
- ``fakeredis://<name>``: a fakeredis server shared by every client of that name.

RESP2 is pinned (redis-py 8 would negotiate RESP3): every reply shape in
hitl_bus is coded against RESP2, which Redis 6.2 and 7 both speak.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from hitl_bus.errors import BusConnectionError

RedisClient = aioredis.Redis | RedisCluster
#: Every connection names itself, so ``CLIENT LIST`` shows what a process holds.
CLIENT_NAME = "hitl-bus"

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_fake_servers: dict[str, Any] = {}


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in _CLUSTER_SCHEMES


def _fake_server(url: str) -> Any:
    import fakeredis  # test-only dependency, imported on demand

    name = urlsplit(url).netloc or "default"
    server = _fake_servers.get(name)
    if server is None:
        server = _fake_servers[name] = fakeredis.FakeServer()
    return server


def forget_fake_server(url: str) -> None:
    """Drop the data of a ``fakeredis://`` server (tests call this between cases)."""
    _fake_servers.pop(urlsplit(url).netloc or "default", None)


_holds_permit = contextvars.ContextVar("hitl_bus_holds_permit", default=False)


class _QueueingCluster(RedisCluster):
    """A Cluster client whose callers wait for a free connection.

    redis-py's async Cluster client raises ``MaxConnectionsError`` when a node's
    pool is full, where ``BlockingConnectionPool`` makes callers queue. A
    semaphore of the pool's size in front of every command and pipeline keeps
    each node under its cap; a pipeline's own retried commands reuse its permit.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._permits = asyncio.Semaphore(kwargs["max_connections"])

    @asynccontextmanager
    async def permit(self) -> AsyncIterator[None]:
        if _holds_permit.get():
            yield
            return
        async with self._permits:
            token = _holds_permit.set(True)
            try:
                yield
            finally:
                _holds_permit.reset(token)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.permit():
            with _cluster_errors():
                return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        super().pipeline(transaction, shard_hint)  # its argument checks
        return _QueueingPipeline(self, transaction)  # type: ignore[abstract]


class _QueueingPipeline(ClusterPipeline):
    async def initialize(self) -> ClusterPipeline:
        with _cluster_errors():
            return await super().initialize()

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        client: _QueueingCluster = self.cluster_client  # type: ignore[assignment]
        async with client.permit():
            with _cluster_errors():
                return await super().execute(raise_on_error, allow_redirections)


_UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


def _unreachable(exc: Exception) -> BusConnectionError:
    return BusConnectionError(f"Redis is unreachable ({exc}); check HITL_BUS_REDIS_URL")


@contextmanager
def _cluster_errors() -> Iterator[None]:
    """A Cluster client's "no node reachable" becomes ``BusConnectionError``.

    redis-py reports it as a ``RedisClusterException`` (also used for usage errors such as
    cross-slot commands), so only one caused by a connection failure is translated.
    """
    try:
        yield
    except (*_UNREACHABLE, RedisClusterException) as exc:
        cause = exc.__cause__ or exc.__context__
        if (
            isinstance(exc, _UNREACHABLE)
            or isinstance(cause, _UNREACHABLE)
            or "cannot be connected" in str(exc)
        ):
            raise _unreachable(exc) from exc
        raise


class _CommandClient(aioredis.Redis):
    """The standalone command client: an unreachable Redis raises ``BusConnectionError``.

    redis-py has already retried by then; this is the one place its connection
    errors become hitl_bus's (dispatcher readers keep their own reconnect loop).
    """

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except _UNREACHABLE as exc:
            raise _unreachable(exc) from exc

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _CommandPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


class _CommandPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error)
        except _UNREACHABLE as exc:
            raise _unreachable(exc) from exc


def open_command_client(url: str, max_connections: int) -> Any:
    """A client whose pool never holds more than ``max_connections`` (callers queue)."""
    scheme = urlsplit(url).scheme
    if scheme == "fakeredis":
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=_fake_server(url))
    if scheme in _CLUSTER_SCHEMES:
        seed = _CLUSTER_SCHEMES[scheme] + url[len(scheme) :]
        return _QueueingCluster.from_url(
            seed, protocol=2, max_connections=max_connections, client_name=CLIENT_NAME
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=None, protocol=2, client_name=CLIENT_NAME
    )
    return _CommandClient(connection_pool=pool)


def open_reader_client(url: str, host: str | None = None, port: int | None = None) -> Any:
    """A single-connection client for one blocking reader.

    For Cluster, ``host``/``port`` name the node that owns the reader's slot.
    """
    scheme = urlsplit(url).scheme
    if scheme == "fakeredis":
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=_fake_server(url))
    if scheme in _CLUSTER_SCHEMES:
        parts = urlsplit(_CLUSTER_SCHEMES[scheme] + url[len(scheme) :])
        return aioredis.Redis(
            host=host or parts.hostname or "127.0.0.1",
            port=port or parts.port or 6379,
            username=parts.username,
            password=parts.password,
            ssl=parts.scheme == "rediss",
            protocol=2,
            single_connection_client=True,
            client_name=CLIENT_NAME,
            socket_timeout=None,
            socket_keepalive=True,
        )
    # No socket timeout: the reader's XREAD blocks until data comes (redis-py 8 defaults to 5 s).
    return aioredis.Redis.from_url(
        url,
        protocol=2,
        single_connection_client=True,
        client_name=CLIENT_NAME,
        socket_timeout=None,
        socket_keepalive=True,
    )
