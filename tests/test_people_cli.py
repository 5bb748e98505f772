"""People on the command line: ``hitl-bus users``, and write commands acting as the person
whose token is in ``HITL_BUS_TOKEN`` (or ``--token``), refused when their role does not
allow it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from hitl_bus import flow, get_client, pause_flow_run
from hitl_bus.cli import app
from hitl_bus.context import acting_as
from hitl_bus.deployments import register
from hitl_bus.engine import create_flow_run
from hitl_bus.engine.states import State, StateType
from hitl_bus.errors import NotAllowed
from hitl_bus.people.roles import Role
from hitl_bus.people.store import add_person, list_people, person_for_token
from tests import worker_flows
from tests.helpers import shirt_order_for, start_paused
from tests.models import ShirtOrder

pytestmark = pytest.mark.usefixtures("real_redis_url")
runner = CliRunner()
ORDER = json.dumps({"size": "large", "color": "red"})


@flow(name="cli-shirt")
async def shirt() -> str:
    order = await pause_flow_run(wait_for_input=ShirtOrder, timeout=120)
    return order.color


async def test_users_add_ls_token_and_rm() -> None:
    added = runner.invoke(
        app, ["users", "add", "grace", "--role", "responder", "--email", "g@example.com",
              "--team", "finance", "--team", "ops"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    token = added.stdout.strip()
    assert token.startswith("hbu_") and "shown only once" in added.stderr
    assert (await person_for_token(token)).name == "grace"  # type: ignore[union-attr]
    again = runner.invoke(app, ["users", "add", "grace", "--role", "viewer"])
    assert again.exit_code == 1 and "exists already" in again.stderr
    bad = runner.invoke(app, ["users", "add", "Not A Name", "--role", "viewer"])
    assert bad.exit_code == 1 and "lowercase" in bad.stderr
    wrong_role = runner.invoke(app, ["users", "add", "ada", "--role", "boss"])
    assert wrong_role.exit_code == 2

    listed = runner.invoke(app, ["users", "ls"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.split() == ["grace", "responder", "g@example.com", "finance,ops"]
    assert token not in listed.output

    rotated = runner.invoke(app, ["users", "token", "grace"])
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip()
    assert new != token and "shown only once" in rotated.stderr
    assert await person_for_token(token) is None
    assert (await person_for_token(new)).name == "grace"  # type: ignore[union-attr]

    removed = runner.invoke(app, ["users", "rm", "grace"])
    assert removed.exit_code == 0 and await list_people() == []
    assert await person_for_token(new) is None
    missing = runner.invoke(app, ["users", "rm", "grace"])
    assert missing.exit_code == 1 and "no person named 'grace'" in missing.stderr


async def test_managing_people_with_a_token_needs_an_admin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, linus = await add_person("linus", Role.OPERATOR)
    _, root = await add_person("root", Role.ADMIN)
    monkeypatch.setenv("HITL_BUS_TOKEN", linus)
    refused = runner.invoke(app, ["users", "add", "ada", "--role", "viewer"])
    assert refused.exit_code == 3
    assert refused.stderr.strip() == (
        "refused: linus is an operator; to manage people you need the admin role or above"
    )
    assert runner.invoke(app, ["users", "ls"]).exit_code == 3
    ok = runner.invoke(app, ["users", "add", "ada", "--role", "viewer", "--token", root])
    assert ok.exit_code == 0, ok.output
    monkeypatch.setenv("HITL_BUS_API_TOKEN", "bootstrap")  # the bootstrap admin may too
    monkeypatch.setenv("HITL_BUS_TOKEN", "bootstrap")
    assert runner.invoke(app, ["users", "rm", "ada"]).exit_code == 0
    monkeypatch.setenv("HITL_BUS_TOKEN", "hbu_nobodys")
    nobody = runner.invoke(app, ["users", "ls"])
    assert nobody.exit_code == 3 and "is not anyone's" in nobody.stderr


async def test_a_viewer_is_refused_every_write(monkeypatch: pytest.MonkeyPatch) -> None:
    _, ada = await add_person("ada", Role.VIEWER)
    run_id = await start_paused(shirt)
    await register(worker_flows.record_default)
    monkeypatch.setenv("HITL_BUS_TOKEN", ada)
    resume = runner.invoke(app, ["runs", "resume", run_id, ORDER])
    assert resume.exit_code == 3
    assert resume.stderr.strip() == (
        "refused: ada is a viewer; to answer you need the responder role or above"
    )
    send = runner.invoke(app, ["runs", "send", run_id, "hello"])
    assert send.exit_code == 3 and "to answer you need" in send.stderr
    cancel = runner.invoke(app, ["runs", "cancel", run_id])
    assert cancel.exit_code == 3 and "to operate you need the operator role" in cancel.stderr
    start = runner.invoke(app, ["deploy", "run", "record/default", "tag=x"])
    assert start.exit_code == 3 and "to operate you need" in start.stderr
    assert (await get_client().read_flow_run(run_id)).state.is_paused()  # nothing changed
    shown = runner.invoke(app, ["runs", "ls"])  # reading needs no role
    assert shown.exit_code == 0 and run_id in shown.stdout


async def test_a_responder_answers_as_themselves_and_an_operator_cancels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, grace = await add_person("grace", Role.RESPONDER)
    _, linus = await add_person("linus", Role.OPERATOR)
    run_id = await start_paused(shirt)
    monkeypatch.setenv("HITL_BUS_TOKEN", grace)
    assert runner.invoke(app, ["runs", "cancel", run_id]).exit_code == 3
    resumed = runner.invoke(app, ["runs", "resume", run_id, ORDER])
    assert resumed.exit_code == 0, resumed.output
    assert (await get_client().wait_for_flow_run(run_id, timeout=10)).state.is_completed()

    target = await create_flow_run("inbox", state=State(type=StateType.RUNNING))
    sent = runner.invoke(app, ["runs", "send", str(target.id), "hello"])
    assert sent.exit_code == 0, sent.output
    inputs = await get_client().read_inputs(target.id)
    assert [i["sender"] for i in inputs] == ["hitl.user.grace"]

    cancelled = runner.invoke(app, ["runs", "cancel", str(target.id), "--token", linus])
    assert cancelled.exit_code == 0, cancelled.output


async def test_commands_act_as_the_person_or_the_local_operator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, grace = await add_person("grace", Role.RESPONDER)
    seen: list[str | None] = []

    async def resume(run_id: Any, run_input: Any) -> None:
        seen.append(acting_as())

    monkeypatch.setattr("hitl_bus.engine.resuming.aresume_flow_run", resume)
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    assert runner.invoke(app, ["runs", "resume", str(run.id), "--token", grace]).exit_code == 0
    assert runner.invoke(app, ["runs", "resume", str(run.id)]).exit_code == 0  # no token
    assert seen == ["hitl.user.grace", None]


async def test_a_refusal_by_the_pause_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(run_id: Any, run_input: Any) -> None:
        raise NotAllowed("this pause is for linus; grace may not answer it")

    monkeypatch.setattr("hitl_bus.engine.resuming.aresume_flow_run", refuse)
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    refused = runner.invoke(app, ["runs", "resume", str(run.id)])
    assert refused.exit_code == 3
    assert refused.stderr.strip() == "refused: this pause is for linus; grace may not answer it"


async def test_runs_ls_waiting_for_me(
    monkeypatch: pytest.MonkeyPatch, admin: aioredis.Redis
) -> None:
    _, grace = await add_person("grace", Role.RESPONDER)
    _, bob = await add_person("bob", Role.RESPONDER, teams=["finance"])
    for_finance = await start_paused(shirt_order_for(["role:finance"]))
    for_anyone = await start_paused(shirt)
    no_token = runner.invoke(app, ["runs", "ls", "--waiting-for-me"])
    assert no_token.exit_code == 3 and "HITL_BUS_TOKEN" in no_token.stderr
    monkeypatch.setenv("HITL_BUS_TOKEN", grace)
    mine = runner.invoke(app, ["runs", "ls", "--waiting-for-me"])
    assert mine.exit_code == 0, mine.output
    assert for_anyone in mine.stdout and for_finance not in mine.stdout
    bobs = runner.invoke(app, ["runs", "ls", "--waiting-for-me", "--token", bob])
    assert for_anyone in bobs.stdout and for_finance in bobs.stdout
