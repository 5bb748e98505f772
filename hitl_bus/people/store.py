"""The people who may use the UI, the API and the CLI, stored in Redis.

A person has a name, a role, an optional email and teams. Their token is random,
shown once when made (or rotated) and stored only as its SHA-256: a token is
32 random bytes, so a plain digest is as strong as a slow hash here and lets the
lookup be one ``HGET``. Rotating replaces the digest, so the old token (and every
session made with it, which records the digest it was made with) stops at once.
``HITL_BUS_API_TOKEN`` is the bootstrap admin, named ``admin``, never stored.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from hitl_bus import keys
from hitl_bus.bus import get_bus
from hitl_bus.errors import HitlBusError, ObjectNotFound
from hitl_bus.people.roles import Role, check_name
from hitl_bus.settings import get_settings

#: The name the bootstrap token (``HITL_BUS_API_TOKEN``) acts as.
BOOTSTRAP_ADMIN = "admin"
_TOKEN_PREFIX = "hbu_"


class PersonNotFound(ObjectNotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no person named {name!r}")
        self.name = name


class PersonExists(HitlBusError, ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a person named {name!r} exists already")
        self.name = name


class PersonInfo(BaseModel):
    """Who someone is to hitl_bus, as others may see it (never anything of their token)."""

    name: str
    role: Role
    email: str | None = None
    teams: list[str] = Field(default_factory=list)
    created: datetime


class Person(PersonInfo):
    """A person as stored: ``token_digest`` says which token is theirs now."""

    token_digest: str = ""

    def info(self) -> PersonInfo:
        return PersonInfo.model_validate(self.model_dump(exclude={"token_digest"}))

    @property
    def actor(self) -> str:
        return f"hitl.user.{self.name}"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return _TOKEN_PREFIX + secrets.token_urlsafe(32)


def bootstrap_admin() -> Person:
    """The person ``HITL_BUS_API_TOKEN`` stands for."""
    token = get_settings().api_token or ""
    return Person(
        name=BOOTSTRAP_ADMIN,
        role=Role.ADMIN,
        created=datetime.fromtimestamp(0, UTC),
        token_digest=token_digest(token) if token else "",
    )


async def add_person(
    name: str, role: Role, *, email: str | None = None, teams: Sequence[str] = ()
) -> tuple[Person, str]:
    """Create a person; returns them and their token (shown once, stored as a digest).

    :raises PersonExists: the name is taken (``admin`` is always taken).
    :raises ValueError: the name, a team or the email is malformed.
    """
    check_name(name)
    for team in teams:
        check_name(team, "team")
    if email is not None and ("@" not in email or any(c.isspace() for c in email)):
        raise ValueError(f"email {email!r} is not an address")
    if name == BOOTSTRAP_ADMIN:
        raise PersonExists(name)
    token = new_token()
    person = Person(
        name=name,
        role=role,
        email=email,
        teams=sorted(set(teams)),
        created=datetime.now(UTC),
        token_digest=token_digest(token),
    )
    added = await get_bus().eval(
        _ADD,
        [keys.PEOPLE, keys.PEOPLE_TOKENS],
        [name, person.model_dump_json(), person.token_digest],
    )
    if not added:
        raise PersonExists(name)
    return person, token


#: A person and their token's index entry, both or neither (one slot: the ``{people}`` tag),
#: so a crash between the two never leaves a person whose token finds no one. A name taken
#: by this very call (its token's digest), retried after a lost reply, is no refusal.
_ADD = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  local stored = cjson.decode(redis.call('HGET', KEYS[1], ARGV[1]))
  if stored['token_digest'] == ARGV[3] then return 1 end
  return 0
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
return 1
"""


async def get_person(name: str) -> Person:
    """:raises PersonNotFound: no such person."""
    if name == BOOTSTRAP_ADMIN:
        return bootstrap_admin()
    raw = await get_bus().client.hget(keys.PEOPLE, name)
    if raw is None:
        raise PersonNotFound(name)
    return Person.model_validate_json(raw)


async def list_people() -> list[Person]:
    """Everyone stored, by name (the bootstrap admin is not stored and not listed)."""
    raw = await get_bus().client.hgetall(keys.PEOPLE)
    people = [Person.model_validate_json(value) for value in raw.values()]
    return sorted(people, key=lambda person: person.name)


async def remove_person(name: str) -> None:
    """Remove a person; their token and sessions stop working at once.

    :raises PersonNotFound: no such person.
    """
    person = await get_person(name)
    if name == BOOTSTRAP_ADMIN:
        raise ValueError("the bootstrap admin is HITL_BUS_API_TOKEN: unset it instead")
    async with get_bus().client.pipeline(transaction=True) as pipe:
        pipe.hdel(keys.PEOPLE, name)
        pipe.hdel(keys.PEOPLE_TOKENS, person.token_digest)
        await pipe.execute()


async def rotate_token(name: str) -> str:
    """Give a person a new token; the old one and its sessions stop working at once.

    :raises PersonNotFound: no such person.
    """
    if name == BOOTSTRAP_ADMIN:
        raise ValueError("the bootstrap admin's token is HITL_BUS_API_TOKEN: change it there")
    person = await get_person(name)
    token = new_token()
    updated = person.model_copy(update={"token_digest": token_digest(token)})
    async with get_bus().client.pipeline(transaction=True) as pipe:
        pipe.hset(keys.PEOPLE, name, updated.model_dump_json())
        pipe.hdel(keys.PEOPLE_TOKENS, person.token_digest)
        pipe.hset(keys.PEOPLE_TOKENS, updated.token_digest, name)
        await pipe.execute()
    return token


async def person_for_token(token: str | None) -> Person | None:
    """Who a token belongs to now: the bootstrap admin, a stored person, or nobody."""
    if not token:
        return None
    bootstrap = get_settings().api_token
    if bootstrap and secrets.compare_digest(token.encode(), bootstrap.encode()):
        return bootstrap_admin()
    digest = token_digest(token)
    name = await get_bus().client.hget(keys.PEOPLE_TOKENS, digest)
    if name is None:
        return None
    try:
        person = await get_person(name.decode())
    except PersonNotFound:
        return None
    return person if secrets.compare_digest(person.token_digest, digest) else None


async def person_with_digest(name: str, digest: str) -> Person | None:
    """The person ``name`` if their token is still the one with ``digest`` (a session's check)."""
    try:
        person = await get_person(name)
    except PersonNotFound:
        return None
    if not person.token_digest or not secrets.compare_digest(person.token_digest, digest):
        return None
    return person
