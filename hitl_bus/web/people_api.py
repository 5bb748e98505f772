"""People through the HTTP API: list, add and remove them (an admin's writes).

The same store as ``hitl-bus users``: a new person's token is in the answer once
and never again; listings carry no token or digest.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, field_validator

from hitl_bus.context import acting
from hitl_bus.people.roles import Role, check_name
from hitl_bus.people.store import (
    Person,
    PersonExists,
    PersonInfo,
    PersonNotFound,
    add_person,
    list_people,
    remove_person,
)
from hitl_bus.web.api import _errors, _request_body, json_body
from hitl_bus.web.auth import PeopleAdmin, Read

router = APIRouter(prefix="/api", dependencies=[Read])


class NewPerson(BaseModel):
    name: str = Field(description="Lowercase letters, digits, '.', '_', '-'; at most 64.")
    role: Role
    email: str | None = Field(default=None, max_length=254)
    teams: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return check_name(name)

    @field_validator("teams")
    @classmethod
    def _teams(cls, teams: list[str]) -> list[str]:
        return [check_name(team, "team") for team in teams]


@router.get("/people", responses=_errors(403))
async def read_people(admin: Annotated[Person, PeopleAdmin]) -> list[PersonInfo]:
    """Everyone added (an admin's read: it holds their addresses)."""
    return [person.info() for person in await list_people()]


@router.post(
    "/people",
    responses=_errors(403, 409, 413, 415, 422),
    openapi_extra=_request_body(NewPerson),
)
async def create_person(
    admin: Annotated[Person, PeopleAdmin], body: Annotated[NewPerson, json_body(NewPerson)]
) -> dict[str, Any]:
    """Add a person; the answer holds their token, which is never shown again."""
    try:
        with acting(admin.actor):
            person, token = await add_person(
                body.name, body.role, email=body.email, teams=body.teams
            )
    except PersonExists as exc:
        raise HTTPException(409, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"person": person.info().model_dump(mode="json"), "token": token}


@router.delete("/people/{name}", responses=_errors(403, 404, 409, 422))
async def delete_person(admin: Annotated[Person, PeopleAdmin], name: str) -> dict[str, str]:
    """Remove a person: their token and sessions stop working at once."""
    try:
        with acting(admin.actor):
            await remove_person(name)
    except PersonNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:  # the bootstrap admin is a setting, not a stored person
        raise HTTPException(409, str(exc)) from None
    return {"removed": name}
