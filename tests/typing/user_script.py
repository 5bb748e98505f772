"""A user's program, never run: ``mypy --strict`` checks it (tests/test_typing.py).

It uses every name ``hitl_bus`` exports, the dual functions both from sync code
(the value) and from ``async def`` (awaited), and the usage examples of the
design brief. The annotations are the assertions: each says what a user may
rely on, so a change that loosens a type to ``Any`` or breaks a style fails.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, Self

from pydantic import BaseModel, ValidationError, model_validator

from hitl_bus import (
    TERMINAL_STATES,
    AutomaticRunInput,
    Deployment,
    Flow,
    FlowRun,
    FlowRunContext,
    HitlClient,
    InputReceiver,
    Keyset,
    RunInput,
    RunInputMetadata,
    State,
    StateType,
    SyncHitlClient,
    Task,
    Worker,
    apause_flow_run,
    areject_input,
    aresume_flow_run,
    arun_deployment,
    asend_input,
    asend_inputs,
    asuspend_flow_run,
    errors,
    execute_flow_run,
    flow,
    get_client,
    get_run_context,
    get_run_logger,
    keyset_from_base_key,
    pause_flow_run,
    receive_input,
    reject_input,
    resume_flow_run,
    run_deployment,
    send_input,
    send_inputs,
    serve,
    start_flow_run,
    suspend_flow_run,
    sweep_expired,
    task,
)
from hitl_bus.blocks import JSONBlock
from hitl_bus.engine import acancel_flow_run, cancel_flow_run
from hitl_bus.runtime import flow_run

# -- the design brief's examples, as written there (annotations added) ----------------------


@flow
def greet_user() -> None:  # sync flow: plain call blocks until resumed
    name = pause_flow_run(wait_for_input=str)
    get_run_logger().info("Hello, %s!", name)


class UserName(RunInput):
    name: str


@flow
async def greet_async() -> str:  # async flow: the same functions are awaited
    described = UserName.with_initial_data(description="**Who** are you?", name="anonymous")
    user = await pause_flow_run(wait_for_input=described, timeout=600)
    return user.name


class ShirtOrder(RunInput):
    size: Literal["small", "medium", "large", "xlarge"]
    color: Literal["red", "green", "black"]

    @model_validator(mode="after")
    def in_stock(self) -> Self:
        if self.color == "green" and self.size == "small":
            raise ValueError("Green is only in stock for medium, large and XL.")
        return self


@flow
def shirt() -> ShirtOrder:
    while True:  # custom validation runs in the flow, after resume
        try:
            return pause_flow_run(wait_for_input=ShirtOrder)
        except ValidationError as exc:
            get_run_logger().error("Invalid order: %s", exc)


@flow
async def greeter() -> None:  # receive without pausing, reply to each sender
    async for msg in receive_input(str, with_metadata=True, timeout=None):
        if msg.value == "exit":
            return
        await msg.respond(f"Hello, {msg.value}!")


@flow
async def sender() -> None:
    run = await run_deployment("greeter/send-receive", timeout=0)  # a worker runs it
    replies = receive_input(str, timeout=None)
    await send_input("Ada", flow_run_id=run.id)
    print(await replies.next())  # "Hello, Ada!"
    await send_input("exit", flow_run_id=run.id)


@flow
async def resumable() -> None:  # suspend: process exits, resume re-runs the flow
    seen = await JSONBlock.load("seen-keys")  # created once: JSONBlock(value=[]).save(...)
    async for m in receive_input(str, with_metadata=True, timeout=30, exclude_keys=seen.value):
        seen.value.append(m.metadata.key)
        await seen.save("seen-keys", overwrite=True)
    await suspend_flow_run(timeout=3600)


# -- sync style: each call is its value -----------------------------------------------------


class Plain(BaseModel):
    """A plain pydantic model: upgraded to a RunInput on the wire, still a ``Plain``."""

    level: int


@task
def double(x: int) -> int:
    return 2 * x


@flow
def sync_flow(run_id: str) -> int:
    number: int = pause_flow_run(wait_for_input=int)
    pause_flow_run(timeout=10)
    user: UserName = pause_flow_run(wait_for_input=UserName, key="who")
    plain: Plain = pause_flow_run(wait_for_input=Plain)
    numbers: list[int] = pause_flow_run(wait_for_input=list[int])
    later: int = suspend_flow_run(wait_for_input=int, timeout=60)
    other: int | None = suspend_flow_run(wait_for_input=int, flow_run_id=run_id)
    suspend_flow_run()
    resume_flow_run(run_id, {"name": "Ada"})
    resume_flow_run(uuid.uuid4())
    send_input(user, flow_run_id=run_id, key="order-1")
    send_input(3, run_id, sender=None, key_prefix="numbers")
    sent: list[str] = send_inputs([1, user], flow_run_id=run_id, keys=[None, "u-1"])
    print(sent)
    user.send_to(run_id)
    user.respond("thanks")
    reject_input(user, "not now")
    ctx: FlowRunContext = get_run_context()
    current: str | None = flow_run.id
    params: dict[str, Any] = flow_run.parameters
    name: str = ctx.flow_run.name
    for word in receive_input(str, timeout=1):
        word.upper()
    for order in receive_input(ShirtOrder, with_metadata=True):
        meta: RunInputMetadata = order.metadata
        print(order.size, meta.sender)
    for model in receive_input(Plain):
        model.level.bit_length()
    first: UserName = UserName.receive(timeout=5).next()
    text: str = receive_input(str).next()
    wrapped: AutomaticRunInput[str] = receive_input(str, with_metadata=True).next()
    receiver: InputReceiver[int] = receive_input(int, consumer="adder")
    total: int = sum(receiver)
    state: State = cancel_flow_run(run_id)
    finished: FlowRun = run_deployment("greeter/send-receive", {"n": 1}, timeout=None)
    block: JSONBlock = JSONBlock.load("seen-keys")
    block.save("seen-keys", overwrite=True)
    JSONBlock.delete("seen-keys")
    keyset: Keyset = keyset_from_base_key("pause-1")
    UserName.save(keyset, run_id)
    saved: UserName = UserName.load(keyset, run_id)
    print(plain, numbers, later, other, current, params, name, first, text)
    print(wrapped.value, state.is_final(), finished.id, block.value, saved.name)
    print(double(total))  # a task call is not typed yet: Flow and Task calls give Any
    return number


def read_with_the_sync_client(run_id: uuid.UUID) -> list[State]:
    client: SyncHitlClient = get_client(sync_client=True)
    with client:
        run: FlowRun = client.read_flow_run(run_id)
        runs: list[FlowRun] = client.read_flow_runs(state=StateType.PAUSED, limit=10)
        final: FlowRun = client.wait_for_flow_run(run_id, timeout=1)
        logs: list[dict[str, Any]] = client.read_logs(run_id)
        pause = client.read_pause(run_id)
        if pause is not None and pause.schema_ is not None:
            print(pause.pause_key, pause.deadline)
        cancelled: State = client.cancel_flow_run(run_id)
        print(run.state.type in TERMINAL_STATES, runs, final, logs, cancelled)
        return client.read_state_history(run_id)


async def call_flows() -> None:
    """Calling a flow gives its function's result: a value, or an awaitable for an async one."""
    order: ShirtOrder = shirt()
    name: str = await greet_async()
    doubled: int = double(2)
    print(order, name, doubled)


