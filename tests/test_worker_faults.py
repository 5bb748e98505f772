"""Worker faults: kill -9 and SIGTERM of worker processes while people answer their runs.

Each test starts its own worker processes and kills or stops them by pid. What must
hold: every run a person answered completes exactly once with that answer, and no
run is left Paused or Running without a process.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal

import pytest

from hitl_bus import resume_flow_run, run_deployment
from hitl_bus.bus import get_bus
from hitl_bus.engine.runs import FlowRun
from hitl_bus.engine.states import State
from hitl_bus.redis_server import RedisServer
from tests.faults import ReplyLosingProxy
from tests.workers import StartWorker, registered, state_of, wait_state, workers_alive

pytestmark = pytest.mark.realredis


async def _paused_runs(tag: str, count: int) -> list[FlowRun]:
    runs = [await run_deployment("answers/default", {"tag": tag}, timeout=0) for _ in range(count)]
    for run in runs:
        await wait_state(run.id, lambda s: s.is_paused())  # type: ignore[attr-defined]
    return runs


async def _answers(tag: str) -> dict[str, list[str]]:
    """Run id -> every answer its completed body recorded."""
    got: dict[str, list[str]] = {}
    for raw in await get_bus().client.lrange(f"test:answer:{tag}", 0, -1):
        run_id, value = raw.decode().split("=")
        got.setdefault(run_id, []).append(value)
    return got


async def _all_final(runs: list[FlowRun], timeout: float = 40) -> list[State]:
    for run in runs:
        await wait_state(run.id, lambda s: s.is_final(), timeout=timeout)  # type: ignore[attr-defined]
    return [await state_of(run.id) for run in runs]  # type: ignore[misc]


async def test_a_resume_inside_the_dead_window_is_kept(start_worker: StartWorker) -> None:
    """Worker A dies with paused runs. Half are resumed before anyone can know A is dead
    (the resume is accepted and moves them to Running with nobody to run them), half
    after A is declared dead (they read Suspended first). All complete on worker B, once,
    with the answer given, and A's death is not charged to the runs (retries=0)."""
    doomed = start_worker("tests/worker_flows.py", "--concurrency", "20")
    await registered("answers/default")
    runs = await _paused_runs("dead-window", 8)
    start_worker("tests/worker_flows.py", "--concurrency", "20")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    early, late = runs[:4], runs[4:]
    for i, run in enumerate(early):  # well inside the 1 s before A counts as dead
        await resume_flow_run(run.id, {"value": 100 + i})
    for run in late:
        await wait_state(run.id, lambda s: s.is_suspended(), timeout=30)  # type: ignore[attr-defined]
    for i, run in enumerate(late):
        await resume_flow_run(run.id, {"value": 200 + i})
    states = await _all_final(runs)
    assert [s.type.value for s in states] == ["COMPLETED"] * 8
    answers = await _answers("dead-window")
    expected = {str(r.id): [str(100 + i)] for i, r in enumerate(early)}
    expected |= {str(r.id): [str(200 + i)] for i, r in enumerate(late)}
    assert answers == expected  # each body completed exactly once, with its answer
    tasks = await get_bus().client.lrange("test:task:dead-window", 0, -1)
    assert len(tasks) == 8  # the task before the pause ran once per run: replayed after


async def test_sigterm_leaves_paused_runs_answerable(start_worker: StartWorker) -> None:
    """A stopping worker turns its paused runs into suspended ones; a resume then queues
    them for another worker. None is left Paused with no process."""
    worker = start_worker("tests/worker_flows.py", "--grace", "0.2", "--concurrency", "20")
    await registered("answers/default")
    runs = await _paused_runs("drained", 5)
    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 20) == 0
    for run in runs:
        state = await state_of(run.id)
        assert state.is_suspended(), state  # type: ignore[attr-defined]
    for i, run in enumerate(runs):
        await resume_flow_run(run.id, {"value": i})
    start_worker()
    states = await _all_final(runs)
    assert [s.type.value for s in states] == ["COMPLETED"] * 5
    assert await _answers("drained") == {str(r.id): [str(i)] for i, r in enumerate(runs)}


