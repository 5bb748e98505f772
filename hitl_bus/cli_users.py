"""``hitl-bus users``: people and their tokens; and who a CLI command acts as.

A write command (``runs resume/send/cancel``, ``deploy run``, ``users ...``) acts
as the person whose token is given with ``--token`` or ``HITL_BUS_TOKEN``: their
role must allow it, or the command is refused (exit code 3) with the plain
reason. With no token it acts as the machine's local operator, with every right:
whoever can reach Redis can write anyway, so the CLI asks nothing more of them.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer

from hitl_bus.people.roles import Action, Role

T = TypeVar("T")

#: The exit code of a command the acting person's role (or a pause's assignees) refuses.
REFUSED = 3

TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Act as the person with this token (default: HITL_BUS_TOKEN; "
        "neither: the local operator, with every right).",
        show_default=False,
    ),
]


class Refused(Exception):
    """The token is nobody's, or its person's role does not allow the command."""


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


async def actor_for(token: str | None, action: Action) -> str | None:
    """Who a command acts as (``hitl.user.<name>``), or None for the local operator.

    :raises Refused: the token is nobody's, or their role does not allow ``action``.
    """
    from hitl_bus.people.roles import allows, refusal
    from hitl_bus.people.store import person_for_token
    from hitl_bus.settings import get_settings

    token = token or get_settings().token
    if not token:
        return None
    person = await person_for_token(token)
    if person is None:
        raise Refused(
            "the token (--token or HITL_BUS_TOKEN) is not anyone's: it was rotated, or its "
            "person removed; ask an admin for a new one (hitl-bus users token NAME)"
        )
    if not allows(person.role, action):
        raise Refused(refusal(person.name, person.role, action))
    return person.actor


async def me(token: str | None) -> Any:
    """The person a token belongs to (for ``--waiting-for-me``).

    :raises Refused: no token given, or it is nobody's.
    """
    from hitl_bus.people.store import person_for_token
    from hitl_bus.settings import get_settings

    token = token or get_settings().token
    if not token:
        raise Refused("say who you are: --token, or set HITL_BUS_TOKEN to your token")
    person = await person_for_token(token)
    if person is None:
        raise Refused("the token (--token or HITL_BUS_TOKEN) is not anyone's")
    return person


def run_as(token: str | None, action: Action, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` as the token's person (refused: exit 3 with the reason)."""
    from hitl_bus._sync import run_blocking
    from hitl_bus.context import acting
    from hitl_bus.errors import NotAllowed

    async def main() -> T:
        try:
            actor = await actor_for(token, action)
        except BaseException:
            work.close()
            raise
        with acting(actor):
            return await work

    try:
        return run_blocking(main())
    except (Refused, NotAllowed) as exc:
        raise _fail(f"refused: {exc}", REFUSED) from None


users_app = typer.Typer(
    help="People, their roles and tokens (an admin's, when a token is given).",
    no_args_is_help=True,
)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, '.', '_', '-'.")],
    role: Annotated[Role, typer.Option(help="What they may do.", case_sensitive=False)],
    email: Annotated[str | None, typer.Option(help="Where notifications go.")] = None,
    team: Annotated[
        list[str] | None,
        typer.Option(help="A team (pauses may be assigned to role:<team>); repeatable."),
    ] = None,
    token: TokenOption = None,
) -> None:
    """Add a person; prints their token, which is shown only this once."""
    from hitl_bus.people.store import PersonExists, add_person

    try:
        person, secret = run_as(
            token, Action.MANAGE_PEOPLE, add_person(name, role, email=email, teams=team or ())
        )
    except (PersonExists, ValueError) as exc:
        raise _fail(str(exc)) from None
    shown = f"added {person.name} ({person.role.value}); their token, shown only once:"
    typer.echo(shown, err=True)
    typer.echo(secret)


@users_app.command("ls")
def users_ls(token: TokenOption = None) -> None:
    """List people: name, role, email and teams (never tokens)."""
    from hitl_bus.people.store import list_people

    people = run_as(token, Action.MANAGE_PEOPLE, list_people())
    if not people:
        typer.echo("no people yet: hitl-bus users add NAME --role ROLE", err=True)
    for person in people:
        teams = ",".join(person.teams) or "-"
        typer.echo(f"{person.name:<20} {person.role.value:<10} {person.email or '-':<30} {teams}")


@users_app.command("rm")
def users_rm(
    name: Annotated[str, typer.Argument(help="The person to remove.")],
    token: TokenOption = None,
) -> None:
    """Remove a person: their token and their sessions stop working at once."""
    from hitl_bus.people.store import PersonNotFound, remove_person

    try:
        run_as(token, Action.MANAGE_PEOPLE, remove_person(name))
    except (PersonNotFound, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"removed {name}")


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="Whose token to replace.")],
    token: TokenOption = None,
) -> None:
    """Give a person a new token (printed once); the old one and its sessions stop at once."""
    from hitl_bus.people.store import PersonNotFound, rotate_token

    try:
        secret = run_as(token, Action.MANAGE_PEOPLE, rotate_token(name))
    except (PersonNotFound, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"new token for {name}, shown only once (the old one no longer works):", err=True)
    typer.echo(secret)
