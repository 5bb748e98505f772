"""People in the web server: roles on every write, sessions that end with the token, who
is signed in, "waiting for me", and single-use answer links."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from hitl_bus import flow, get_client, pause_flow_run
from hitl_bus import keys as key_names
from hitl_bus.context import acting_as
from hitl_bus.deployments.registry import register
from hitl_bus.engine import create_flow_run
from hitl_bus.engine.states import State, StateType
from hitl_bus.errors import NotAllowed
from hitl_bus.people import links
from hitl_bus.people.roles import Role
from hitl_bus.people.store import add_person, remove_person, rotate_token
from hitl_bus.web import answer_url, create_app
from tests.helpers import shirt_order_for, start_paused
from tests.models import ShirtOrder
from tests.web import TOKEN

pytestmark = pytest.mark.usefixtures("real_redis_url")


@pytest.fixture
async def web(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a bootstrap token and reads closed."""
    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def person(name: str, role: Role, teams: tuple[str, ...] = ()) -> dict[str, str]:
    """A new person's Bearer header."""
    _, token = await add_person(name, role, teams=teams)
    return bearer(token)


@flow(name="shirt-order")
async def shirt() -> str:
    order = await pause_flow_run(
        wait_for_input=ShirtOrder.with_initial_data(description="Pick **one**"), timeout=120
    )
    return f"{order.size} {order.color}"


ORDER = {"input": {"size": "large", "color": "red"}}


async def state_of(run_id: str) -> StateType:
    return (await get_client().read_flow_run(run_id)).state.type


# --- roles on writes -------------------------------------------------------------------------


async def test_a_viewer_reads_but_may_not_answer(web: httpx.AsyncClient) -> None:
    ada = await person("ada", Role.VIEWER)
    run_id = await start_paused(shirt)
    assert (await web.get("/api/runs", headers=ada)).status_code == 200
    assert (await web.get(f"/api/runs/{run_id}", headers=ada)).status_code == 200
    refused = await web.post(f"/api/runs/{run_id}/resume", json=ORDER, headers=ada)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "ada is a viewer; to answer you need the responder role or above"
    )
    sent = await web.post(f"/api/runs/{run_id}/input", json={"value": "hi"}, headers=ada)
    assert sent.status_code == 403
    assert await state_of(run_id) == StateType.PAUSED  # nothing changed
    assert (await web.get("/api/runs", headers=bearer("hbu_made-up"))).status_code == 401
    assert (await web.get("/api/runs")).status_code == 401


async def test_a_responder_answers_and_sends_but_may_not_cancel_or_start(
    web: httpx.AsyncClient,
) -> None:
    grace = await person("grace", Role.RESPONDER)
    run_id = await start_paused(shirt)
    cancel = await web.post(f"/api/runs/{run_id}/cancel", headers=grace)
    assert cancel.status_code == 403
    assert cancel.json()["detail"] == (
        "grace is a responder; to operate you need the operator role or above"
    )

    @flow(name="tidy")
    async def tidy() -> None:
        return None

    await register(tidy.to_deployment("nightly"))
    start = await web.post("/api/deployments/tidy/nightly/runs", json={}, headers=grace)
    assert start.status_code == 403 and "operator role" in start.json()["detail"]
    ok = await web.post(f"/api/runs/{run_id}/resume", json=ORDER, headers=grace)
    assert ok.status_code == 200, ok.text
    receiving = await create_flow_run("inbox", state=State(type=StateType.RUNNING))
    sent = await web.post(f"/api/runs/{receiving.id}/input", json={"value": "hi"}, headers=grace)
    assert sent.status_code == 200, sent.text


async def test_an_operator_cancels_and_starts(web: httpx.AsyncClient) -> None:
    linus = await person("linus", Role.OPERATOR)

    @flow(name="tidy")
    async def tidy() -> None:
        return None

    await register(tidy.to_deployment("nightly"))
    start = await web.post("/api/deployments/tidy/nightly/runs", json={}, headers=linus)
    assert start.status_code == 200, start.text
    run_id = start.json()["run"]["id"]
    cancel = await web.post(f"/api/runs/{run_id}/cancel", headers=linus)
    assert cancel.status_code == 200, cancel.text