async def test_sigterm_with_a_resume_racing_the_drain(start_worker: StartWorker) -> None:
    """Resumes land while the worker drains: each is kept, whichever side wins."""
    worker = start_worker("tests/worker_flows.py", "--grace", "0.05", "--concurrency", "20")
    await registered("answers/default")
    runs = await _paused_runs("drain-race", 6)
    worker.send_signal(signal.SIGTERM)
    for i, run in enumerate(runs):
        await resume_flow_run(run.id, {"value": i})  # may land before or after the release
    await asyncio.to_thread(worker.wait, 20)
    start_worker()
    states = await _all_final(runs)
    assert [s.type.value for s in states] == ["COMPLETED"] * 6
    assert await _answers("drain-race") == {str(r.id): [str(i)] for i, r in enumerate(runs)}


async def test_a_handed_back_run_is_not_cancelled_by_the_worker_that_gave_it_up(
    start_worker: StartWorker,
) -> None:
    """Worker A hands its running runs back and cancels their tasks; worker B has started
    them meanwhile. A's cancelled executions are superseded: their last write is refused,
    and every run completes on B."""
    doomed = start_worker("tests/worker_flows.py", "--grace", "0.1", "--concurrency", "12")
    await registered("tidy/default")
    runs = [
        await run_deployment("tidy/default", {"seconds": 1.5, "tag": "race"}, timeout=0)
        for _ in range(12)
    ]
    for run in runs:
        await wait_state(run.id, lambda s: s.is_running())  # type: ignore[attr-defined]
    start_worker("tests/worker_flows.py", "--concurrency", "12")
    await workers_alive(2)
    doomed.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(doomed.wait, 20) == 0
    states = await _all_final(runs)
    assert [s.type.value for s in states] == ["COMPLETED"] * 12
    finished = await get_bus().client.lrange("test:finished:race", 0, -1)
    # Every body ran to its end. Execution is at-least-once: a body cut off right at its
    # last line by the hand-back runs again on B (the run still completes once).
    assert {x.decode().split(":")[0] for x in finished} == {str(r.id) for r in runs}


async def test_a_queue_entry_whose_read_reply_is_cut_off_still_runs_once(
    start_worker: StartWorker, redis_server: RedisServer
) -> None:
    """The same, with a real cut: the worker reaches Redis through a proxy that relays the
    worker's blocked XREADGROUP, reads the reply that delivers the entry and cuts the
    worker's connection instead of passing it on."""
    from hitl_bus import keys
    from hitl_bus.engine.runs import create_flow_run
    from hitl_bus.engine.states import StateType

    proxy = await ReplyLosingProxy(redis_server.port).start()
    try:
        start_worker(HITL_BUS_REDIS_URL=proxy.url)
        await registered("record/default")
        await workers_alive(1)
        queue = keys.deployment_queue("record/default")
        proxy.arm(b"XREADGROUP", carrying=queue.encode())
        while proxy.armed:  # the worker's next read of that queue has gone on to Redis
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # and blocks there
        run = await create_flow_run(
            "record", {"tag": "cut"}, state=State(type=StateType.SCHEDULED),
            deployment="record/default", enqueue=True,
        )  # fmt: skip
        await wait_state(run.id, lambda s: s.is_completed())  # type: ignore[attr-defined]
        assert any(b"run_id" in reply for reply in proxy.lost)  # the entry's reply was cut
        await asyncio.sleep(1.5)  # past another take-back round: it ran once
        assert len(await get_bus().client.lrange("test:ran:cut", 0, -1)) == 1
        assert (await get_bus().client.xpending(queue, keys.WORKERS_GROUP))["pending"] == 0
    finally:
        await proxy.aclose()


