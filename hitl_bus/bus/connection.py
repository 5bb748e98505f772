"""Open Redis command clients from a URL: standalone, Cluster, or an in-memory fake for tests.

The scheme picks the backend, as in saq's ``Queue.from_url``:

- ``redis://``, ``rediss://``, ``unix://``: standalone Redis;
- ``redis+cluster://``, ``rediss+cluster://``: Redis Cluster (any node as seed);
- ``fakeredis://<name>``: a fakeredis server shared by every client of that name.

RESP2 is pinned (redis-py 8 would negotiate RESP3): every reply shape in
hitl_bus is coded against RESP2, which Redis 6.2 and 7 both speak. Commands are retried
as ``bus/retrying.py`` says; blocking readers' clients are in ``bus/reading.py``.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hitl_bus.bus.deadlines import ReadDeadlines
from hitl_bus.bus.retrying import ReconnectRetry, bus_errors, no_cleanup, retry_window

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis comes with redis[hiredis], a dependency
    _hiredis_pack = None


RedisClient = aioredis.Redis | RedisCluster
#: Every connection names itself, so ``CLIENT LIST`` shows what a process holds.
CLIENT_NAME = "hitl-bus"

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_fake_servers: dict[str, Any] = {}


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def fake_server(url: str) -> Any:
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

    def __init__(self, *args: Any, reconnect_policy: ReconnectRetry, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: redis-py's own Cluster retries count tries, without backoff: every command and
        #: pipeline runs inside this time-bounded policy around them.
        self.policy = reconnect_policy
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
        run = super().execute_command
        async with self.permit():
            with bus_errors():
                return await self.policy.call_with_retry(lambda: run(*args, **kwargs), no_cleanup)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        super().pipeline(transaction, shard_hint)  # its argument checks
        return _QueueingPipeline(self, transaction)  # type: ignore[abstract]


class _QueueingPipeline(ClusterPipeline):
    """A Cluster pipeline retried as one, whose keyless commands may follow a key's node.

    ``execute_command(..., node_of=key)`` sends a keyless command (``WAIT``) to the node
    that owns ``key``'s slot, looked up again on every try: after a failover the command
    goes to the new primary, beside the keyed commands it follows.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Queue position -> the key whose node that command goes to.
        self._node_of: dict[int, str] = {}

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        key = kwargs.pop("node_of", None)
        if key is not None:
            strategy: Any = self._execution_strategy
            self._node_of[len(strategy._command_queue)] = key
            kwargs["target_nodes"] = self.cluster_client.get_node_from_key(key)
        return super().execute_command(*args, **kwargs)

    async def initialize(self) -> ClusterPipeline:
        with bus_errors():
            return await super().initialize()

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        """Run the queued commands; after a transient failure, queue the same ones and retry.

        redis-py empties the queue whatever the outcome, so the commands are kept first.
        """
        client: _QueueingCluster = self.cluster_client  # type: ignore[assignment]
        strategy: Any = self._execution_strategy
        queued = [(command.args, dict(command.kwargs)) for command in strategy._command_queue]
        run = super().execute
        tries = 0

        node_of = dict(self._node_of)

        async def attempt() -> Any:
            nonlocal tries
            tries += 1
            if tries > 1:
                for position, (args, kwargs) in enumerate(queued):
                    if position in node_of:  # its node again: a failover may have moved it
                        kwargs = {k: v for k, v in kwargs.items() if k != "target_nodes"}
                        kwargs["node_of"] = node_of[position]
                    self.execute_command(*args, **kwargs)
            return await run(raise_on_error, allow_redirections)

        async with client.permit():
            with bus_errors():
                return await client.policy.call_with_retry(attempt, no_cleanup)