@flow(retries=2, retry_delay_seconds=[1, 5], timeout_seconds=30, log_prints=True)
async def with_options(n: int) -> int:
    return n


@flow(validate_parameters=False, persist_result=True, description="kept", version="1")
def sync_with_options(n: int) -> int:
    return n


async def call_for_states() -> None:
    """``return_state=True`` gives the final state: awaited for an async flow."""
    state: State = await with_options(1, return_state=True)
    sync_state: State = sync_with_options(2, return_state=True)
    value: int = await with_options(3)
    print(state.result(), sync_state.result(raise_on_failure=False), value)


def outside_any_run(run_id: str) -> None:
    """A plain script: the same names block and return values."""
    send_input("Ada", flow_run_id=run_id)
    reply: str = receive_input(str, timeout=10).next()
    run: FlowRun = run_deployment("greeter/send-receive", timeout=0)
    JSONBlock(value=[]).save("seen-keys")
    print(reply, run.state.name)


def serve_them(flows: list[Flow[..., Any]]) -> None:
    deployments: list[Deployment] = [f.to_deployment(name="default") for f in flows]
    worker = Worker(deployments, concurrency=2)
    print(worker)
    serve(*deployments, concurrency=2)
    greet_user.serve(name="default")


# -- async style: the same names awaited, and the a-prefixed twins -------------------------