async def test_a_run_begun_by_a_final_state_whose_reply_is_cut_off_runs_once(
    start_worker: StartWorker, redis_server: RedisServer
) -> None:
    """A worker's final state takes the next queue entry and begins its run in one step.
    Through a proxy that lets that step reach Redis and cuts the worker's connection
    instead of relaying its reply, the worker never learns of the run it now holds: it
    takes it back once idle past ``dead_after``, and every run completes, each once."""
    from hitl_bus import keys
    from hitl_bus.engine import store
    from hitl_bus.engine.runs import create_flow_run, read_run_record
    from hitl_bus.engine.states import StateType

    proxy = await ReplyLosingProxy(redis_server.port).start()
    try:
        start_worker("tests/worker_flows.py", "--concurrency", "1", HITL_BUS_REDIS_URL=proxy.url)
        await registered("record/default")
        await workers_alive(1)
        queue = keys.deployment_queue("record/default")
        # The worker's first state write is its first run's final state (begins are
        # another script), which takes the second entry and begins its run.
        set_state = await get_bus().client.script_load(store.SCRIPTS["set_state"])
        assert set_state == hashlib.sha1(store.SCRIPTS["set_state"].encode()).hexdigest()
        proxy.arm(b"EVALSHA", carrying=set_state.encode())
        scheduled = State(type=StateType.SCHEDULED)
        runs = [
            await create_flow_run(
                "record",
                {"tag": f"chain-cut-{i}"},
                state=scheduled,
                deployment="record/default",
                enqueue=True,
            )
            for i in range(3)
        ]
        for run in runs:
            await wait_state(run.id, lambda s: s.is_completed())  # type: ignore[attr-defined]
        assert not proxy.armed
        assert any(b"run_id" in reply for reply in proxy.lost)  # the begun entry's reply
        await asyncio.sleep(1.5)  # past another take-back round: each ran once
        for i in range(3):
            assert len(await get_bus().client.lrange(f"test:ran:chain-cut-{i}", 0, -1)) == 1
        attempts = sorted([(await read_run_record(run.id)).attempt for run in runs])
        assert attempts == [1, 1, 2]  # the run begun in the lost step, begun again
        assert (await get_bus().client.xpending(queue, keys.WORKERS_GROUP))["pending"] == 0
    finally:
        await proxy.aclose()


async def test_a_queue_entry_whose_read_reply_was_lost_still_runs(
    start_worker: StartWorker,
) -> None:
    """A cut connection can lose the reply of the worker's XREADGROUP: the entry is then
    pending under a live worker that never saw it. The worker takes it back and the run
    goes on, once."""
    from hitl_bus import keys
    from hitl_bus.engine.runs import create_flow_run
    from hitl_bus.engine.states import StateType

    start_worker()
    await registered("record/default")
    await workers_alive(1)
    [beat] = await get_bus().client.keys(keys.worker("*"))
    worker_id = beat.decode().removeprefix(keys.worker(""))
    run = await create_flow_run(
        "record", {"tag": "lost"}, state=State(type=StateType.SCHEDULED),
        deployment="record/default",
    )  # fmt: skip
    queue = keys.deployment_queue("record/default")
    # Queued and delivered to the worker in one step, as if the read's reply were lost:
    # the worker's own blocked read never sees it.
    delivered = await get_bus().client.eval(
        "redis.call('XADD', KEYS[1], '*', 'run_id', ARGV[1]) "
        "return redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', 1, "
        "'STREAMS', KEYS[1], '>')",
        1, queue, str(run.id), keys.WORKERS_GROUP, worker_id,
    )  # fmt: skip
    assert delivered
    await wait_state(run.id, lambda s: s.is_completed())  # type: ignore[attr-defined]
    assert await get_bus().client.lrange("test:ran:lost", 0, -1) != []
    await asyncio.sleep(1.5)  # past another take-back round: it ran once
    assert len(await get_bus().client.lrange("test:ran:lost", 0, -1)) == 1
    assert (await get_bus().client.xpending(queue, keys.WORKERS_GROUP))["pending"] == 0
