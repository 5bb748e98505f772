"""The run store: fencing by attempt, retried writes recognised, releases, retention."""

from __future__ import annotations

import asyncio
import hashlib

import orjson
import pytest

from hitl_bus import keys
from hitl_bus.bus import get_bus
from hitl_bus.engine import indexes, store
from hitl_bus.engine.runs import create_flow_run, read_flow_run, read_flow_runs
from hitl_bus.engine.states import State, StateType, state_json
from hitl_bus.errors import StateConflict
from hitl_bus.inputs.keyset import Mailbox, keyset_from_base_key
from hitl_bus.inputs.messaging import deliver

DEPLOYMENT = "answers/default"
pytestmark = pytest.mark.also_on_cluster


async def _scheduled() -> str:
    run = await create_flow_run(
        "answers", {}, state=State(type=StateType.SCHEDULED), deployment=DEPLOYMENT
    )
    return str(run.id)


async def _events(run_id: str) -> list[str]:
    entries = await get_bus().client.xrange(keys.run_events(run_id))
    return [fields[b"data"].decode() for _, fields in entries]


async def _pause(run_id: str, attempt: int, *, key: str = "pause-1") -> None:
    keyset = keyset_from_base_key(key)
    paused = State(type=StateType.PAUSED, state_details={"pause_key": key})
    request = store.PauseRequest(
        state=paused, pause_key=key, deadline_ms=0, keyset=keyset, suspend=False,
        schema=b'{"type": "object"}', values=[],
    )  # fmt: skip
    await store.pause(run_id, attempt, request)


async def _complete(run_id: str, attempt: int) -> None:
    """The running execution ``attempt`` ends its run: Completed."""
    await store.set_state(
        run_id, State(type=StateType.COMPLETED), expect=(StateType.RUNNING,), attempt=attempt
    )


async def _finished_run(monkeypatch: pytest.MonkeyPatch, *, retention: str) -> str:
    """A run begun and Completed while runs are kept ``retention`` seconds once finished."""
    monkeypatch.setenv("HITL_BUS_RUN_RETENTION", retention)
    run_id = await _scheduled()
    await _complete(run_id, await store.begin(run_id, State(type=StateType.RUNNING)))
    return run_id


def _resume_request(request_id: str = "r1") -> store.ResumeRequest:
    return store.ResumeRequest(
        pause_key="pause-1",
        response='{"value": 5}',
        gave_input=True,
        checked=[b'{"type": "object"}', hashlib.sha1(b'{"type": "object"}').hexdigest().encode()],
        running=state_json(StateType.RUNNING),
        resuming=state_json(StateType.SCHEDULED, name="Resuming"),
        failed=state_json(StateType.FAILED),
        request_id=request_id,
        deployment=DEPLOYMENT,
    )


def _release(worker: str, *, count_crash: bool = True, retries: int = 0) -> store.Release:
    return store.Release(
        worker=worker, reason="test", deployment=DEPLOYMENT, count_crash=count_crash,
        retries=retries,
    )  # fmt: skip


async def _owned_keys(run_id: str) -> list[str]:
    """The run's keys that exist (named, not scanned: KEYS sees one node of a Cluster)."""
    client = get_bus().client
    names = [
        keys.run(run_id), keys.run_events(run_id), keys.run_control(run_id),
        keys.run_values(run_id), keys.run_logs(run_id), keys.run_receivers(run_id),
        keys.run_tasks(run_id), keys.input_streams(run_id), keys.input_keys(run_id),
    ]  # fmt: skip
    for prefix in await client.smembers(keys.input_streams(run_id)):
        names.append(keys.input_stream(run_id, prefix.decode()))
    return [name for name in names if await client.exists(name)]


async def _queued(run_id: str) -> int:
    entries = await get_bus().client.xrange(keys.deployment_queue(DEPLOYMENT))
    return sum(1 for _, fields in entries if fields[b"run_id"].decode() == run_id)


async def test_each_execution_gets_the_next_attempt(bus_url: str) -> None:
    run_id = await _scheduled()
    assert await store.begin(run_id, State(type=StateType.RUNNING), "w1") == 1
    with pytest.raises(StateConflict):  # already running: a second execution may not start
        await store.begin(run_id, State(type=StateType.RUNNING), "w2")
    await store.release(run_id, _release("w1", count_crash=False))
    assert await store.begin(run_id, State(type=StateType.RUNNING), "w2") == 2
    record = await store.read_record(run_id)
    assert (record.attempt, record.worker) == (2, "w2")


