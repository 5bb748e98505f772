"""Starting many receivers at once: their first checks share pipelines, a waiting receiver
leaves the first read to the dispatcher, and still nothing is lost or delivered twice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from hitl_bus import keys as key_names
from hitl_bus import receive_input, send_input
from hitl_bus.bus import get_bus
from hitl_bus.bus.bells import STREAMS_PER_READ, _xread_groups
from hitl_bus.errors import FlowRunNotFound
from tests.helpers import eventually, new_run

pytestmark = [pytest.mark.usefixtures("bus_url"), pytest.mark.also_on_cluster]


async def _parked(n: int) -> None:
    dispatcher = get_bus().dispatcher

    async def settled() -> bool:
        return dispatcher.waiting() == n and dispatcher.settled()

    await eventually(settled, timeout=30)


async def test_inputs_sent_before_and_while_receivers_start_arrive_once_each() -> None:
    runs = [await new_run() for _ in range(60)]
    for run in runs[::2]:  # waiting in the stream before any receiver exists
        await send_input("early", flow_run_id=run.id)
    receivers = [receive_input(str, flow_run_id=run.id, timeout=None) for run in runs]
    firsts = [asyncio.create_task(r.next()) for r in receivers]
    for run in runs[1::2]:  # while the receivers register
        await send_input("late", flow_run_id=run.id)
    async with asyncio.timeout(20):
        got = await asyncio.gather(*firsts)
    assert got == ["early", "late"] * 30
    seconds = [asyncio.create_task(r.next()) for r in receivers]
    await _parked(len(runs))
    assert not any(task.done() for task in seconds), "an input was delivered twice"
    for i, run in enumerate(runs):
        await send_input(f"v{i}", flow_run_id=run.id)
    async with asyncio.timeout(20):
        assert await asyncio.gather(*seconds) == [f"v{i}" for i in range(len(runs))]


async def test_a_missing_run_fails_only_its_own_receiver() -> None:
    runs = [await new_run() for _ in range(5)]
    missing = str(uuid.uuid4())
    targets: list[Any] = [*(run.id for run in runs[:2]), missing, *(run.id for run in runs[2:])]
    tasks = [
        asyncio.create_task(receive_input(int, flow_run_id=target, timeout=None).next())
        for target in targets
    ]
    async with asyncio.timeout(10):
        with pytest.raises(FlowRunNotFound):
            await tasks[2]
    await _parked(len(runs))
    for i, run in enumerate(runs):
        await send_input(i, flow_run_id=run.id)
    others = tasks[:2] + tasks[3:]
    async with asyncio.timeout(10):
        assert await asyncio.gather(*others) == list(range(len(runs)))


async def test_a_receiver_given_up_while_starting_leaves_the_others_waiting() -> None:
    runs = [await new_run() for _ in range(3)]
    tasks = [
        asyncio.create_task(receive_input(str, flow_run_id=run.id, timeout=None).next())
        for run in runs
    ]
    await asyncio.sleep(0)  # each has queued its first check; none is sent yet
    tasks[1].cancel()
    await _parked(2)
    await send_input("a", flow_run_id=runs[0].id)
    await send_input("c", flow_run_id=runs[2].id)
    async with asyncio.timeout(10):
        assert await tasks[0] == "a"
        assert await tasks[2] == "c"
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]


async def test_taking_what_is_there_without_waiting_still_reads_it() -> None:
    run = await new_run()
    await send_input("there", flow_run_id=run.id)
    assert [v async for v in receive_input(str, flow_run_id=run.id, timeout=0)] == ["there"]
    receiver = receive_input(str, flow_run_id=run.id, timeout=None)
    assert [record.value for record in await receiver.filter_for_inputs()] == ['{"value":"there"}']


def test_bells_read_many_rung_streams_in_few_xreads_one_slot_each_on_cluster() -> None:
    streams = {f"hitl:{{run-{i % 3}}}:input:s{i}": (0, i) for i in range(9)}
    assert _xread_groups(streams, cluster=False) == [
        {stream: f"0-{i}" for i, stream in enumerate(streams)}
    ]
    by_tag = _xread_groups(streams, cluster=True)
    assert sorted(len(group) for group in by_tag) == [3, 3, 3]
    assert all(len({key_names.hash_tag(s) for s in group}) == 1 for group in by_tag)
    many = {f"s{i}": (1, 0) for i in range(STREAMS_PER_READ + 1)}
    assert [len(group) for group in _xread_groups(many, cluster=False)] == [STREAMS_PER_READ, 1]
