"""Open Redis clients from a URL: standalone, Cluster, or an in-memory fake for tests.

The scheme picks the backend, as in saq's ``Queue.from_url``:

- ``redis://``, ``rediss://``, ``unix://``: standalone Redis;
- ``redis+cluster://``, ``rediss+cluster://``: Redis Cluster (any node as seed);
- ``fakeredis://<name>``: a fakeredis server shared by every client of that name.

RESP2 is pinned (redis-py 8 would negotiate RESP3): every reply shape in
hitl_bus is coded against RESP2, which Redis 6.2 and 7 both speak.

Command clients retry through :class:`ReconnectRetry` (redis-py's ``Retry``, bounded by
time): a dropped connection, a timeout or ``LOADING`` is retried with backoff for
``HITL_BUS_RECONNECT_TIMEOUT`` seconds before ``BusConnectionError``. An ambiguous failure,
where Redis applied a command but its reply was lost, is retried like any other, so every
write sent through these clients must be safe to repeat (docs/architecture.md says how
each is).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ClusterDownError,
    ExternalAuthProviderError,
    MaxConnectionsError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hitl_bus.errors import BusConnectionError

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis comes with redis[hiredis], a dependency
    _hiredis_pack = None

T = TypeVar("T")

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


# -- retrying ------------------------------------------------------------------------------

#: Between tries: exponential with full jitter, from 25 ms doubling to at most 1 s.
BACKOFF_BASE = 0.025
BACKOFF_CAP = 1.0


def reconnect_backoff() -> ExponentialWithJitterBackoff:
    """The one backoff policy: command retries and dispatcher readers' reconnects."""
    return ExponentialWithJitterBackoff(base=BACKOFF_BASE, cap=BACKOFF_CAP)


_UNREACHABLE = (RedisConnectionError, RedisTimeoutError)
#: ``ConnectionError`` subclasses that another try cannot fix.
_PERMANENT = (
    AuthenticationError,
    AuthorizationError,
    ExternalAuthProviderError,
    MaxConnectionsError,
)
#: URLs this process has reached at least once (see ``ReconnectRetry``).
_reached: set[str] = set()


def is_transient(exc: BaseException) -> bool:
    """Whether another try may succeed: a lost connection, a timeout, ``LOADING``, a Cluster
    failover. Nothing else is retried (a script error, a wrong type, bad credentials)."""
    if isinstance(exc, _PERMANENT):
        return False
    if isinstance(exc, (*_UNREACHABLE, ClusterDownError, TryAgainError)):
        return True
    if isinstance(exc, RedisClusterException):  # also a usage error: only "no node answers"
        cause = exc.__cause__ or exc.__context__
        return isinstance(cause, _UNREACHABLE) or "cannot be connected" in str(exc)
    return False


class _Window:
    """One operation's retry window: the deadline, set at its first failure, and its failures."""

    __slots__ = ("deadline", "failures")

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.failures = 0


_window: contextvars.ContextVar[_Window | None] = contextvars.ContextVar(
    "hitl_bus_retry_window", default=None
)