async def test_a_superseded_execution_cannot_write(bus_url: str) -> None:
    """The hand-back race, step by step: A hands back, B starts, A's last write is refused."""
    run_id = await _scheduled()
    first = await store.begin(run_id, State(type=StateType.RUNNING), "a")
    await store.release(run_id, _release("a", count_crash=False))
    second = await store.begin(run_id, State(type=StateType.RUNNING), "b")
    with pytest.raises(StateConflict):
        await store.set_state(
            run_id,
            State(type=StateType.CANCELLED),
            expect=(StateType.RUNNING, StateType.CANCELLING),
            attempt=first,
        )
    with pytest.raises(StateConflict):
        await _pause(run_id, first)
    assert (await read_flow_run(run_id)).state.is_running()
    await store.set_state(
        run_id, State(type=StateType.COMPLETED), expect=(StateType.RUNNING,), attempt=second
    )
    assert (await read_flow_run(run_id)).state.is_completed()


async def test_a_state_stored_in_another_field_order_is_read_whole(bus_url: str) -> None:
    """Scripts read a state's id and type from the head hitl_bus writes; a state stored
    otherwise (another writer, another order) is decoded instead, to the same effect."""
    run_id = await _scheduled()
    attempt = await store.begin(run_id, State(type=StateType.RUNNING), "w1")
    running = State.model_validate_json(await get_bus().client.hget(keys.run(run_id), "state"))
    reordered = (
        f'{{ "type": "RUNNING", "name": "Running", "id": "{running.id}", '
        f'"timestamp": "{running.timestamp.isoformat()}", "state_details": {{}} }}'
    )
    await get_bus().client.hset(keys.run(run_id), "state", reordered)
    retried = State(id=running.id, type=StateType.RUNNING)  # recognised by its id: no change
    assert await store.set_state(run_id, retried, expect=(StateType.SCHEDULED,)) is None
    before = await store.set_state(
        run_id, State(type=StateType.COMPLETED), expect=(StateType.RUNNING,), attempt=attempt
    )
    assert before is StateType.RUNNING
    assert (await read_flow_run(run_id)).state.is_completed()
    assert run_id not in {str(r.id) for r in await read_flow_runs(state="RUNNING")}
    assert run_id in {str(r.id) for r in await read_flow_runs(state="COMPLETED")}


@pytest.mark.parametrize(
    "actor",
    ["hitl.user.grace", 'hitl.client.the "nightly" job', "hitl.client.a\\b", None],
)
async def test_a_state_s_actor_tops_its_event_whatever_it_holds(
    bus_url: str, actor: str | None
) -> None:
    run_id = await _scheduled()
    await store.begin(run_id, State.model_validate_json(state_json(StateType.RUNNING, actor=actor)))
    events = [orjson.loads(e) for e in await _events(run_id)]
    assert events[-1]["state"]["type"] == "RUNNING"
    assert events[-1].get("actor") == actor
    assert ("actor" in events[-1]) is (actor is not None)


@pytest.mark.parametrize("actor", ["hitl.user.grace", None])
async def test_text_that_looks_like_an_actor_is_not_taken_for_one(
    bus_url: str, actor: str | None
) -> None:
    run_id = await _scheduled()
    message = 'ask "actor":"hitl.user.mallory" and "actor": null'
    running = state_json(StateType.RUNNING, message=message, actor=actor)
    await store.begin(run_id, State.model_validate_json(running))
    event = orjson.loads((await _events(run_id))[-1])
    assert event["state"]["message"] == message
    assert event.get("actor") == actor


async def test_a_retried_state_write_is_applied_once(bus_url: str) -> None:
    run_id = await _scheduled()
    attempt = await store.begin(run_id, State(type=StateType.RUNNING))
    done = State(type=StateType.COMPLETED)
    for _ in range(2):  # the second call is what a retry after a lost reply sends
        await store.set_state(run_id, done, expect=(StateType.RUNNING,), attempt=attempt)
    assert sum('"COMPLETED"' in e for e in await _events(run_id)) == 1


async def test_a_retried_resume_is_recognised(bus_url: str) -> None:
    run_id = await _scheduled()
    attempt = await store.begin(run_id, State(type=StateType.RUNNING))
    await _pause(run_id, attempt)
    first = await store.resume(run_id, _resume_request("same"))
    again = await store.resume(run_id, _resume_request("same"))
    other = await store.resume(run_id, _resume_request("other"))
    assert first.outcome is again.outcome is store.Outcome.OK
    assert other.outcome is store.Outcome.CONFLICT
    control = await get_bus().client.xrange(keys.run_control(run_id))
    assert [f[b"type"] for _, f in control] == [b"resumed"]


async def test_release_keeps_a_paused_run_answerable(bus_url: str) -> None:
    run_id = await _scheduled()
    attempt = await store.begin(run_id, State(type=StateType.RUNNING), "a")
    await _pause(run_id, attempt)
    assert await store.release(run_id, _release("a")) is store.Outcome.SUSPENDED
    run = await read_flow_run(run_id)
    assert run.state.is_suspended()
    assert run.state.state_details.pause_key == "pause-1"
    change = await store.resume(run_id, _resume_request())
    assert change.outcome is store.Outcome.SUSPENDED_RESUMED
    assert (await read_flow_run(run_id)).state.name == "Resuming"
    assert await _queued(run_id) == 1  # the resume queued it for a worker


