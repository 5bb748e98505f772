"""Prefect's interactive API as documented, through Prefect's module paths.

Each test is a line a migrating user writes against ``prefect.*`` with only the
import changed to ``hitl_bus.*``: state details, pause keysets, resuming with a
form's defaults, the metadata of a pause's answer, the run context, subflows.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from hitl_bus import flow, runtime
from hitl_bus.client.orchestration import get_client
from hitl_bus.context import FlowRunContext, get_run_context
from hitl_bus.engine.flows import execute_flow_run, start_flow_run
from hitl_bus.engine.runs import create_flow_run
from hitl_bus.exceptions import (
    FlowRunWaitTimeout,
    MissingContextError,
    ObjectNotFound,
    Pause,
    ResumeRejected,
)
from hitl_bus.flow_runs import (
    aresume_flow_run,
    pause_flow_run,
    resume_flow_run,
    suspend_flow_run,
    wait_for_flow_run,
)
from hitl_bus.input import RunInput, keyset_from_base_key, keyset_from_paused_state
from hitl_bus.input.actions import read_flow_run_input
from hitl_bus.states import Paused, Running, State, StateDetails, StateType, Suspended
from tests.helpers import eventually

pytestmark = pytest.mark.usefixtures("bus_url")


class Approval(RunInput):
    approved: bool = False
    comment: str = "none"


async def until_paused(run_id: object) -> State:
    async def paused() -> bool:
        return (await get_client().read_flow_run(run_id)).state.is_paused()

    await eventually(paused)
    return (await get_client().read_flow_run(run_id)).state


# 1. state_details is an object with Prefect's fields


async def test_a_paused_states_details_are_prefects_fields() -> None:
    @flow
    async def waits() -> None:
        await pause_flow_run(wait_for_input=Approval, timeout=600)

    run = await start_flow_run(waits)
    state = await until_paused(run.id)
    details = state.state_details
    assert isinstance(details, StateDetails)
    assert details.pause_key == "1"
    assert details.pause_reschedule is False
    assert details.flow_run_id == run.id
    assert details.run_input_keyset == keyset_from_base_key("paused-1")
    assert details.pause_timeout is not None
    left = details.pause_timeout - datetime.now(UTC)
    assert timedelta(seconds=590) < left <= timedelta(seconds=600)
    await resume_flow_run(run.id)
    final = await wait_for_flow_run(run.id, timeout=10)
    assert final.state.is_completed()


# 2. keysets are named from the state; Paused(...) and Suspended(...) build states


async def test_the_pause_keeps_its_schema_under_the_keyset_of_its_state() -> None:
    @flow
    async def waits() -> None:
        await pause_flow_run(wait_for_input=Approval)

    run = await start_flow_run(waits)
    state = await until_paused(run.id)
    keyset = keyset_from_paused_state(state)
    assert keyset["schema"] == "paused-1-schema"

    schema = await read_flow_run_input(keyset["schema"], flow_run_id=run.id)
    assert schema is not None and "approved" in schema["properties"]
    await resume_flow_run(run.id, {"approved": True})
    await wait_for_flow_run(run.id, timeout=10)
    answer = await Approval.load(keyset, flow_run_id=run.id)
    assert answer.approved is True


def test_paused_and_suspended_constructors_take_prefects_arguments() -> None:
    paused = Paused(timeout_seconds=30, pause_key="approval")
    assert paused.type is StateType.PAUSED and paused.name == "Paused"
    assert paused.state_details.pause_key == "approval"
    assert paused.state_details.pause_timeout is not None
    assert keyset_from_paused_state(paused)["response"] == "paused-approval-response"

    suspended = Suspended(pause_key="2")
    assert suspended.is_paused() and suspended.name == "Suspended"
    assert suspended.state_details.pause_reschedule is True
    assert keyset_from_paused_state(suspended)["response"] == "suspended-2-response"

    with pytest.raises(RuntimeError):
        keyset_from_paused_state(Running())
    with pytest.raises(ValueError, match="not both"):
        Paused(timeout_seconds=5, pause_expiration_time=datetime.now(UTC))


# 3. resume without input on a form whose fields all have defaults


async def test_resume_without_input_gives_the_forms_defaults() -> None:
    got: list[Approval] = []

    @flow
    async def waits() -> None:
        got.append(await pause_flow_run(wait_for_input=Approval.with_initial_data(comment="ok")))

    run = await start_flow_run(waits)
    await until_paused(run.id)
    await aresume_flow_run(run.id)
    assert (await wait_for_flow_run(run.id, timeout=10)).state.is_completed()
    assert [(a.approved, a.comment) for a in got] == [(False, "ok")]


async def test_resume_without_input_is_refused_when_a_field_is_required() -> None:
    @flow
    async def waits() -> None:
        await pause_flow_run(wait_for_input=str)

    run = await start_flow_run(waits)
    await until_paused(run.id)
    with pytest.raises(ResumeRejected):
        await resume_flow_run(run.id)
    assert (await get_client().read_flow_run(run.id)).state.is_paused()
    await resume_flow_run(run.id, {"value": "now"})
    assert (await wait_for_flow_run(run.id, timeout=10)).state.is_completed()


# 4 and 5. the answer of a pause carries its metadata; the receiver is the run's UUID


async def test_a_pauses_answer_carries_key_and_receiver() -> None:
    got: list[Approval] = []

    @flow
    async def waits() -> None:
        got.append(await pause_flow_run(wait_for_input=Approval))

    run = await start_flow_run(waits)
    await until_paused(run.id)
    await resume_flow_run(run.id, {"approved": True, "comment": "fine"})
    await wait_for_flow_run(run.id, timeout=10)
    (answer,) = got
    assert answer.metadata.key == "paused-1-response"
    assert answer.metadata.receiver == run.id
    assert isinstance(answer.metadata.receiver, uuid.UUID)
    assert answer.metadata.sender is None


# 9. the run context: Prefect's accessors and the deployment id


async def test_the_run_context_has_prefects_accessors() -> None:
    seen: list[FlowRunContext | None] = []

    @flow
    async def looks() -> uuid.UUID:
        seen.append(FlowRunContext.get())
        ctx = get_run_context()
        assert ctx.flow_run.deployment_id is None  # called directly, not deployed
        return ctx.flow_run.id

    run_id = await looks()
    assert isinstance(run_id, uuid.UUID)  # as Prefect's flow_run.id
    assert seen[0] is not None and seen[0].flow_run.id == run_id
    assert FlowRunContext.get() is None
    with pytest.raises(RuntimeError):
        get_run_context()
    with pytest.raises(MissingContextError):
        get_run_context()


async def test_a_run_of_a_deployment_knows_the_deployments_id() -> None:
    ids: list[uuid.UUID | None] = []

    @flow
    async def deployed() -> None:
        ids.append(get_run_context().flow_run.deployment_id)

    run = await create_flow_run("deployed", {}, deployment="deployed/nightly")
    await execute_flow_run(deployed, run.id)
    assert ids == [run.deployment_id] and ids[0] is not None
    again = await create_flow_run("deployed", {}, deployment="deployed/nightly")
    assert again.deployment_id == run.deployment_id  # the same deployment, the same id


# 10. subflows cannot suspend


async def test_suspending_inside_a_subflow_is_refused_and_leaves_no_suspended_run() -> None:
    child_ids: list[str] = []
    parents: list[str | None] = []

    @flow
    async def child() -> None:
        child_ids.append(get_run_context().flow_run.id)
        parents.append(runtime.flow_run.parent_flow_run_id)
        await suspend_flow_run(wait_for_input=str)

    @flow
    async def parent() -> str:
        parents.append(str(get_run_context().flow_run.id))
        try:
            await child()
        except RuntimeError as exc:
            return f"refused: {type(exc).__name__}"
        return "suspended"

    assert await parent() == "refused: SubflowSuspendError"
    (child_id,) = child_ids
    state = (await get_client().read_flow_run(child_id)).state
    assert state.is_failed() and not state.is_paused()
    assert parents[0] is not None and parents == [parents[0], parents[0]]


# 11. a run suspended before it started raises the suspension signal when executed


async def test_executing_a_run_suspended_before_it_started_raises_pause() -> None:
    @flow
    async def later() -> str:
        answer = await pause_flow_run(wait_for_input=str)
        return answer

    run = await create_flow_run("later", {})
    await suspend_flow_run(flow_run_id=run.id)
    with pytest.raises(Pause):
        await execute_flow_run(later, run.id)
    state = await until_paused(run.id)
    assert state.name == "Suspended"
    await resume_flow_run(run.id, {"value": "go"})
    assert await execute_flow_run(later, run.id) == "go"


# wait_for_flow_run and the error names


async def test_wait_for_flow_run_returns_the_final_run_or_raises_its_timeout() -> None:
    @flow
    async def waits() -> None:
        await pause_flow_run()

    run = await start_flow_run(waits)
    await until_paused(run.id)
    with pytest.raises(FlowRunWaitTimeout):
        await wait_for_flow_run(run.id, timeout=0.2)
    await resume_flow_run(run.id)
    final = await wait_for_flow_run(run.id, timeout=10)
    assert final.id == run.id and final.state.is_completed()


async def test_a_missing_run_is_prefects_object_not_found() -> None:
    with pytest.raises(ObjectNotFound):
        await get_client().read_flow_run(uuid.uuid4())


async def test_state_details_survive_a_round_trip_through_the_run_record() -> None:
    state = Paused(timeout_seconds=60, pause_key="k")
    run = await create_flow_run("stored", {}, state=state)
    stored = (await get_client().read_flow_run(run.id)).state
    assert stored.state_details.pause_key == "k"
    assert stored.state_details.pause_timeout == state.state_details.pause_timeout
    await asyncio.sleep(0)
