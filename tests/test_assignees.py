"""Who may answer: a pause's assignees, kept with the pause and enforced by every resume."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hitl_bus import (
    apause_flow_run,
    asuspend_flow_run,
    execute_flow_run,
    flow,
    get_client,
    keys,
    resume_flow_run,
    start_flow_run,
)
from hitl_bus.bus import codec, get_bus
from hitl_bus.context import acting
from hitl_bus.engine import store
from hitl_bus.errors import NotAllowed
from hitl_bus.people.roles import Role
from hitl_bus.people.store import add_person
from tests.helpers import eventually

pytestmark = pytest.mark.usefixtures("bus_url")


@flow
async def approval(assignees: list[str] | None = None) -> Any:
    return await apause_flow_run(wait_for_input=str, assignees=assignees)


async def _paused(assignees: list[str] | None, name: str = "Paused") -> str:
    run = await start_flow_run(approval, assignees)

    async def paused() -> bool:
        state = (await get_client().read_flow_run(run.id)).state
        return state.is_paused() and state.name == name

    await eventually(paused)
    return str(run.id)


async def _final(run_id: str) -> Any:
    async def done() -> bool:
        return (await get_client().read_flow_run(run_id)).state.is_final()

    await eventually(done)
    return (await get_client().read_flow_run(run_id)).state


async def _people() -> None:
    await add_person("grace", Role.RESPONDER)
    await add_person("ada", Role.RESPONDER)
    await add_person("linus", Role.RESPONDER, teams=["finance"])
    await add_person("olga", Role.OPERATOR)
    await add_person("vic", Role.VIEWER)


async def _snapshot(run_id: str) -> tuple[Any, ...]:
    client = get_bus().client
    return (
        await client.hgetall(keys.run(run_id)),
        await client.xlen(keys.run_events(run_id)),
        await client.hgetall(keys.run_values(run_id)),
        await client.xlen(keys.run_control(run_id)),
    )


async def test_assignees_are_kept_with_the_pause_and_cleared_when_it_ends() -> None:
    await _people()
    run_id = await _paused(["grace", "role:finance"])
    raw = await get_bus().client.hget(keys.run(run_id), "pause_assignees")
    assert codec.loads(raw) == ["grace", "role:finance"]
    record = await store.read_record(run_id)
    assert record.pause_assignees == ["grace", "role:finance"]
    assert record.run.pause_assignees == ["grace", "role:finance"]
    assert record.run.state.state_details.assignees == ["grace", "role:finance"]
    pause = await get_client().read_pause(run_id)
    assert pause is not None and pause.assignees == ["grace", "role:finance"]

    with acting("hitl.user.grace"):
        await resume_flow_run(run_id, {"value": "approved"})
    assert await get_bus().client.hget(keys.run(run_id), "pause_assignees") is None
    assert (await store.read_record(run_id)).pause_assignees is None
    assert (await _final(run_id)).is_completed()


@pytest.mark.also_on_cluster
async def test_someone_not_assigned_is_refused_and_nothing_changes() -> None:
    await _people()
    run_id = await _paused(["grace", "role:finance"])
    before = await _snapshot(run_id)
    with acting("hitl.user.ada"), pytest.raises(NotAllowed) as refused:
        await resume_flow_run(run_id, {"value": "sneaky"})
    assert str(refused.value) == (
        "this pause is assigned to grace and role:finance; ada may not answer it"
    )
    assert isinstance(refused.value, PermissionError)
    assert await _snapshot(run_id) == before
    assert (await get_client().read_flow_run(run_id)).state.is_paused()
    with acting("hitl.user.linus"):  # in the finance team
        await resume_flow_run(run_id, {"value": "ok"})
    assert (await _final(run_id)).is_completed()


async def test_a_name_a_team_and_a_role_each_let_their_people_answer() -> None:
    await _people()
    by_name = await _paused(["grace"])
    by_team = await _paused(["role:finance"])
    by_role = await _paused(["role:operator"])
    with acting("hitl.user.grace"):
        await resume_flow_run(by_name, {"value": "1"})
        with pytest.raises(NotAllowed):
            await resume_flow_run(by_team, {"value": "x"})
    with acting("hitl.user.linus"):
        await resume_flow_run(by_team, {"value": "2"})
        with pytest.raises(NotAllowed):
            await resume_flow_run(by_role, {"value": "x"})
    with acting("hitl.user.admin"):  # the bootstrap admin: above operator
        await resume_flow_run(by_role, {"value": "3"})
    for run_id in (by_name, by_team, by_role):
        assert (await _final(run_id)).is_completed()


async def test_a_program_is_trusted_and_an_explicit_actor_is_checked() -> None:
    await _people()
    trusted = await _paused(["grace"])
    await resume_flow_run(trusted, {"value": "from a script"})  # no actor: a program
    assert (await _final(trusted)).is_completed()
    checked = await _paused(["grace"])
    with pytest.raises(NotAllowed):
        await resume_flow_run(checked, {"value": "x"}, actor="hitl.user.ada")
    await resume_flow_run(checked, {"value": "y"}, actor="hitl.user.grace")
    assert (await _final(checked)).is_completed()


async def test_a_person_without_the_responder_role_or_unknown_is_refused() -> None:
    await _people()
    open_pause = await _paused(None)
    before = await _snapshot(open_pause)
    with acting("hitl.user.vic"), pytest.raises(NotAllowed) as viewer:
        await resume_flow_run(open_pause, {"value": "x"})
    assert str(viewer.value) == ("vic is a viewer; to answer you need the responder role or above")
    with acting("hitl.user.nobody"), pytest.raises(NotAllowed, match="nobody"):
        await resume_flow_run(open_pause, {"value": "x"})
    assert await _snapshot(open_pause) == before
    with acting("hitl.user.olga"):  # any responder (or above) answers an open pause
        await resume_flow_run(open_pause, {"value": "ok"})
    assert (await _final(open_pause)).is_completed()


async def test_a_bad_assignee_fails_before_pausing() -> None:
    for bad in (["Grace Hopper"], ["role:"]):
        run = await start_flow_run(approval, bad)
        state = await _final(str(run.id))
        assert state.is_failed()
        history = await get_client().read_state_history(run.id)
        assert not any(s.is_paused() for s in history)
    with pytest.raises(ValueError):
        await apause_flow_run(assignees=["no spaces allowed"])  # checked before the run is
    with pytest.raises(TypeError):
        await apause_flow_run(assignees=[3])  # type: ignore[list-item]


async def test_a_suspended_pause_keeps_its_assignees() -> None:
    await _people()

    @flow
    async def suspends() -> Any:
        return await asuspend_flow_run(wait_for_input=str, timeout=None, assignees=["grace"])

    run = await start_flow_run(suspends)

    async def suspended() -> bool:
        return (await get_client().read_flow_run(run.id)).state.is_suspended()

    await eventually(suspended)
    record = await store.read_record(str(run.id))
    assert record.suspended and record.pause_assignees == ["grace"]
    with acting("hitl.user.ada"), pytest.raises(NotAllowed):
        await resume_flow_run(run.id, {"value": "no"})
    with acting("hitl.user.grace"):
        await resume_flow_run(run.id, {"value": "yes"})
    resuming = (await get_client().read_flow_run(run.id)).state
    assert resuming.name == "Resuming" and resuming.state_details.actor == "hitl.user.grace"
    assert (await store.read_record(str(run.id))).pause_assignees is None
    assert await execute_flow_run(suspends, run.id) == "yes"


async def test_runs_waiting_for_a_person() -> None:
    await _people()
    for_grace = await _paused(["grace"])
    for_finance = await _paused(["role:finance"])
    for_anyone = await _paused(None)
    client = get_client()

    async def ids(person: str) -> set[str]:
        return {str(run.id) for run in await client.runs_waiting_for(person)}

    assert await ids("grace") == {for_grace, for_anyone}
    assert await ids("linus") == {for_finance, for_anyone}
    assert await ids("admin") == {for_anyone}  # not named, and role:finance is a team
    assert await ids("vic") == set()  # a viewer answers nothing
    assert await ids("nobody") == set()
    listed = await client.read_flow_runs(waiting_for="linus")
    assert {str(r.id) for r in listed} == {for_finance, for_anyone}
    assert await client.read_flow_runs(state="COMPLETED", waiting_for="linus") == []
    assert await client.read_flow_runs(flow_name="other", waiting_for="linus") == []
    named = await client.read_flow_runs(flow_name="approval", waiting_for="linus")
    assert {str(r.id) for r in named} == {for_finance, for_anyone}
    sync_listed = await asyncio.to_thread(
        lambda: get_client(sync_client=True).runs_waiting_for("grace")
    )
    assert {str(r.id) for r in sync_listed} == {for_grace, for_anyone}
    for run_id in (for_grace, for_finance, for_anyone):
        await resume_flow_run(run_id, {"value": "done"})
        await _final(run_id)
    assert await ids("grace") == set()


async def test_a_pause_released_by_a_dead_worker_keeps_its_assignees() -> None:
    await _people()
    run_id = await _paused(["grace"])
    why = store.Release(
        worker="", reason="its worker died", deployment="approval/x", count_crash=True
    )
    assert await store.release(run_id, why) is store.Outcome.SUSPENDED
    state = (await get_client().read_flow_run(run_id)).state
    assert state.is_suspended() and state.state_details.assignees == ["grace"]
    assert (await store.read_record(run_id)).pause_assignees == ["grace"]
    with acting("hitl.user.ada"), pytest.raises(NotAllowed):
        await resume_flow_run(run_id, {"value": "no"})
    with acting("hitl.user.grace"):
        await resume_flow_run(run_id, {"value": "yes"})
    assert (await store.read_record(run_id)).pause_assignees is None
