"""Mistakes a user's checker must report, never run: each line marked ``# E: code`` is one.

tests/test_typing.py checks that mypy reports exactly these, so the types are
not silently ``Any`` and the check can fail.
"""

from __future__ import annotations

from hitl_bus import (
    FlowRun,
    HitlClient,
    RunInput,
    apause_flow_run,
    flow,
    get_client,
    pause_flow_run,
    receive_input,
    resume_flow_run,
    run_deployment,
    send_input,
)
from hitl_bus.blocks import JSONBlock
from hitl_bus.engine import cancel_flow_run
from hitl_bus.runtime import flow_run


class UserName(RunInput):
    name: str


class ShirtOrder(RunInput):
    size: str


@flow
def sync_flow() -> None:
    text: str = pause_flow_run(wait_for_input=int)  # E: assignment
    user: UserName = pause_flow_run(wait_for_input=ShirtOrder)  # E: assignment
    word: str = receive_input(int).next()  # E: assignment
    block: UserName = JSONBlock.load("seen-keys")  # E: assignment
    run: FlowRun = cancel_flow_run("run-id")  # E: assignment
    resume_flow_run("run-id", run_input=[1])  # E: arg-type
    for received in receive_input(str):
        print(received.metadata)  # E: attr-defined
    number: int = flow_run.id  # E: assignment
    print(text, user, word, block, run, number)


@flow
def returns_a_number() -> int:
    return 1


def states_are_not_values() -> None:
    number: int = returns_a_number(return_state=True)  # E: assignment
    print(number)


@flow
async def async_flow() -> None:
    wrong: str = returns_a_number()  # E: assignment
    number: int = pause_flow_run(wait_for_input=int)  # E: assignment
    send_input("Ada", flow_run_id="run-id")  # E: unused-coroutine
    name: str = await run_deployment("greeter/send-receive")  # E: assignment
    await apause_flow_run(wait_for_input=int, timeout="soon")  # E: call-overload
    client: HitlClient = get_client(sync_client=True)  # E: assignment
    print(number, name, client, wrong)
