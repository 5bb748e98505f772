"""People, roles, assignees and answer links: the store under every identity check."""

from __future__ import annotations

import asyncio

import pytest

from hitl_bus import keys
from hitl_bus.bus import get_bus
from hitl_bus.people import links
from hitl_bus.people.roles import Action, Role, allows, check_assignees, is_assignee, refusal
from hitl_bus.people.store import (
    BOOTSTRAP_ADMIN,
    PersonExists,
    PersonNotFound,
    add_person,
    get_person,
    list_people,
    person_for_token,
    remove_person,
    rotate_token,
)

pytestmark = [pytest.mark.usefixtures("bus_url"), pytest.mark.also_on_cluster]


def test_each_role_allows_what_the_one_below_does_and_more() -> None:
    assert allows(Role.VIEWER, Action.READ)
    assert not allows(Role.VIEWER, Action.ANSWER)
    assert allows(Role.RESPONDER, Action.ANSWER)
    assert not allows(Role.RESPONDER, Action.OPERATE)
    assert allows(Role.OPERATOR, Action.OPERATE)
    assert not allows(Role.OPERATOR, Action.MANAGE_PEOPLE)
    assert allows(Role.ADMIN, Action.MANAGE_PEOPLE)
    assert refusal("ada", Role.VIEWER, Action.ANSWER) == (
        "ada is a viewer; to answer you need the responder role or above"
    )


def test_assignees_name_people_roles_and_teams() -> None:
    assert is_assignee("grace", Role.RESPONDER, [], None)
    assert not is_assignee("grace", Role.VIEWER, [], None)
    listed = ["grace", "role:finance"]
    assert is_assignee("grace", Role.RESPONDER, [], listed)
    assert is_assignee("ada", Role.RESPONDER, ["finance"], listed)
    assert not is_assignee("ada", Role.RESPONDER, ["sales"], listed)
    assert not is_assignee("grace", Role.VIEWER, [], listed)  # named, but may not answer
    assert is_assignee("ops", Role.ADMIN, [], ["role:operator"])
    assert not is_assignee("ada", Role.RESPONDER, [], ["role:operator"])
    with pytest.raises(ValueError, match="role or team"):
        check_assignees(["role:Finance Team"])
    with pytest.raises(ValueError, match="assignee"):
        check_assignees([""])


async def test_a_token_is_shown_once_and_finds_its_person() -> None:
    person, token = await add_person("grace", Role.RESPONDER, email="g@example.com", teams=["fin"])
    assert token not in person.model_dump_json()
    found = await person_for_token(token)
    assert found is not None and found.name == "grace" and found.teams == ["fin"]
    assert await person_for_token(token + "x") is None
    assert [p.name for p in await list_people()] == ["grace"]
    with pytest.raises(PersonExists):
        await add_person("grace", Role.VIEWER)
    with pytest.raises(PersonExists):
        await add_person(BOOTSTRAP_ADMIN, Role.VIEWER)
    with pytest.raises(ValueError, match="email"):
        await add_person("ada", Role.VIEWER, email="not an address")


async def test_rotating_or_removing_ends_the_old_token(monkeypatch: pytest.MonkeyPatch) -> None:
    _, old = await add_person("grace", Role.OPERATOR)
    new = await rotate_token("grace")
    assert await person_for_token(old) is None
    assert (await person_for_token(new)) is not None
    await remove_person("grace")
    assert await person_for_token(new) is None
    with pytest.raises(PersonNotFound):
        await get_person("grace")
    monkeypatch.setenv("HITL_BUS_API_TOKEN", "bootstrap-token")
    admin = await person_for_token("bootstrap-token")
    assert admin is not None and admin.name == BOOTSTRAP_ADMIN and admin.role is Role.ADMIN


async def test_an_answer_link_works_once_and_only_for_its_pause() -> None:
    link = links.AnswerLink("run-1", "1", "grace")
    token = await links.mint(link, 60)
    assert await links.peek(token) == link
    assert await links.peek(token) == link  # looking does not use it
    link_id, _, signature = token.partition(".")
    assert await links.peek(f"{link_id}.{'0' * len(signature)}") is None
    results = await asyncio.gather(links.use(token), links.use(token))
    assert sorted(results, key=lambda r: r is None) == [link, None]
    assert await links.peek(token) is None
    assert await links.use("garbage") is None


async def test_adding_a_person_is_one_step_and_a_retried_add_is_no_refusal() -> None:
    from hitl_bus.people import store

    person, token = await add_person("ada", Role.RESPONDER)
    assert (await person_for_token(token)).name == "ada"
    # The same script again, as a retry after a lost reply would send it: no refusal, and
    # nothing written twice.
    again = await get_bus().eval(
        store._ADD,
        [keys.PEOPLE, keys.PEOPLE_TOKENS],
        ["ada", person.model_dump_json(), person.token_digest],
    )
    assert again == 1
    with pytest.raises(PersonExists):
        await add_person("ada", Role.VIEWER)
