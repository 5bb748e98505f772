"""One rule for calling hitl_bus from sync and async code.

Public functions are written once, as coroutines. Their dual face
(:func:`dual`) decides by the caller's situation:

1. an event loop runs in the calling thread: return the coroutine, to be awaited;
2. otherwise block until it is done, on the loop of the current flow run
   when a sync flow body calls (its connections live there), else on one
   process-wide portal loop running in a daemon thread.

A type checker cannot see the caller's situation, so the dual face is typed
as what sync code gets: ``Callable[P, T]``. The mypy plugin
(``hitl_bus.mypy_plugin``) types the same call as ``Coroutine[Any, Any, T]``
inside an ``async def``, so both styles check without casts; other checkers
see the sync type, and async code there uses the ``a``-prefixed twins.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from hitl_bus.context import CancelRequested, current_run

P = ParamSpec("P")
T = TypeVar("T")


class _Portal:
    """A daemon thread running an event loop, started on first use.

    At interpreter exit it runs the registered closers on its loop (the bus
    closes its connections there), so nothing is left for the collector.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closers: list[Callable[[], Coroutine[Any, Any, None]]] = []

    def is_portal(self, loop: asyncio.AbstractEventLoop) -> bool:
        return loop is self._loop

    def close(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return
        for closer in self.closers:
            with contextlib.suppress(Exception):  # best effort at exit
                asyncio.run_coroutine_threadsafe(closer(), loop).result(2)

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                ready = threading.Event()
                loop = asyncio.new_event_loop()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=serve, name="hitl-bus-portal", daemon=True).start()
                ready.wait()
                self._loop = loop
                atexit.register(self.close)
            return self._loop


_portal = _Portal()


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def on_portal_exit(
    loop: asyncio.AbstractEventLoop, closer: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Run ``closer`` on the portal loop at interpreter exit, if ``loop`` is the portal's."""
    if _portal.is_portal(loop):
        _portal.closers.append(closer)


def portal_loop() -> asyncio.AbstractEventLoop:
    """The process-wide loop that serves sync callers outside any flow run."""
    return _portal.loop()


def blocking_loop() -> asyncio.AbstractEventLoop:
    """The loop a blocking call from this thread runs its coroutine on."""
    ctx = current_run()
    if ctx is not None and ctx.sync_body and not ctx.loop.is_closed():
        return ctx.loop
    return _portal.loop()


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from a thread with no running loop.

    In a sync flow's thread the call is registered on the run, so cancelling the
    run interrupts a call that waits (a receive, a pause) at once.
    """
    loop = blocking_loop()
    if running_loop() is loop:  # pragma: no cover - guarded by callers
        coro.close()
        raise RuntimeError("cannot block on the event loop that would run the call")
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    ctx = current_run()
    if ctx is None or not ctx.sync_body:
        return future.result()
    in_flight = ctx.state.in_flight
    in_flight.add(future)
    try:
        return future.result()
    except concurrent.futures.CancelledError:
        if ctx.cancel_requested:
            raise CancelRequested(ctx.flow_run.run_id) from None
        raise
    finally:
        in_flight.discard(future)


def dispatch(coro: Coroutine[Any, Any, T]) -> T:
    """Apply the rule to one call: hand ``coro`` back to a running loop, else block on it.

    Typed as the sync result (see the module docstring); in async code the value
    really is ``coro``, which the mypy plugin tells the checker.
    """
    if running_loop() is not None:
        return coro  # type: ignore[return-value]
    return run_blocking(coro)


def dual(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Give a coroutine function a face that is awaited in async code and blocks in sync code."""

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        return dispatch(fn(*args, **kwargs))

    call.aio = fn  # type: ignore[attr-defined]
    return call