async def test_writes_are_made_as_the_person(
    web: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    grace = await person("grace", Role.RESPONDER)
    seen: list[str | None] = []

    async def resume(run_id: Any, run_input: Any) -> None:
        seen.append(acting_as())

    monkeypatch.setattr("hitl_bus.web.api.aresume_flow_run", resume)
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    assert (await web.post(f"/api/runs/{run.id}/resume", json={}, headers=grace)).is_success
    assert (await web.post(f"/api/runs/{run.id}/resume", json={}, headers=bearer(TOKEN))).is_success
    assert seen == ["hitl.user.grace", "hitl.user.admin"]


async def test_a_refusal_by_the_pause_is_a_403_with_its_reason(
    web: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    grace = await person("grace", Role.RESPONDER)

    async def refuse(run_id: Any, run_input: Any) -> None:
        raise NotAllowed("this pause is for linus; grace may not answer it")

    monkeypatch.setattr("hitl_bus.web.api.aresume_flow_run", refuse)
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    refused = await web.post(f"/api/runs/{run.id}/resume", json={}, headers=grace)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "this pause is for linus; grace may not answer it"


async def test_me_names_the_person(web: httpx.AsyncClient) -> None:
    bob = await person("bob", Role.RESPONDER, teams=("finance",))
    assert (await web.get("/api/me", headers=bob)).json() == {
        "name": "bob",
        "role": "responder",
        "teams": ["finance"],
    }
    admin = (await web.get("/api/me", headers=bearer(TOKEN))).json()
    assert admin["name"] == "admin" and admin["role"] == "admin"
    assert (await web.get("/api/me")).status_code == 401


# --- sessions --------------------------------------------------------------------------------


def csrf(html: str) -> str:
    return html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


async def test_a_person_logs_in_and_the_header_names_them(web: httpx.AsyncClient) -> None:
    _, token = await add_person("grace", Role.RESPONDER)
    login = await web.get("/login", params={"token": token})
    assert login.status_code == 303
    page = await web.get("/")
    assert page.status_code == 200
    assert "Signed in as <strong>grace</strong> · responder" in page.text
    assert '<meta name="can-write" content="yes">' in page.text
    assert '<meta name="can-operate" content="no">' in page.text
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    headers = {"X-CSRF-Token": csrf(page.text), "Origin": "http://test"}
    cancel = await web.post(f"/api/runs/{run.id}/cancel", headers=headers)
    assert cancel.status_code == 403 and "operator role" in cancel.json()["detail"]
    assert (await web.get("/api/me")).json()["name"] == "grace"


async def test_rotating_a_token_ends_the_live_session_at_once(
    web: httpx.AsyncClient, admin: aioredis.Redis
) -> None:
    _, token = await add_person("grace", Role.RESPONDER)
    assert (await web.get("/login", params={"token": token})).status_code == 303
    session_id = web.cookies["hitl_session"]
    record = await admin.get(key_names.session(session_id))
    assert record is not None and token.encode() not in record
    assert (await web.get("/api/runs")).status_code == 200
    new = await rotate_token("grace")
    assert (await web.get("/api/runs")).status_code == 401
    assert (await web.get("/login", params={"token": token})).status_code == 401  # old: dead
    assert (await web.get("/login", params={"token": new})).status_code == 303
    assert (await web.get("/api/runs")).status_code == 200
    await remove_person("grace")
    assert (await web.get("/api/runs")).status_code == 401
    assert (await web.get("/api/runs", headers=bearer(new))).status_code == 401


async def test_people_log_in_without_a_bootstrap_token(
    web: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HITL_BUS_API_TOKEN")
    linus = await person("linus", Role.OPERATOR)
    run = await create_flow_run("x", state=State(type=StateType.RUNNING))
    assert (await web.post(f"/api/runs/{run.id}/cancel", headers=linus)).status_code == 200
    assert (await web.post(f"/api/runs/{run.id}/cancel")).status_code == 403  # nobody


# --- waiting for me --------------------------------------------------------------------------


async def test_waiting_for_me_lists_the_pauses_a_person_may_answer(
    web: httpx.AsyncClient, admin: aioredis.Redis
) -> None:
    grace = await person("grace", Role.RESPONDER)
    bob = await person("bob", Role.RESPONDER, teams=("finance",))
    ada = await person("ada", Role.VIEWER)
    linus = await person("linus", Role.OPERATOR)
    for_grace = await start_paused(shirt_order_for(["grace"]))
    for_finance = await start_paused(shirt_order_for(["role:finance"]))
    for_anyone = await start_paused(shirt)
    for_operators = await start_paused(shirt_order_for(["role:operator"]))
    running = await create_flow_run("busy", state=State(type=StateType.RUNNING))

    async def mine(headers: dict[str, str]) -> set[str]:
        answer = await web.get("/api/runs", params={"waiting_for": "me"}, headers=headers)
        assert answer.status_code == 200, answer.text
        return {run["id"] for run in answer.json()}

    assert await mine(grace) == {for_grace, for_anyone}
    assert await mine(bob) == {for_finance, for_anyone}
    assert await mine(ada) == set()
    assert await mine(linus) == {for_anyone, for_operators}
    assert str(running.id) not in await mine(bearer(TOKEN))
    assert (
        await web.get("/api/runs", params={"waiting_for": "you"}, headers=grace)
    ).status_code == 422


async def test_waiting_for_me_needs_to_know_who_asks(
    web: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HITL_BUS_PUBLIC_READS", "1")
    assert (await web.get("/api/runs")).status_code == 200
    assert (await web.get("/api/runs", params={"waiting_for": "me"})).status_code == 401


# --- answer links ----------------------------------------------------------------------------


async def mint(run_id: str, assignee: str = "grace") -> str:
    pause = await get_client().read_pause(run_id)
    assert pause is not None
    return await links.mint(links.AnswerLink(run_id, pause.pause_key, assignee), 600)


async def test_an_answer_link_opens_its_form_and_answers_once(
    web: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_person("grace", Role.RESPONDER)
    run_id = await start_paused(shirt)
    token = await mint(run_id)
    monkeypatch.setenv("HITL_BUS_PUBLIC_URL", "https://hitl.example.com/")
    assert answer_url(token) == f"https://hitl.example.com/answer/{token}"
    page = await web.get(f"/answer/{token}")
    assert page.status_code == 200 and "answer.js" in page.text
    assert "set-cookie" not in page.headers and 'href="/docs"' not in page.text
    form = await web.get(f"/api/answer/{token}")
    assert form.status_code == 200
    shown = form.json()
    assert shown["run"]["id"] == run_id and shown["assignee"] == "grace"
    assert "<strong>one</strong>" in shown["pause"]["description_html"]
    assert shown["pause"]["schema"]["properties"]["size"]["enum"][0] == "small"

    url = f"/api/answer/{token}"
    bad = await web.post(url, json={"input": {"size": "huge"}})
    assert bad.status_code == 422 and {"size", "color"} <= {
        e["loc"][0] for e in bad.json()["errors"]
    }
    cross = await web.post(url, json=ORDER, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403
    assert (await web.get(f"/api/answer/{token}")).status_code == 200  # still usable

    ok = await web.post(url, json=ORDER, headers={"Origin": "http://test"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["answered_by"] == "grace"
    done = await get_client().wait_for_flow_run(run_id, timeout=10)
    assert done.state.is_completed()

    again = await web.post(url, json=ORDER)
    assert again.status_code == 410
    assert again.json()["detail"] == "This link was already used, or it has expired."
    gone = await web.get(f"/answer/{token}")
    assert gone.status_code == 410 and "This link was already used, or it has expired." in gone.text
    assert (await web.get(f"/api/answer/{token}")).status_code == 410


async def test_an_answer_link_is_made_as_its_assignee(
    web: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await start_paused(shirt)
    token = await mint(run_id, "linus")
    seen: list[str | None] = []

    async def resume(run_id: Any, run_input: Any) -> None:
        seen.append(acting_as())

    monkeypatch.setattr("hitl_bus.web.answer.aresume_flow_run", resume)
    assert (await web.post(f"/api/answer/{token}", json=ORDER)).status_code == 200
    assert seen == ["hitl.user.linus"]


async def test_an_answer_link_allows_nothing_else(web: httpx.AsyncClient) -> None:
    run_id = await start_paused(shirt)
    other = await start_paused(shirt)
    token = await mint(run_id)
    link = bearer(token)
    assert (
        await web.post(f"/api/runs/{other}/resume", json=ORDER, headers=link)
    ).status_code == 401
    assert (
        await web.post(f"/api/runs/{run_id}/resume", json=ORDER, headers=link)
    ).status_code == 401
    assert (await web.get(f"/api/runs/{other}", headers=link)).status_code == 401
    assert (await web.get("/api/runs", headers=link)).status_code == 401
    assert (await web.get("/", headers=link)).status_code == 303  # to the login page
    # A made-up token, or one whose signature is changed, opens nothing.
    link_id, _, signature = token.partition(".")
    forged = f"{link_id}.{'0' * len(signature)}"
    for made_up in (forged, "nothing", f"{uuid.uuid4()}.abc"):
        assert (await web.post(f"/api/answer/{made_up}", json=ORDER)).status_code == 410
    assert await state_of(run_id) == StateType.PAUSED and await state_of(other) == StateType.PAUSED


async def test_an_answer_link_ends_with_its_pause(web: httpx.AsyncClient) -> None:
    run_id = await start_paused(shirt)
    token = await mint(run_id)
    stale = await links.mint(links.AnswerLink(run_id, "another-pause", "grace"), 600)
    assert (await web.post(f"/api/answer/{stale}", json=ORDER)).status_code == 410
    assert (
        await web.post(f"/api/runs/{run_id}/resume", json=ORDER, headers=bearer(TOKEN))
    ).is_success
    await get_client().wait_for_flow_run(run_id, timeout=10)
    late = await web.post(f"/api/answer/{token}", json=ORDER)
    assert late.status_code == 410 and "already used, or it has expired" in late.json()["detail"]


# --- people ----------------------------------------------------------------------------------


async def test_an_admin_manages_people_through_the_api(web: httpx.AsyncClient) -> None:
    root = await person("root", Role.ADMIN)
    linus = await person("linus", Role.OPERATOR)
    new = {"name": "grace", "role": "responder", "email": "g@example.com", "teams": ["finance"]}
    refused = await web.post("/api/people", json=new, headers=linus)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "linus is an operator; to manage people you need the admin role or above"
    )
    assert (await web.get("/api/people", headers=linus)).status_code == 403
    made = await web.post("/api/people", json=new, headers=root)
    assert made.status_code == 200, made.text
    token = made.json()["token"]
    assert made.json()["person"]["teams"] == ["finance"]
    me = await web.get("/api/me", headers=bearer(token))
    assert me.json() == {"name": "grace", "role": "responder", "teams": ["finance"]}
    listed = (await web.get("/api/people", headers=bearer(TOKEN))).json()
    assert [p["name"] for p in listed] == ["grace", "linus", "root"]
    assert token not in str(listed) and "token_digest" not in listed[0]
    taken = await web.post("/api/people", json=new, headers=root)
    assert taken.status_code == 409
    bad = await web.post("/api/people", json={**new, "name": "Grace Hopper"}, headers=root)
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["body", "name"]
    assert (await web.delete("/api/people/grace", headers=linus)).status_code == 403
    assert (await web.delete("/api/people/grace", headers=root)).status_code == 200
    assert (await web.get("/api/me", headers=bearer(token))).status_code == 401
    assert (await web.delete("/api/people/grace", headers=root)).status_code == 404
    assert (await web.delete("/api/people/admin", headers=root)).status_code == 409


@flow(name="assigned-order")
async def assigned() -> str:
    order = await pause_flow_run(
        wait_for_input=ShirtOrder, timeout=120, assignees=["grace", "role:finance"]
    )
    return f"{order.size} {order.color}"


async def test_only_the_assignees_may_answer_and_the_run_says_who_did(
    web: httpx.AsyncClient,
) -> None:
    run_id = await start_paused(assigned)
    ada = await person("ada", Role.RESPONDER)
    bob = await person("bob", Role.RESPONDER, teams=("finance",))
    grace = await person("grace", Role.RESPONDER)
    refused = await web.post(f"/api/runs/{run_id}/resume", json=ORDER, headers=ada)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "this pause is assigned to grace and role:finance; ada may not answer it"
    )
    assert (await get_client().read_flow_run(run_id)).state.is_paused()
    mine = await web.get("/api/runs", params={"waiting_for": "me"}, headers=bob)
    assert [r["id"] for r in mine.json()] == [run_id]
    assert (await web.get("/api/runs", params={"waiting_for": "me"}, headers=ada)).json() == []
    answered = await web.post(f"/api/runs/{run_id}/resume", json=ORDER, headers=grace)
    assert answered.status_code == 200
    history = await get_client().read_state_history(run_id)
    assert any(state.state_details.actor == "hitl.user.grace" for state in history)