class _LeanCommands(AbstractConnection):
    """What every command costs a standalone command connection, made cheaper; same bytes,
    same errors, same timeouts.

    - Commands are packed by hiredis (C) instead of redis-py's Python loop, which costs
      about 1.5 µs per argument: 50 µs for a send script's 30. Anything hiredis does not
      take (a ``bool``, ``None``: redis-py refuses them; a ``bytearray``; a command name
      with a space, which redis-py splits) goes the usual way, with its usual error.
    - On Python 3.11, redis-py bounds each write with ``asyncio.wait_for``, which runs the
      write in a task of its own (one more task and turn of the loop per command);
      ``asyncio.timeout`` bounds the same write, on a connected socket, without one.
      Python 3.12's ``wait_for`` already works that way.
    - A reply's read is bounded by ``socket_timeout`` through the loop's
      :class:`~hitl_bus.bus.deadlines.ReadDeadlines` (one timer for every read) instead of
      an ``asyncio.timeout`` armed and cancelled around each one. A read past its deadline
      has its connection aborted and raises ``TimeoutError``, as redis-py's would.
    """

    _deadlines: ReadDeadlines | None = None
    _timed_out = False

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        seconds = self.socket_timeout
        if timeout is not None or not seconds or not self.is_connected:
            return await super().read_response(disable_decoding, timeout, **kwargs)
        deadlines = self._deadlines
        if deadlines is None:
            deadlines = self._deadlines = ReadDeadlines.of_running_loop()
        self._timed_out = False
        deadlines.start(self, seconds)
        try:
            return await super().read_response(disable_decoding, math.inf, **kwargs)
        except (RedisConnectionError, OSError):
            if self._timed_out:
                raise RedisTimeoutError(f"Timeout reading from {self._host_error()}") from None
            raise
        finally:
            deadlines.stop(self)

    def read_timed_out(self) -> None:
        """Cut off a read past its deadline: the connection is dropped under it."""
        self._timed_out = True
        writer: Any = self._writer
        if writer is not None:
            writer.transport.abort()

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if _hiredis_pack is not None and isinstance(first, str) and " " not in first:
            try:
                return [_hiredis_pack(args)]
            except TypeError:
                pass  # redis-py's own packing says what is wrong (DataError)
        packed: list[bytes] = super().pack_command(*args)
        return packed

    if sys.version_info < (3, 12):

        async def send_packed_command(
            self, command: bytes | str | Iterable[bytes], check_health: bool = True
        ) -> None:
            timeout = self.socket_timeout
            if not timeout or not self.is_connected or self.health_check_interval:
                # Connecting (retried within its own window) and health checks: as is.
                await super().send_packed_command(command, check_health)
                return
            if isinstance(command, list) and await self._writes_at_once(command):
                return
            self.socket_timeout = None  # the write below, bounded here instead
            try:
                async with asyncio.timeout(timeout):
                    await super().send_packed_command(command, check_health)
            except TimeoutError:  # redis-py has dropped the connection, as after wait_for
                raise RedisTimeoutError("Timeout writing to socket") from None
            finally:
                self.socket_timeout = timeout

        async def _writes_at_once(self, command: list[bytes]) -> bool:
            """Hand a small command to a transport with nothing queued, with no wait and so
            no timeout to arm: ``drain()`` waits only past the transport's high-water mark
            (64 KiB), which this write cannot reach. A failed connection shows on the
            reply's read, which redis-py retries like a failed write."""
            writer: Any = self._writer
            transport = writer.transport
            if transport.is_closing() or transport.get_write_buffer_size():
                return False
            if sum(map(len, command)) >= _AT_ONCE_LIMIT:
                return False
            try:
                writer.writelines(command)
            except BaseException:  # as redis-py: a write that failed leaves no connection
                await self.disconnect(nowait=True)
                raise
            return True


#: Below asyncio's default high-water mark of a transport's write buffer (64 KiB).
_AT_ONCE_LIMIT = 32 * 1024

