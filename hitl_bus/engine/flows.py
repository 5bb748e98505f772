"""``@flow``: a function whose every call is a flow run stored in Redis.

An async flow runs on the caller's event loop (awaited), or on the portal loop
when called from sync code. A sync flow's body runs in a thread of its own,
off the loop, so that every hitl_bus call inside it simply blocks while the
loop that owns the run's connections does the I/O.

The options are Prefect's ``@flow`` options: retries of a failing body within the
execution, a timeout per try, validated parameters, prints to the run log.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import inspect
import threading
import traceback
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Generic, Literal, ParamSpec, TypeVar, overload

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from hitl_bus._sync import portal_loop, run_blocking, running_loop
from hitl_bus.context import (
    CancelRequested,
    FlowRunContext,
    FlowRunInfo,
    QueueEntry,
    acting,
    current_run,
    reset_current_run,
    set_current_run,
)
from hitl_bus.engine import logger as run_logs
from hitl_bus.engine import starting, store
from hitl_bus.engine.cancelling import CancelWatch
from hitl_bus.engine.parameters import parameters_model, validate_parameters
from hitl_bus.engine.pausing import SuspendExecution
from hitl_bus.engine.runs import FlowRun, create_flow_run, read_flow_run, wait_for_state
from hitl_bus.engine.starting import Begun
from hitl_bus.engine.states import (
    AwaitingRetry,
    Cancelled,
    Completed,
    Failed,
    Retrying,
    State,
    StateType,
    with_outcome,
)
from hitl_bus.errors import (
    FlowRunCancelled,
    FlowRunSuspended,
    FlowRunTimeoutError,
    ParameterMismatch,
    StateConflict,
)
from hitl_bus.ids import normalize_run_id

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
_background: set[asyncio.Task[Any]] = set()


def _source_hash(fn: Callable[..., Any]) -> str | None:
    """The MD5 of the file that defines ``fn`` (Prefect's default flow version)."""
    try:
        path = inspect.getsourcefile(fn)
        if path is None:
            return None
        return hashlib.md5(Path(path).read_bytes(), usedforsecurity=False).hexdigest()
    except (OSError, TypeError):  # a built-in, a REPL, a file gone
        return None


class Flow(Generic[P, R]):
    """A function wrapped as a flow; call it to create and execute a run.

    The options mean what Prefect's ``@flow`` options mean:

    :ivar retries: times a body that raised is run again, in the same execution: the run
        goes Scheduled "AwaitingRetry", waits ``retry_delay_seconds`` (a number, or one per
        retry, the last repeating), then Running "Retrying"; tasks that completed and
        pauses that were answered replay. A deployment's ``retries`` is another count:
        runs whose worker died.
    :ivar timeout_seconds: a try whose body runs longer (time paused included) fails
        with a Failed "TimedOut" state and :class:`FlowRunTimeoutError`, and is not
        retried. An async body is cancelled; a sync body's thread cannot be killed, so it
        is told to stop and does at its next checkpoint (task, pause, receive, log call).
    :ivar should_validate_parameters: arguments are validated and coerced with pydantic
        against the annotations before a run is created (and again when a stored run is
        executed: a deployment's JSON parameters become the annotated types).
    :ivar log_prints: ``print`` in the body goes to the run log at INFO; ``None``
        inherits the enclosing run's choice.
    :ivar persist_result: accepted for Prefect's sake; task results are always kept in
        the run's ``tasks`` hash for replay, and a flow's return value goes to its caller.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        *,
        version: str | None = None,
        description: str | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | Sequence[float] | None = None,
        timeout_seconds: float | None = None,
        validate_parameters: bool = True,
        persist_result: bool | None = None,
        log_prints: bool | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__.replace("_", "-")
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)
        self.version = version or _source_hash(fn)
        self.description = description or inspect.getdoc(fn)
        self.retries = retries or 0
        self.retry_delay_seconds: float | list[float] = (
            [float(d) for d in retry_delay_seconds]
            if isinstance(retry_delay_seconds, Sequence)
            else float(retry_delay_seconds or 0)
        )
        # As in Prefect, 0 means no timeout.
        self.timeout_seconds = float(timeout_seconds) if timeout_seconds else None
        self.should_validate_parameters = validate_parameters
        self.persist_result = persist_result
        self.log_prints = log_prints
        delays = self.retry_delay_seconds
        if self.retries < 0 or any(
            d < 0 for d in (delays if isinstance(delays, list) else [delays])
        ):
            raise ValueError("retries and retry_delay_seconds cannot be negative")
        if self.timeout_seconds is not None and self.timeout_seconds < 0:
            raise ValueError("timeout_seconds cannot be negative")

    @functools.cached_property
    def parameters_model(self) -> type[BaseModel] | None:
        """The pydantic model of the parameters (``None``: annotations it cannot use)."""
        return parameters_model(self.fn, self.signature)

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """``parameters`` validated and coerced to the annotated types (Prefect's method).

        :raises ParameterMismatch: a value does not fit; ``errors`` names each parameter.
        """
        model = self.parameters_model
        return parameters if model is None else validate_parameters(model, self.name, parameters)

    def bind(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The call's arguments by parameter name, validated unless turned off, defaults applied.

        :raises TypeError: when they do not fit the function's signature.
        :raises ParameterMismatch: a value does not fit its annotation (a ``TypeError``).
        """
        bound = self.signature.bind(*args, **kwargs)
        if self.should_validate_parameters:
            bound.arguments.update(self.validate_parameters(dict(bound.arguments)))
        bound.apply_defaults()
        return dict(bound.arguments)

    def retry_delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first)."""
        delays = self.retry_delay_seconds
        if not isinstance(delays, list):
            return delays
        return delays[min(retry, len(delays)) - 1] if delays else 0.0

    @overload
    def __call__(
        self: Flow[P, Coroutine[Any, Any, T]],
        *args: Any,
        return_state: Literal[True],
        **kwargs: Any,
    ) -> Coroutine[Any, Any, State]: ...
    @overload
    def __call__(self, *args: Any, return_state: Literal[True], **kwargs: Any) -> State: ...
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """An async flow returns a coroutine (await or ``asyncio.run`` it); a sync flow blocks.

        Typed as the function's own result: a coroutine for an async flow, the value
        for a sync one, which is what the call gives. With ``return_state=True`` the
        call gives the run's final :class:`State` instead (``.result()`` has the value,
        or raises the run's exception); a suspended run gives its Paused state. A type
        checker then sees ``State`` (awaitable for an async flow) and, as a keyword-only
        argument cannot follow ``P.args``, does not check the other arguments.

        :raises ParameterMismatch: an argument does not fit its annotation; no run exists.
        """
        return_state = bool(kwargs.pop("return_state", False))  # the call's, never a parameter
        parameters = self.bind(*args, **kwargs)
        coro = run_flow(self, parameters, return_state=return_state)
        if self.is_async:
            return coro
        if running_loop() is None:
            return run_blocking(coro)
        # A sync flow called from async code blocks its caller, as a sync call does.
        return asyncio.run_coroutine_threadsafe(coro, portal_loop()).result()

    def __repr__(self) -> str:
        return f"<Flow {self.name!r}>"


async def _in_thread(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], label: str
) -> Any:
    """Run a sync body in its own thread, in a copy of the current context.

    A thread cannot be killed: should its awaiting task be cancelled (a timeout), the
    thread runs on, and what it gives is dropped.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    ctx = contextvars.copy_context()

    def settle(outcome: Callable[[], None]) -> None:
        if not done.done():
            outcome()

    def hand_over(outcome: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed while the thread ran on
            loop.call_soon_threadsafe(settle, outcome)

    def body() -> None:
        try:
            result = ctx.run(fn, *args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            hand_over(functools.partial(done.set_exception, exc))
        else:
            hand_over(functools.partial(done.set_result, result))

    threading.Thread(target=body, name=f"hitl-flow:{label}", daemon=True).start()
    return await done


#: The message a worker cancels an execution's task with when it hands the run back:
#: the execution then writes no final state (the worker's release decides it).
HAND_BACK = "hitl-bus: handed back"

_ENDABLE = (StateType.RUNNING, StateType.CANCELLING)
#: A try that timed out may be paused: the timeout counts time paused.
_TIMED_OUT_FROM = (*_ENDABLE, StateType.PAUSED)


async def run_flow(
    flow: Flow[Any, Any],
    parameters: dict[str, Any],
    run: FlowRun | None = None,
    *,
    fresh: bool = False,
    worker: str = "",
    return_state: bool = False,
) -> Any:
    """Execute ``flow`` as a run (a new one unless ``run`` is given) on this loop.

    ``fresh`` says ``run`` was just created, so it has no task results to replay and
    its parameters were validated by the call; ``worker`` names the worker that owns
    this execution ("" in process). Returns the body's value, or with ``return_state``
    the run's final state (Paused when it suspended).

    :raises FlowRunSuspended: the run suspended; resume it, then re-execute it.
    :raises FlowRunCancelled: the run was cancelled.
    """
    begun = await starting.begin(flow.name, parameters, run, fresh=fresh, worker=worker)
    return _outcome(await _execute(flow, begun), return_state)


def _outcome(ended: tuple[str, State], return_state: bool) -> Any:
    run_id, state = ended
    if return_state:
        return state
    if state.is_paused():
        raise FlowRunSuspended(run_id)
    return state.result()


async def _execute(flow: Flow[Any, Any], begun: Begun | tuple[str, State]) -> tuple[str, State]:
    """Run the begun execution; returns the run's id and the state it ended in, holding
    the outcome."""
    if isinstance(begun, tuple):
        return begun
    loop = asyncio.get_running_loop()
    run = begun.run
    run_id = str(run.id)
    parent = current_run()
    info = FlowRunInfo(
        run_id=run_id,
        name=run.name,
        flow_name=flow.name,
        parameters=begun.parameters,
        deployment_id=run.deployment_id,
        parent_flow_run_id=parent.flow_run.run_id if parent is not None else None,
    )
    ctx = FlowRunContext(flow_run=info, loop=loop, sync_body=not flow.is_async)
    ctx.state.task_results = begun.task_results
    ctx.state.attempt = begun.attempt
    ctx.state.queue_entry = begun.entry
    token = set_current_run(ctx)
    run_logs.start_shipping(run_id)
    watch: CancelWatch | None = None
    try:
        main = asyncio.current_task() if flow.is_async else None
        watch = CancelWatch(ctx, begun.position, main)
        # The run's own writes are the run's (its sender name), not those of whoever
        # started it in this process.
        with run_logs.log_prints(flow.log_prints), acting(None):
            state = await _run_body(flow, ctx, begun.parameters, main, validate=begun.validate)
        return run_id, state
    finally:
        if watch is not None:
            await watch.stop()
        await run_logs.stop_shipping(run_id)
        reset_current_run(token)


async def _run_body(
    flow: Flow[Any, Any],
    ctx: FlowRunContext,
    parameters: dict[str, Any],
    main: asyncio.Task[Any] | None,
    *,
    validate: bool,
) -> State:
    """The started execution: its tries, or how a suspension or cancellation ended it."""
    run_id = ctx.flow_run.run_id
    try:
        if validate and flow.should_validate_parameters:
            try:
                parameters = flow.validate_parameters(parameters)
            except ParameterMismatch as exc:  # a stored run's parameters no longer fit
                return await _fail(ctx, exc)
            ctx.flow_run.parameters = parameters
        return await _tries(flow, ctx, parameters)
    except SuspendExecution:
        await ctx.state.flush_writes()
        return with_outcome(await _current_state(run_id), error=FlowRunSuspended(run_id))
    except (CancelRequested, asyncio.CancelledError) as exc:
        if not ctx.cancel_requested:  # the task itself was cancelled (e.g. shutdown)
            if HAND_BACK in getattr(exc, "args", ()):
                raise  # its worker hands the run back: the release decides its state
            await asyncio.shield(
                _end(run_id, Cancelled(message="the run's task was cancelled"), ctx.state.attempt)
            )
            raise
        if isinstance(exc, asyncio.CancelledError) and main is not None:
            main.uncancel()  # our own interruption: the run ends here, normally
        return await _cancel(ctx)


async def _cancel(ctx: FlowRunContext) -> State:
    """End a run that was asked to cancel (it stopped at a checkpoint)."""
    cancelled = Cancelled(message="cancelled; stopped at a checkpoint")
    await _settle(_finish(ctx, cancelled))
    return with_outcome(cancelled, error=FlowRunCancelled(ctx.flow_run.run_id))


async def _tries(flow: Flow[Any, Any], ctx: FlowRunContext, parameters: dict[str, Any]) -> State:
    """Run the body until it returns, times out, or fails with no retry left."""
    # By the signature: ``*args`` and ``**kwargs`` are stored under their own names.
    call = inspect.BoundArguments(flow.signature, dict(parameters))
    retry = 0
    while True:
        # No timeout, no scope: a timer armed and disarmed on every run costs a worker.
        scope = asyncio.timeout(flow.timeout_seconds) if flow.timeout_seconds else None
        try:
            async with scope or contextlib.nullcontext():
                if flow.is_async:
                    value = await flow.fn(*call.args, **call.kwargs)
                else:
                    value = await _in_thread(flow.fn, call.args, call.kwargs, ctx.flow_run.name)
        except Exception as exc:  # noqa: BLE001 - the body's failure is the run's
            if scope is not None and scope.expired():
                return await _time_out(flow, ctx)
            run_logs.get_run_logger().error(
                "Flow run failed: %s\n%s", exc, "".join(traceback.format_exception(exc)).rstrip()
            )
            if retry >= flow.retries:
                return await _fail(ctx, exc)
            retry += 1
            ended = await _await_retry(flow, ctx, exc, retry)
            if ended is not None:
                return ended
            continue
        completed = Completed()
        await _settle(_finish(ctx, completed))
        return with_outcome(completed, value)


async def _time_out(flow: Flow[Any, Any], ctx: FlowRunContext) -> State:
    """Fail a try that ran past the flow's timeout (no retry, as in Prefect)."""
    message = f"Flow run exceeded timeout of {flow.timeout_seconds:g} second(s)"
    run_logs.get_run_logger().error(message)
    if not flow.is_async:  # its thread runs on: stop it at its next checkpoint
        ctx.cancel_requested = True
        for future in list(ctx.state.in_flight):
            future.cancel()
    failed = Failed(name="TimedOut", message=message)
    await _settle(_finish(ctx, failed, expect=_TIMED_OUT_FROM))
    return with_outcome(failed, error=FlowRunTimeoutError(message))


async def _fail(ctx: FlowRunContext, exc: Exception) -> State:
    failed = Failed(message=f"{type(exc).__name__}: {exc}")
    await _settle(_finish(ctx, failed))
    return with_outcome(failed, error=exc)


async def _await_retry(
    flow: Flow[Any, Any], ctx: FlowRunContext, exc: Exception, retry: int
) -> State | None:
    """Take the run through AwaitingRetry to Retrying; ``None`` when the body runs again,
    else the state the run ended in (it was cancelled while waiting, or is no longer ours).

    Each write is fenced by the execution's attempt. The next try starts its call counts
    afresh over the results stored so far, so completed tasks and answered pauses replay.
    """
    run_id = ctx.flow_run.run_id
    delay = flow.retry_delay(retry)
    await ctx.state.flush_writes()
    awaiting = AwaitingRetry(
        scheduled_time=store.now() + timedelta(seconds=delay),
        message=f"{type(exc).__name__}: {exc}",
    )
    try:
        await store.set_state(
            run_id, awaiting, expect=(StateType.RUNNING,), attempt=ctx.state.attempt
        )
    except StateConflict:  # cancelling, or another execution's now
        if (await _current_state(run_id)).is_cancelling():
            return await _cancel(ctx)
        return await _fail(ctx, exc)
    run_logs.get_run_logger().info("Retry %d of %d in %g second(s)", retry, flow.retries, delay)
    if delay > 0:  # woken early by a cancel, which ends a scheduled run at once
        await wait_for_state(run_id, lambda state: not state.is_scheduled(), delay)
    retrying = Retrying(message=f"retry {retry} of {flow.retries}")
    try:
        await store.set_state(
            run_id, retrying, expect=(StateType.SCHEDULED,), attempt=ctx.state.attempt
        )
    except StateConflict:
        state = await _current_state(run_id)
        cause = FlowRunCancelled(run_id) if state.is_cancelled() else exc
        return with_outcome(state, error=cause)
    ctx.state.task_calls.clear()
    ctx.state.pauses = 0
    ctx.state.rejection = None
    return None


async def _current_state(run_id: str) -> State:
    return (await read_flow_run(run_id)).state


async def _finish(
    ctx: FlowRunContext, state: State, expect: tuple[StateType, ...] = _ENDABLE
) -> None:
    """Store the execution's background writes, then how its body ended."""
    await ctx.state.flush_writes()
    await _end(ctx.flow_run.run_id, state, ctx.state.attempt, expect, ctx.state.queue_entry)


async def _settle(write: Coroutine[Any, Any, None]) -> None:
    """Carry out the write that records how a body ended, even if cancelled meanwhile.

    Once the body has returned, a worker's hand-back must not cut its last write short:
    the run would read Running, be queued again and run a second time elsewhere. The
    cancellation is raised once the write is done.
    """
    task = asyncio.ensure_future(write)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


async def _end(
    run_id: str,
    state: State,
    attempt: int | None,
    expect: tuple[StateType, ...] = _ENDABLE,
    entry: QueueEntry | None = None,
) -> None:
    """Record how execution ``attempt`` ended, unless the run already ended (a pause timed
    out) or another execution owns it now (its worker handed it back, or was declared dead).

    The run's logs are stored first: whoever sees the final state has every record. A
    worker's queue ``entry`` is acknowledged with it where Redis allows one step.
    """
    await run_logs.stop_shipping(run_id)
    with contextlib.suppress(StateConflict):
        await store.set_state(run_id, state, expect=expect, attempt=attempt, entry=entry)


async def execute_flow_run(
    flow: Flow[Any, Any],
    flow_run_id: Any,
    run: FlowRun | None = None,
    *,
    worker: str = "",
    entry: QueueEntry | None = None,
    start: store.Start | None = None,
) -> Any:
    """Execute an existing run of ``flow``, e.g. a resumed suspended run, from the top.

    Task results of earlier executions are reused, and the ``suspend_flow_run``
    call that suspended the run returns the resume input. Workers take this path
    (``entry``: the queue entry the run came from; ``start``: the run begun already, by
    the step that ended the previous run of the worker's slot); call it to re-execute a
    run in this process. Without ``run`` the run is begun and read in one step.
    """
    if run is not None:
        return await run_flow(flow, dict(run.parameters), run=run, worker=worker)
    run_id = normalize_run_id(flow_run_id)
    begun = await starting.begin_queued(run_id, worker, entry, start)
    return _outcome(await _execute(flow, begun), return_state=False)


async def start_flow_run(flow: Flow[Any, Any], *args: Any, **kwargs: Any) -> FlowRun:
    """Create a run of ``flow`` and execute it in the background on this loop.

    Returns the run at once (its id can be sent input right away). The run ends
    with its own state; errors are stored on it, not raised here.
    """
    parameters = flow.bind(*args, **kwargs)
    run = await create_flow_run(flow.name, to_jsonable_python(parameters, fallback=repr))
    task = asyncio.get_running_loop().create_task(run_flow(flow, parameters, run=run, fresh=True))
    _background.add(task)
    task.add_done_callback(_forget)
    return run


def _forget(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled():
        task.exception()  # stored on the run already; don't warn it was never retrieved
