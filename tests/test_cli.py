"""The ``hitl-bus`` command line (runs ls / cancel, worker errors)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from typer.testing import CliRunner

from hitl_bus.cli import app
from hitl_bus.engine import create_flow_run
from hitl_bus.engine.states import State, StateType

runner = CliRunner()


@pytest.mark.usefixtures("real_redis_url")
async def test_runs_ls_and_cancel() -> None:
    run = await create_flow_run("listed", state=State(type=StateType.SCHEDULED))
    listed = runner.invoke(app, ["runs", "ls"])
    assert listed.exit_code == 0, listed.output
    assert str(run.id) in listed.output and "Scheduled" in listed.output
    cancelled = runner.invoke(app, ["runs", "cancel", str(run.id)])
    assert cancelled.exit_code == 0, cancelled.output
    assert "Cancelled" in cancelled.output
    only = runner.invoke(app, ["runs", "ls", "--state", "cancelled"])
    assert str(run.id) in only.output
    missing = runner.invoke(app, ["runs", "cancel", str(uuid.uuid4())])
    assert missing.exit_code == 1


def test_worker_needs_deployments(tmp_path: object) -> None:
    result = runner.invoke(app, ["worker", "hitl_bus.errors"])
    assert result.exit_code != 0
    assert "defines no deployments" in result.output


@pytest.mark.usefixtures("real_redis_url")
async def test_runs_show_resume_send_and_logs() -> None:
    from hitl_bus import flow, get_client, get_run_logger, pause_flow_run, start_flow_run
    from tests.helpers import eventually
    from tests.models import ShirtOrder

    @flow
    async def cli_shirt() -> str:
        described = ShirtOrder.with_initial_data(description="Pick a shirt", size="medium")
        order = await pause_flow_run(wait_for_input=described, timeout=60)
        get_run_logger().info("got %s %s", order.size, order.color)
        return order.color

    run = await start_flow_run(cli_shirt)

    async def paused() -> bool:
        return (await get_client().read_flow_run(run.id)).state.is_paused()

    await eventually(paused)
    shown = runner.invoke(app, ["runs", "show", str(run.id)])
    assert shown.exit_code == 0, shown.output
    assert "pause pause-1" in shown.output and "Pick a shirt" in shown.output
    assert "size: " in shown.output and "= 'medium'" in shown.output
    bad = runner.invoke(app, ["runs", "resume", str(run.id), "size=huge"])
    assert bad.exit_code == 2
    assert "color" in bad.output and "size" in bad.output
    ok = runner.invoke(app, ["runs", "resume", str(run.id), '{"size": "large", "color": "red"}'])
    assert ok.exit_code == 0, ok.output
    await get_client().wait_for_flow_run(run.id, timeout=10)
    logs = await asyncio.to_thread(runner.invoke, app, ["runs", "logs", str(run.id), "--follow"])
    assert "got large red" in logs.output
    target = await create_flow_run("inbox", state=State(type=StateType.RUNNING))
    sent = runner.invoke(app, ["runs", "send", str(target.id), "hello"])
    assert sent.exit_code == 0, sent.output
    obj = runner.invoke(app, ["runs", "send", str(target.id), "size=small", "color=red"])
    assert obj.exit_code != 0 and "--key-prefix" in obj.output
    obj = runner.invoke(
        app,
        [
            "runs",
            "send",
            str(target.id),
            "size=small",
            "color=red",
            "--key-prefix",
            "shirtorder-auto",
        ],
    )
    assert obj.exit_code == 0, obj.output
    from hitl_bus import receive_input

    assert await receive_input(str, flow_run_id=target.id, timeout=1).next() == "hello"
    got = await receive_input(ShirtOrder, flow_run_id=target.id, timeout=1).next()
    assert got.size == "small"


@pytest.mark.usefixtures("real_redis_url")
def test_deploy_run_errors() -> None:
    missing = runner.invoke(app, ["deploy", "run", "nobody/here"])
    assert missing.exit_code == 1 and "no deployment" in missing.output