class _RetryWindow:
    """The context manager :func:`retry_window` returns (a class: it is entered on every
    command, where a generator-based one costs several times more)."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _window.set(_Window()) if _window.get() is None else None

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _window.reset(self._token)


def retry_window() -> _RetryWindow:
    """Make everything retried inside one operation share one window.

    redis-py nests retry loops (taking a pooled connection connects it; a retried command
    reconnects its socket), and ``Bus.eval`` may send EVALSHA, SCRIPT LOAD, EVALSHA: inside
    this block they all count against the same ``HITL_BUS_RECONNECT_TIMEOUT``.
    """
    return _RetryWindow()


async def _nothing(error: Exception, failures: int = 0) -> None:
    """No cleanup between tries: the Cluster client drops broken connections itself."""


class ReconnectRetry(Retry):
    """redis-py's ``Retry`` bounded by time instead of a count of tries.

    A transient error (:func:`is_transient`) is retried with :func:`reconnect_backoff`
    until ``timeout`` seconds after the operation's first failure, then raised. Redis
    restarts, failovers and cut connections come back within seconds; a count of tries
    cannot say how long that is, a deadline can. A URL this process has never reached
    (no server answered yet) is not retried: a wrong address or a Redis that is not
    running fails at once with a clear error instead of after the window. ``LOADING``
    counts as reached: a server is there, loading its data.

    One instance serves every connection of a pool (``__deepcopy__`` returns it): it
    holds no per-call state, the window lives in a context variable.
    """

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(reconnect_backoff(), retries=-1, supported_errors=(RedisError,))
        self.url = url
        self.timeout = timeout

    def __deepcopy__(self, memo: dict[int, Any]) -> ReconnectRetry:
        return self

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        with retry_window():
            window = _window.get()
            assert window is not None
            while True:
                try:
                    result = await do()
                except (RedisError, RedisClusterException) as error:  # the latter is no RedisError
                    if not is_transient(error) or (is_retryable and not is_retryable(error)):
                        raise
                    if isinstance(error, BusyLoadingError):
                        _reached.add(self.url)
                    window.failures += 1
                    if with_failure_count:
                        await fail(error, window.failures)
                    else:
                        await fail(error)
                    delay = self._delay(window)
                    if delay is None:
                        raise
                    await asyncio.sleep(delay)
                else:
                    _reached.add(self.url)
                    return result

    def _delay(self, window: _Window) -> float | None:
        """Seconds to wait before the next try, or ``None`` to give up."""
        now = time.monotonic()
        if window.deadline is None:
            if self.timeout <= 0 or self.url not in _reached:
                return None
            window.deadline = now + self.timeout
        remaining = window.deadline - now
        if remaining <= 0:
            return None
        return min(self._backoff.compute(window.failures), remaining)


def _unreachable(exc: Exception) -> BusConnectionError:
    return BusConnectionError(f"Redis is unreachable ({exc}); check HITL_BUS_REDIS_URL")


class _BusErrors:
    """Redis's "cannot reach" errors, once retries are over, become ``BusConnectionError``.

    A Cluster client reports "no node reachable" as a ``RedisClusterException`` (also used
    for usage errors such as cross-slot commands), so only one caused by a connection
    failure is translated; every other error passes through as redis-py raised it. A class,
    not a generator: it is entered on every command.
    """

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, (RedisError, RedisClusterException)) and (
            isinstance(exc, _UNREACHABLE) or is_transient(exc)
        ):
            raise _unreachable(exc) from exc


_bus_errors = _BusErrors


# -- clients -------------------------------------------------------------------------------

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
            with _bus_errors():
                return await self.policy.call_with_retry(lambda: run(*args, **kwargs), _nothing)

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
        with _bus_errors():
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
            with _bus_errors():
                return await client.policy.call_with_retry(attempt, _nothing)


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
    """

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


def _lean(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """``connection_class`` (TCP, TLS or Unix socket, as the URL says) with
    :class:`_LeanCommands` in front."""
    lean = _lean_classes.get(connection_class)
    if lean is None:
        lean = type(f"Lean{connection_class.__name__}", (_LeanCommands, connection_class), {})
        _lean_classes[connection_class] = lean
    return lean


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
        with retry_window(), _bus_errors():
            if connection is None:
                return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
            try:
                return await connection.retry.call_with_retry(
                    lambda: self._send_command_parse_response(  # type: ignore[no-untyped-call]
                        connection, args[0], *args, **options
                    ),
                    lambda error, failures: connection.disconnect(error=error),
                    with_failure_count=True,
                )
            finally:
                pool.give_back(connection)

    async def call_plain(self, *args: Any) -> Any:
        """A command whose reply is used as Redis sends it (``EVALSHA``), without redis-py's
        reply callbacks and options: on an idle connection it is packed, written and read
        directly, with the same retries and errors; else it goes as any command."""
        pool: _QueueingPool = self.connection_pool  # type: ignore[assignment]
        connection = pool.take_idle()
        if connection is None:
            return await self.execute_command(*args)
        with retry_window(), _bus_errors():
            try:
                return await connection.retry.call_with_retry(
                    lambda: _send_and_read(connection, args),
                    lambda error, failures: connection.disconnect(error=error),
                    with_failure_count=True,
                )
            finally:
                pool.give_back(connection)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _CommandPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


async def _send_and_read(connection: AbstractConnection, args: tuple[Any, ...]) -> Any:
    await connection.send_packed_command(connection.pack_command(*args), check_health=False)
    return await connection.read_response()


def calls_plain(client: Any) -> bool:
    """Whether ``client`` has :meth:`_CommandClient.call_plain` (a standalone command client)."""
    return isinstance(client, _CommandClient)


class _CommandPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        with retry_window(), _bus_errors():
            return await super().execute(raise_on_error)


def open_command_client(url: str, max_connections: int, reconnect_timeout: float = 30.0) -> Any:
    """A client whose pool never holds more than ``max_connections`` (callers queue).

    Transient errors are retried for ``reconnect_timeout`` seconds (``ReconnectRetry``).
    """
    scheme = urlsplit(url).scheme
    if scheme == "fakeredis":
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=_fake_server(url))
    policy = ReconnectRetry(url, reconnect_timeout)
    if scheme in _CLUSTER_SCHEMES:
        seed = _CLUSTER_SCHEMES[scheme] + url[len(scheme) :]
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
    pool.connection_class = _lean(pool.connection_class)
    return _CommandClient(connection_pool=pool)


