"""Roles, what each allows, and who an assignee names.

Four roles, each allowing what the one below it does and more: a viewer reads; a
responder also answers pauses and sends input; an operator also starts and cancels
runs; an admin also manages people. A pause's assignees are people's names and
``role:<x>`` entries, where ``x`` is a role (that role or any above it) or a team
a person was added to (``users add --team finance``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

#: Prefix of the sender and actor name of a person: ``hitl.user.<name>``.
USER_PREFIX = "hitl.user."
ROLE_PREFIX = "role:"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class Role(StrEnum):
    VIEWER = "viewer"
    RESPONDER = "responder"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {role: rank for rank, role in enumerate(Role)}


class Action(StrEnum):
    """A kind of request, and the least role that may make it."""

    READ = "read"
    ANSWER = "answer"  # resume a pause, send input
    OPERATE = "operate"  # start and cancel runs
    MANAGE_PEOPLE = "manage people"
    CONFIGURE = "configure the notifier"

    @property
    def least_role(self) -> Role:
        return _LEAST[self]


_LEAST = {
    Action.READ: Role.VIEWER,
    Action.ANSWER: Role.RESPONDER,
    Action.OPERATE: Role.OPERATOR,
    Action.MANAGE_PEOPLE: Role.ADMIN,
    Action.CONFIGURE: Role.ADMIN,
}


def allows(role: Role, action: Action) -> bool:
    return role.rank >= action.least_role.rank


def refusal(name: str, role: Role, action: Action) -> str:
    """The plain reason a request is refused: who, what they are, what it needs."""
    needed = action.least_role.value
    article = "an" if role.value[0] in "aeiou" else "a"
    return (
        f"{name} is {article} {role.value}; to {action.value} you need the {needed} role or above"
    )


def check_name(name: str, what: str = "name") -> str:
    """A person's (or team's) name: lowercase letters, digits, ``.``, ``_``, ``-``; ≤ 64."""
    if not _NAME_RE.match(name):
        raise ValueError(
            f"{what} {name!r} must be 1 to 64 lowercase letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def actor_name(person: str) -> str:
    """The actor (and input sender) name of a person: ``hitl.user.<name>``."""
    return USER_PREFIX + person


def person_of(actor: str | None) -> str | None:
    """The person an actor name points to, or None when it is a run, an inbox or nobody."""
    if actor and actor.startswith(USER_PREFIX):
        return actor[len(USER_PREFIX) :]
    return None


def check_assignees(assignees: Iterable[str]) -> list[str]:
    """Assignees as given, each checked: a person's name or ``role:<role or team>``."""
    checked: list[str] = []
    for entry in assignees:
        if not isinstance(entry, str):
            raise TypeError(f"an assignee is a name or 'role:<x>', not {entry!r}")
        if entry.startswith(ROLE_PREFIX):
            check_name(entry[len(ROLE_PREFIX) :], "role or team")
        else:
            check_name(entry, "assignee")
        checked.append(entry)
    return checked


def is_assignee(
    name: str, role: Role, teams: Iterable[str], assignees: Iterable[str] | None
) -> bool:
    """Whether a person may answer a pause with these assignees (none: any responder).

    Answering needs the responder role whatever the list says; the list narrows who
    of those may.
    """
    if not allows(role, Action.ANSWER):
        return False
    listed = list(assignees or ())
    if not listed:
        return True
    team_set = set(teams)
    for entry in listed:
        if not entry.startswith(ROLE_PREFIX):
            if entry == name:
                return True
            continue
        wanted = entry[len(ROLE_PREFIX) :]
        if wanted in _ROLE_NAMES:
            if role.rank >= Role(wanted).rank:
                return True
        elif wanted in team_set:
            return True
    return False


_ROLE_NAMES = {role.value for role in Role}
