"""How commands are retried, and how a Redis that stays unreachable is reported.

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
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
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

T = TypeVar("T")

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


async def no_cleanup(error: Exception, failures: int = 0) -> None:
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


bus_errors = _BusErrors