#: Readers do not retry inside redis-py: their owner reconnects (dispatcher, worker queues),
#: and a blocking read must not be re-sent behind its owner's back.
_NO_RETRY = Retry(NoBackoff(), 0)


def open_reader_client(
    url: str, host: str | None = None, port: int | None = None, *, single: bool = True
) -> Any:
    """A single-connection client for one blocking reader.

    For Cluster, ``host``/``port`` name the node that owns the reader's slot. ``single``
    False: a pool client instead, whose one connection a pub/sub can take over.
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
            single_connection_client=single,
            client_name=CLIENT_NAME,
            socket_timeout=None,
            socket_keepalive=True,
            retry=_NO_RETRY,
        )
    # No socket timeout: the reader's XREAD blocks until data comes (redis-py 8 defaults to 5 s).
    client = aioredis.Redis.from_url(
        url,
        protocol=2,
        single_connection_client=single,
        client_name=CLIENT_NAME,
        socket_timeout=None,
        socket_keepalive=True,
        retry=_NO_RETRY,
    )
    pool = client.connection_pool  # its reads are packed by hiredis too (one per wake-up)
    pool.connection_class = _lean(pool.connection_class)
    return client


async def read_streams(
    client: Any,
    streams: dict[Any, Any],
    *,
    block: int | None,
    count: int,
    group: tuple[str, str] | None = None,
) -> list[Any]:
    """``XREAD`` (``XREADGROUP`` with ``group``: its name and the consumer's) answered as
    redis-py's ``xread``/``xreadgroup`` answer it, on a reader's own connection.

    A blocking reader reads again after every wake-up: sent on its one connection
    directly, a read skips the client's per-command lock, metrics and event hooks. A
    client with no connection of its own yet (before its first command; fakeredis) reads
    the usual way.
    """
    connection = getattr(client, "connection", None)
    if connection is None or not connection.is_connected:
        if group is not None:
            reply = await client.xreadgroup(*group, streams, block=block, count=count)
        else:
            reply = await client.xread(streams, block=block, count=count)
        return reply or []
    args: list[Any] = ["XREAD"] if group is None else ["XREADGROUP", "GROUP", *group]
    args += ["COUNT", count]
    if block is not None:
        args += ["BLOCK", block]
    args += ["STREAMS", *streams.keys(), *streams.values()]
    await connection.send_command(*args)
    reply = await connection.read_response()
    if reply is None:  # the block timed out
        return []
    return [
        [stream, [(entry_id, _fields(fields)) for entry_id, fields in entries]]
        for stream, entries in reply
    ]


def _fields(flat: list[Any] | None) -> dict[Any, Any]:
    """An entry's fields as a dict (a pending entry deleted since: none)."""
    if flat is None:
        return {}
    return dict(zip(flat[::2], flat[1::2], strict=True))
