"""Worker processes against a real redis-server: deployments, sharing, crashes, drains."""

from __future__ import annotations

import asyncio
import signal

import pytest

from hitl_bus import get_client, receive_input, resume_flow_run, run_deployment, send_input
from hitl_bus import keys as key_names
from hitl_bus.bus import get_bus
from hitl_bus.errors import DeploymentNotFound, ParameterMismatch
from tests.helpers import eventually
from tests.workers import StartWorker, registered, state_of, wait_state, workers_alive

pytestmark = pytest.mark.realredis


async def test_the_seed_chat_across_two_processes(start_worker: StartWorker) -> None:
    start_worker("workers.chat")
    await registered("greeter/send-receive")
    run = await run_deployment("greeter/send-receive", timeout=0)
    assert run.state.is_scheduled()
    replies = receive_input(str, timeout=15)
    await send_input("Ada", flow_run_id=run.id)
    assert await replies.next() == "Hello, Ada!"
    await send_input("__EXIT__", flow_run_id=run.id)
    await wait_state(run.id, lambda s: s.is_completed())  # type: ignore[attr-defined]


async def test_two_workers_share_a_deployment_and_start_each_run_once(
    start_worker: StartWorker,
) -> None:
    start_worker()
    start_worker()
    await registered("record/default")
    await workers_alive(2)
    runs = [await run_deployment("record/default", {"tag": "share"}, timeout=0) for _ in range(20)]
    for run in runs:
        await wait_state(run.id, lambda s: s.is_completed())  # type: ignore[attr-defined]
    ran = [x.decode() for x in await get_bus().client.lrange("test:ran:share", 0, -1)]
    run_ids = sorted(r.split(":")[0] for r in ran)
    assert run_ids == sorted(str(r.id) for r in runs)  # each exactly once
    assert len({r.split(":")[1] for r in ran}) == 2  # both workers took some


async def test_run_deployment_waits_for_the_final_state(start_worker: StartWorker) -> None:
    start_worker()
    await registered("slow/default")
    run = await run_deployment("slow/default")  # timeout=None: until final
    assert run.state.is_completed()
    partial = await run_deployment("slow/default", {"seconds": 5.0}, timeout=0.3)
    assert partial.state.is_running()


async def test_bad_names_and_parameters_queue_nothing(start_worker: StartWorker) -> None:
    start_worker()
    await registered("record/default")
    with pytest.raises(DeploymentNotFound):
        await run_deployment("nobody/here", timeout=0)
    with pytest.raises(DeploymentNotFound, match="not a deployment name"):
        await run_deployment("no-slash", timeout=0)
    with pytest.raises(ParameterMismatch, match="missing required parameter"):
        await run_deployment("record/default", {}, timeout=0)
    with pytest.raises(ParameterMismatch, match="unknown parameter"):
        await run_deployment("record/default", {"tag": "x", "extra": 1}, timeout=0)
    assert await get_client().read_flow_runs() == []
    queue = key_names.deployment_queue("record/default")
    assert await get_bus().client.xlen(queue) == 0


async def test_a_killed_worker_s_run_is_crashed_or_retried(start_worker: StartWorker) -> None:
    doomed = start_worker()
    await registered("slow/default", "slow/retry")
    crash = await run_deployment("slow/default", {"seconds": 30.0, "tag": "crash"}, timeout=0)
    retry = await run_deployment("slow/retry", {"seconds": 0.5, "tag": "retry"}, timeout=0)
    # A retried run must be mid-flight when the worker dies: give it a long first attempt.
    await wait_state(crash.id, lambda s: s.is_running())  # type: ignore[attr-defined]
    await wait_state(retry.id, lambda s: s.is_running())  # type: ignore[attr-defined]
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    start_worker()  # the survivor notices the dead heartbeat and claims
    await wait_state(crash.id, lambda s: s.is_crashed(), timeout=30)  # type: ignore[attr-defined]
    await wait_state(retry.id, lambda s: s.is_completed(), timeout=30)  # type: ignore[attr-defined]
    finished = await get_bus().client.lrange("test:finished:retry", 0, -1)
    assert len(finished) == 1


async def test_a_paused_run_of_a_live_worker_is_never_claimed(start_worker: StartWorker) -> None:
    start_worker()
    start_worker()
    await registered("asks/default")
    run = await run_deployment("asks/default", {"tag": "live"}, timeout=0)
    await wait_state(run.id, lambda s: s.is_paused())  # type: ignore[attr-defined]
    await asyncio.sleep(3.0)  # three times the dead-after: both workers kept beating
    state = await state_of(run.id)
    assert state.is_paused() and not state.is_suspended()  # type: ignore[attr-defined]
    await resume_flow_run(run.id, {"value": 5})
    await wait_state(run.id, lambda s: s.is_completed())  # type: ignore[attr-defined]
    assert len(await get_bus().client.lrange("test:task:live", 0, -1)) == 1  # woke in place


async def test_a_paused_run_on_a_killed_worker_turns_suspended_and_resumes_elsewhere(
    start_worker: StartWorker,
) -> None:
    doomed = start_worker()
    await registered("asks/default")
    run = await run_deployment("asks/default", {"tag": "moved"}, timeout=0)
    await wait_state(run.id, lambda s: s.is_paused())  # type: ignore[attr-defined]
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    start_worker()
    await wait_state(run.id, lambda s: s.is_suspended(), timeout=30)  # type: ignore[attr-defined]
    await resume_flow_run(run.id, {"value": 9})
    await wait_state(run.id, lambda s: s.is_completed(), timeout=30)  # type: ignore[attr-defined]
    assert len(await get_bus().client.lrange("test:task:moved", 0, -1)) == 1  # task reused
    resumed_by = await get_bus().client.lrange("test:resumed:moved", 0, -1)
    assert len(resumed_by) == 1
    assert resumed_by[0].decode().split(":")[1] != str(doomed.pid)