@flow
async def async_flow(run_id: str) -> int:
    number: int = await pause_flow_run(wait_for_input=int)
    await pause_flow_run()
    user: UserName = await pause_flow_run(wait_for_input=UserName)
    plain: Plain = await apause_flow_run(wait_for_input=Plain, timeout=None)
    twin: int = await apause_flow_run(wait_for_input=int)
    later: int = await suspend_flow_run(wait_for_input=int)
    twin_later: int = await asuspend_flow_run(wait_for_input=int, key="s")
    other: int | None = await asuspend_flow_run(wait_for_input=int, flow_run_id=run_id)
    await resume_flow_run(run_id, {"value": 3})
    await aresume_flow_run(run_id, None)
    await send_input(user, flow_run_id=run_id)
    await asend_input("hi", run_id, key="greeting-1")
    batch: list[str] = await send_inputs(["a", "b"], flow_run_id=run_id, key_prefix="words")
    twin_batch: list[str] = await asend_inputs([user], run_id, sender=None)
    print(batch, twin_batch)
    await user.send_to(run_id, key_prefix="users")
    await user.respond({"ok": True}, key="reply-1")
    await reject_input(user, "not now")
    await areject_input("greeting-1", "twice", flow_run_id=run_id)
    async for word in receive_input(str, timeout=None):
        word.upper()
    async for order in ShirtOrder.receive(consumer="orders"):
        order.color.upper()
    text: str = await receive_input(str).next()
    wrapped: AutomaticRunInput[str] = await receive_input(str, with_metadata=True).next()
    state: State = await cancel_flow_run(run_id)
    twin_state: State = await acancel_flow_run(run_id)
    run: FlowRun = await run_deployment("greeter/send-receive")
    twin_run: FlowRun = await arun_deployment("greeter/send-receive", timeout=0)
    block: JSONBlock = await JSONBlock.load("seen-keys")
    await block.save("seen-keys", overwrite=True)
    await JSONBlock.delete("seen-keys")
    keyset = keyset_from_base_key("pause-2")
    await UserName.save(keyset)
    saved: UserName = await UserName.load(keyset)
    print(plain, twin, later, twin_later, other, text, wrapped.metadata.key)
    print(state, twin_state, run, twin_run, block, saved)
    return number


async def read_with_the_async_client(run_id: str) -> None:
    client: HitlClient = get_client()
    run: FlowRun = await client.read_flow_run(run_id)
    async with get_client() as same:
        runs: list[FlowRun] = await same.read_flow_runs(flow_name="greeter", deployment=None)
        until_paused: FlowRun = await same.wait_for_flow_run(run_id, until=State.is_paused)
        events: list[dict[str, Any]] = await same.read_events(run_id)
        history: list[State] = await same.read_state_history(run_id)
        inputs: list[dict[str, Any]] = await same.read_inputs(run_id, per_prefix=5)
        receivers: dict[str, Any] = await same.read_receivers(run_id)
        cancelled: State = await same.cancel_flow_run(run_id)
    print(run, runs, until_paused, events, history, inputs, receivers, cancelled)


async def start_and_execute() -> None:
    run: FlowRun = await start_flow_run(async_flow, "run-id")
    result: Any = await execute_flow_run(async_flow, run.id)
    expired: list[str] = await sweep_expired()
    doubled: Task[[int], int] = double
    try:
        await greet_async()
    except errors.FlowRunSuspended as exc:
        print(exc)
    print(result, expired, doubled, StateType.COMPLETED, TERMINAL_STATES)
