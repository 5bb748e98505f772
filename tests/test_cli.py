"""The ``hitl-bus`` command line (runs ls / cancel, worker errors)."""

from __future__ import annotations

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