_lean_classes: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def lean(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """``connection_class`` (TCP, TLS or Unix socket, as the URL says) with
    :class:`_LeanCommands` in front."""
    made = _lean_classes.get(connection_class)
    if made is None:
        made = type(f"Lean{connection_class.__name__}", (_LeanCommands, connection_class), {})
        _lean_classes[connection_class] = made
    return made


class _QueueingPool(aioredis.ConnectionPool):
    """A pool that never holds more than ``max_connections``: callers queue for a free one.

    What ``BlockingConnectionPool`` promises, for less per command: its condition, timeout
    and lock cost about 30 µs a command on Python 3.11; a semaphore in front of the plain
    pool costs one uncontended acquire and release. Each connection handed out carries its
    permit back on release, once: redis-py releases a connection itself when connecting it
    fails, before it was ever handed out, and that must not give a permit back twice.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._free = asyncio.Semaphore(self.max_connections)
        self._lent: set[AbstractConnection] = set()

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        await self._free.acquire()
        try:
            connection: AbstractConnection = await super().get_connection(  # type: ignore[no-untyped-call]
                *args, **kwargs
            )
        except BaseException:
            self._free.release()
            raise
        self._lent.add(connection)
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        try:
            await super().release(connection)
        finally:
            if connection in self._lent:
                self._lent.discard(connection)
                self._free.release()

    def take_idle(self) -> AbstractConnection | None:
        """A connected idle connection with its permit, at once; ``None`` when there is none
        (then the caller goes the usual way: it queues, or connects a new one).

        What ``get_connection`` does for a connection that is already connected, without its
        lock, its metrics and its probe for unread data: a connection given back through
        :meth:`give_back` has read every reply it was sent (redis-py drops a connection whose
        send or read failed or was cancelled), so there is nothing to probe for.
        """
        available = self._available_connections
        if not available or self._free.locked():
            return None
        connection = available[-1]
        if not connection.is_connected or connection.should_reconnect():  # type: ignore[no-untyped-call]
            return None
        available.pop()
        self._free._value -= 1  # an uncontended acquire: the semaphore is not locked
        self._in_use_connections.add(connection)
        return connection

    def give_back(self, connection: AbstractConnection) -> None:
        """Return a connection from :meth:`take_idle`, with its permit."""
        self._in_use_connections.discard(connection)
        self._available_connections.append(connection)
        self._free.release()


class _CommandClient(aioredis.Redis):
    """The standalone command client: retried by its pool's ``ReconnectRetry``, then an
    unreachable Redis raises ``BusConnectionError``.

    The retries themselves run inside redis-py (every pooled connection carries the
    policy); this is the one place its connection errors become hitl_bus's. A command that
    finds a connected idle connection sends on it directly (:meth:`_QueueingPool.take_idle`),
    with the same retries, replies and errors as redis-py's own path, which every other
    command takes.
    """

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        pool: _QueueingPool = self.connection_pool  # type: ignore[assignment]
        connection = pool.take_idle()
        if connection is None:
            with retry_window(), bus_errors():
                return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        return await _on_idle(
            pool,
            connection,
            lambda: self._send_command_parse_response(  # type: ignore[no-untyped-call]
                connection, args[0], *args, **options
            ),
        )

    async def call_plain(self, *args: Any) -> Any:
        """A command whose reply is used as Redis sends it (``EVALSHA``), without redis-py's
        reply callbacks and options: on an idle connection it is packed, written and read
        directly, with the same retries and errors; else it goes as any command."""
        pool: _QueueingPool = self.connection_pool  # type: ignore[assignment]
        connection = pool.take_idle()
        if connection is None:
            return await self.execute_command(*args)
        return await _on_idle(pool, connection, lambda: _send_and_read(connection, args))

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _CommandPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


async def _on_idle(
    pool: _QueueingPool, connection: AbstractConnection, attempt: Callable[[], Awaitable[Any]]
) -> Any:
    """Run ``attempt`` on ``connection`` (from ``pool.take_idle``) with the pool's retries:
    a failed try drops the connection, the next one connects it again."""
    with retry_window(), bus_errors():
        try:
            return await connection.retry.call_with_retry(
                attempt,
                lambda error, failures: connection.disconnect(error=error),
                with_failure_count=True,
            )
        finally:
            pool.give_back(connection)


async def _send_and_read(connection: AbstractConnection, args: tuple[Any, ...]) -> Any:
    await connection.send_packed_command(connection.pack_command(*args), check_health=False)
    return await connection.read_response()


def calls_plain(client: Any) -> bool:
    """Whether ``client`` has :meth:`_CommandClient.call_plain` (a standalone command client)."""
    return isinstance(client, _CommandClient)


class _CommandPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        with retry_window(), bus_errors():
            return await super().execute(raise_on_error)


def open_command_client(url: str, max_connections: int, reconnect_timeout: float = 30.0) -> Any:
    """A client whose pool never holds more than ``max_connections`` (callers queue).

    Transient errors are retried for ``reconnect_timeout`` seconds (``ReconnectRetry``).
    """
    scheme = urlsplit(url).scheme
    if scheme == "fakeredis":
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=fake_server(url))
    policy = ReconnectRetry(url, reconnect_timeout)
    if scheme in CLUSTER_SCHEMES:
        seed = CLUSTER_SCHEMES[scheme] + url[len(scheme) :]
        return _QueueingCluster.from_url(
            seed,
            protocol=2,
            max_connections=max_connections,
            client_name=CLIENT_NAME,
            reconnect_policy=policy,
        )
    pool = _QueueingPool.from_url(
        url,
        max_connections=max_connections,
        protocol=2,
        client_name=CLIENT_NAME,
        retry=policy,
    )
    pool.connection_class = lean(pool.connection_class)
    return _CommandClient(connection_pool=pool)