async def test_a_run_resumed_while_its_worker_was_dead_is_rerun_free(bus_url: str) -> None:
    """Paused, its worker dies, a resume moves it to Running: the release queues it again
    as Resuming and charges no retry, because it paused during the lost execution."""
    run_id = await _scheduled()
    attempt = await store.begin(run_id, State(type=StateType.RUNNING), "a")
    await _pause(run_id, attempt)
    await store.resume(run_id, _resume_request())
    assert (await read_flow_run(run_id)).state.is_running()
    assert await store.release(run_id, _release("a", retries=0)) is store.Outcome.REQUEUED
    run = await read_flow_run(run_id)
    assert (run.state.type, run.state.name) == (StateType.SCHEDULED, "Resuming")
    assert (await store.read_record(run_id)).crashes == 0
    assert await _queued(run_id) == 1


async def test_a_running_run_is_retried_then_crashed(bus_url: str) -> None:
    run_id = await _scheduled()
    await store.begin(run_id, State(type=StateType.RUNNING), "a")
    assert await store.release(run_id, _release("a", retries=1)) is store.Outcome.REQUEUED
    await store.begin(run_id, State(type=StateType.RUNNING), "b")
    assert await store.release(run_id, _release("b", retries=1)) is store.Outcome.CRASHED
    assert (await read_flow_run(run_id)).state.is_crashed()


async def test_release_leaves_another_worker_s_execution_alone(bus_url: str) -> None:
    run_id = await _scheduled()
    await store.begin(run_id, State(type=StateType.RUNNING), "alive")
    assert await store.release(run_id, _release("dead")) is store.Outcome.SUPERSEDED
    assert (await read_flow_run(run_id)).state.is_running()


async def test_release_of_a_cancelling_run_cancels_it(bus_url: str) -> None:
    run_id = await _scheduled()
    await store.begin(run_id, State(type=StateType.RUNNING), "a")
    await store.cancel(run_id, State(type=StateType.CANCELLING), State(type=StateType.CANCELLED))
    assert await store.release(run_id, _release("a")) is store.Outcome.CANCELLED
    assert (await read_flow_run(run_id)).state.is_cancelled()


async def test_a_finished_run_expires_and_leaves_every_index(
    bus_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HITL_BUS_RUN_RETENTION", "0.3")
    run_id = await _scheduled()
    attempt = await store.begin(run_id, State(type=StateType.RUNNING))
    await deliver(Mailbox.for_run(run_id), "hello")
    await _complete(run_id, attempt)
    bus = get_bus()
    owned = await _owned_keys(run_id)
    assert len(owned) >= 5
    for key in owned:
        assert 0 < await bus.client.pttl(key) <= 300, key
    assert [str(r.id) for r in await read_flow_runs()] == [run_id]

    async def gone() -> bool:
        await indexes.forget_expired()
        index = keys.runs(keys.index_shard(run_id, bus.index_shards), bus.index_shards)
        return not await bus.client.zscore(index, run_id)

    deadline = asyncio.get_running_loop().time() + 5
    while not await gone():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert await _owned_keys(run_id) == []
    for state_type in StateType:
        assert await bus.client.zscore(keys.runs_by_state(state_type.value), run_id) is None
    assert await read_flow_runs() == []


async def test_a_run_that_used_only_its_hash_and_events_expires_whole(
    bus_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await _finished_run(monkeypatch, retention="30")
    owned = await _owned_keys(run_id)
    assert sorted(owned) == sorted([keys.run(run_id), keys.run_events(run_id)])
    for key in owned:
        assert 0 < await get_bus().client.pttl(key) <= 30_000, key


async def test_retention_zero_keeps_finished_runs(
    bus_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await _finished_run(monkeypatch, retention="0")
    assert await get_bus().client.pttl(keys.run(run_id)) == -1


async def test_a_send_to_a_finished_run_expires_with_it(
    bus_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await _finished_run(monkeypatch, retention="30")
    await deliver(Mailbox.for_run(run_id), 7)  # a new stream, made after the run finished
    bus = get_bus()
    stream = keys.input_stream(run_id, "int-auto")
    assert await bus.client.exists(stream)
    for key in await _owned_keys(run_id):
        assert 0 < await bus.client.pttl(key) <= 30_000, key


async def test_a_stale_entry_of_a_dead_worker_leaves_a_live_execution_alone(bus_url: str) -> None:
    """A dead worker's old queue entry names a run this very worker executes now."""
    from hitl_bus.deployments import Worker
    from tests.worker_flows import answers_default

    worker = Worker([answers_default], name="alive")
    run_id = await _scheduled()
    await store.begin(run_id, State(type=StateType.RUNNING), worker.id)
    await worker._release_orphan(answers_default, run_id, "dead-worker")
    assert (await read_flow_run(run_id)).state.is_running()