async def test_suspend_in_one_worker_resume_in_another(start_worker: StartWorker) -> None:
    first = start_worker()
    await registered("suspends/default")
    run = await run_deployment("suspends/default", {"tag": "hop"}, timeout=0)
    await wait_state(run.id, lambda s: s.is_suspended())  # type: ignore[attr-defined]
    first.send_signal(signal.SIGTERM)
    assert first.wait(20) == 0
    start_worker()
    await resume_flow_run(run.id, {"value": 41})
    final = await run_deployment_result(run.id)
    assert final.is_completed()  # type: ignore[attr-defined]
    assert len(await get_bus().client.lrange("test:task:hop", 0, -1)) == 1


async def run_deployment_result(run_id: object) -> object:
    await wait_state(run_id, lambda s: s.is_final(), timeout=30)  # type: ignore[attr-defined]
    return await state_of(run_id)


async def test_sigterm_drains_running_runs(start_worker: StartWorker) -> None:
    worker = start_worker()
    await registered("slow/default")
    run = await run_deployment("slow/default", {"seconds": 1.0, "tag": "drain"}, timeout=0)
    await wait_state(run.id, lambda s: s.is_running())  # type: ignore[attr-defined]
    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 20) == 0
    assert (await state_of(run.id)).is_completed()  # type: ignore[attr-defined]
    assert await get_bus().client.keys(key_names.worker("*")) == []  # heartbeat removed


async def test_sigterm_hands_back_runs_that_outlast_the_grace(start_worker: StartWorker) -> None:
    worker = start_worker("tests/worker_flows.py", "--grace", "0.3")
    await registered("slow/default")
    run = await run_deployment("slow/default", {"seconds": 2.0, "tag": "handback"}, timeout=0)
    await wait_state(run.id, lambda s: s.is_running())  # type: ignore[attr-defined]
    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 20) == 0
    assert (await state_of(run.id)).is_scheduled()  # type: ignore[attr-defined]
    start_worker()  # another worker picks the handed-back run up
    await wait_state(run.id, lambda s: s.is_completed(), timeout=30)  # type: ignore[attr-defined]
    assert len(await get_bus().client.lrange("test:started:handback", 0, -1)) == 2


async def test_cancel_on_a_worker(start_worker: StartWorker) -> None:
    queued = await _queue_without_worker()
    assert (await get_client().cancel_flow_run(queued)).is_cancelled()
    start_worker()
    await registered("slow/default")
    run = await run_deployment("slow/default", {"seconds": 30.0, "tag": "cancel"}, timeout=0)
    await wait_state(run.id, lambda s: s.is_running())  # type: ignore[attr-defined]
    await get_client().cancel_flow_run(run.id)
    await wait_state(run.id, lambda s: s.is_cancelled())  # type: ignore[attr-defined]
    assert await get_bus().client.lrange("test:finished:cancel", 0, -1) == []
    await asyncio.sleep(0.5)  # the queued-then-cancelled run was never started
    assert await get_bus().client.lrange("test:started:never", 0, -1) == []


async def _queue_without_worker() -> str:
    """A run queued on slow/default before any worker runs (registered by hand)."""
    from hitl_bus.deployments.registry import register
    from tests.worker_flows import slow_default

    await register(slow_default)
    run = await run_deployment("slow/default", {"seconds": 0.1, "tag": "never"}, timeout=0)
    return str(run.id)


async def test_sync_flows_run_on_workers_too(start_worker: StartWorker) -> None:
    start_worker()
    await registered("sync-double/default")
    run = await run_deployment("sync-double/default", {"x": 21})
    assert run.state.is_completed()
    logs = await get_client().read_logs(run.id)
    assert logs[0]["message"] == "doubling 21"
    by_deployment = await get_client().read_flow_runs(deployment="sync-double/default")
    assert [r.id for r in by_deployment] == [run.id]


async def test_a_worker_recovers_from_a_flushed_redis(start_worker: StartWorker) -> None:
    start_worker()
    await registered("record/default")
    await get_bus().client.flushall()
    await registered("record/default")  # registered again by the worker's upkeep
    run = await run_deployment("record/default", {"tag": "flushed"}, timeout=20)
    assert run.state.is_completed()


async def test_acknowledged_queue_entries_are_trimmed(start_worker: StartWorker) -> None:
    start_worker()
    await registered("record/default")
    runs = [await run_deployment("record/default", {"tag": "trim"}, timeout=0) for _ in range(5)]
    for run in runs:
        await wait_state(run.id, lambda s: s.is_completed())  # type: ignore[attr-defined]
    queue = key_names.deployment_queue("record/default")

    async def trimmed() -> bool:
        return await get_bus().client.xlen(queue) == 0

    await eventually(trimmed, timeout=10)  # the next upkeep trims what every worker acked
    waiting = await run_deployment("record/default", {"tag": "trim"}, timeout=0)
    await wait_state(waiting.id, lambda s: s.is_completed())  # type: ignore[attr-defined]
