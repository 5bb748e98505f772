"""``@task``: a step whose result is kept, so a re-executed run does not redo it.

Results are stored as JSON in the run's ``tasks`` hash under ``<task name>:<call
index>`` (the n-th call of that task in the execution), with a digest of the
call's inputs. A re-execution (after a suspension) replays a stored result
when the inputs match and recomputes it when they differ, so a polling loop is
never served a stale value for a new question. Results are loaded once when an
execution starts, so a lookup costs no round trip.

A generator task (``def`` or ``async def`` with ``yield``) gives a generator of what it
yields, as in Prefect. Its values are not kept: they are consumed as they come, and
need not be JSON, so each execution runs the generator again. It takes no call index,
so the other tasks replay as before.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import AsyncGenerator, Callable
from typing import Any, Generic, ParamSpec, TypeVar, cast, overload

import orjson
from pydantic_core import PydanticSerializationError, to_jsonable_python

from hitl_bus import keys
from hitl_bus._sync import run_blocking, running_loop
from hitl_bus.bus import codec, get_bus
from hitl_bus.context import FlowRunContext, current_run, raise_if_cancelled
from hitl_bus.engine.pausing import check_suspend_request
from hitl_bus.errors import TaskResultNotJSON

P = ParamSpec("P")
R = TypeVar("R")


def decode_results(raw: dict[bytes, bytes]) -> dict[str, Any]:
    """A run's stored task results (its ``tasks`` hash), by ``<name>:<index>``."""
    return {k.decode(): codec.loads(v) for k, v in raw.items()}


def _digest(arguments: dict[str, Any]) -> str:
    data = orjson.dumps(to_jsonable_python(arguments, fallback=repr), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()


class Task(Generic[P, R]):
    """A function wrapped as a task; inside a flow run its results are kept."""

    def __init__(self, fn: Callable[P, R], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.is_async = inspect.iscoroutinefunction(fn)
        self.is_generator = inspect.isgeneratorfunction(fn)
        self.is_async_generator = inspect.isasyncgenfunction(fn)
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def _slot(
        self, ctx: FlowRunContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, str]:
        calls = ctx.state.task_calls
        calls[self.name] = calls.get(self.name, 0) + 1
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return f"{self.name}:{calls[self.name]}", _digest(dict(bound.arguments))

    def _replay(self, ctx: FlowRunContext, slot: str, digest: str) -> tuple[bool, Any]:
        stored = ctx.state.task_results.get(slot)
        if stored is not None and stored.get("inputs") == digest:
            return True, stored.get("result")
        return False, None

    def _record(self, slot: str, digest: str, result: Any) -> bytes:
        try:
            encoded = orjson.dumps({"inputs": digest, "result": to_jsonable_python(result)})
        except (PydanticSerializationError, TypeError) as exc:
            raise TaskResultNotJSON(
                f"task {self.name!r} returned {type(result).__name__}, which is not JSON; "
                "task results are stored as JSON so a resumed run can reuse them"
            ) from exc
        return encoded

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The function's result (a coroutine for an async task), replayed when stored."""
        ctx = current_run()
        if ctx is None:  # outside a run a task is a plain call
            return self.fn(*args, **kwargs)
        raise_if_cancelled()  # a checkpoint
        if self.is_async_generator:
            return cast(R, self._stream_async(ctx, args, kwargs))
        if self.is_generator:
            if running_loop() is None:  # a sync flow's thread: a suspension boundary too
                run_blocking(_check_boundary(ctx))
            return self.fn(*args, **kwargs)
        slot, digest = self._slot(ctx, args, kwargs)
        if self.is_async:
            return cast(R, self._call_async(ctx, slot, digest, args, kwargs))
        hit, value = self._replay(ctx, slot, digest)
        if hit:
            return cast(R, value)
        if running_loop() is None:  # a sync flow's thread: storing may block
            run_blocking(_check_boundary(ctx))
            result = self.fn(*args, **kwargs)
            run_blocking(_store(ctx, slot, self._record(slot, digest, result)))
            return result
        # A sync task called from async code: run it, store in the background.
        result = self.fn(*args, **kwargs)
        _store_later(ctx, slot, self._record(slot, digest, result))
        return result

    async def _call_async(
        self, ctx: FlowRunContext, slot: str, digest: str, args: Any, kwargs: Any
    ) -> Any:
        hit, value = self._replay(ctx, slot, digest)
        if hit:
            return value
        await _check_boundary(ctx)
        result = await self.fn(*args, **kwargs)  # type: ignore[misc]
        await _store(ctx, slot, self._record(slot, digest, result))
        return result

    async def _stream_async(
        self, ctx: FlowRunContext, args: Any, kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        """An async generator task's values, run afresh (see the module docstring)."""
        await _check_boundary(ctx)
        stream: AsyncGenerator[Any, None] = self.fn(*args, **kwargs)  # type: ignore[assignment]
        try:
            async for item in stream:
                yield item
        finally:
            await stream.aclose()

    def __repr__(self) -> str:
        return f"<Task {self.name!r}>"


async def _check_boundary(ctx: FlowRunContext) -> None:
    await check_suspend_request(ctx)


async def _store(ctx: FlowRunContext, slot: str, encoded: bytes) -> None:
    await get_bus().client.hset(keys.run_tasks(ctx.flow_run.run_id), slot, encoded)
    ctx.state.task_results[slot] = orjson.loads(encoded)


def _store_later(ctx: FlowRunContext, slot: str, encoded: bytes) -> None:
    ctx.state.write_later(_store(ctx, slot, encoded))


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task(*, name: str | None = None) -> Callable[[Callable[P, R]], Task[P, R]]: ...
def task(fn: Callable[P, R] | None = None, /, *, name: str | None = None) -> Any:
    """Make ``fn`` a task: inside a flow run its result is kept for re-execution."""
    if fn is None:
        return lambda f: Task(f, name=name)
    return Task(fn, name=name)
