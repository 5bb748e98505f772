"""Who may read and who may write, and as whom.

Every request is made by a person (``hitl_bus.people``): the bootstrap admin,
whose token is ``HITL_BUS_API_TOKEN``, or someone added with ``hitl-bus users
add``. Programs send a token as ``Authorization: Bearer <token>``; people log in
with theirs once and get a session. A session is a random id in an HttpOnly
cookie and a record in Redis (``hitl:session:<id>``) that expires with it; the
record holds the session's CSRF token and who logged in: for a person, their
name and the digest of the token they logged in with (checked against theirs on
every request, so a rotated token or a removed person ends the session at once);
for the bootstrap admin, a fingerprint of the token salted by the session. The
cookie carries nothing derived from the token, so a stolen cookie gives no way
to test token guesses offline; logging out deletes the record.

A cookie rides along on any request the browser makes, so writes made with it
must also come from this site: the ``Origin`` (and ``Sec-Fetch-Site``) must say
same-origin and the ``X-CSRF-Token`` header (or a ``csrf_token`` form field)
must match the session's. Bearer requests carry no cookie, so they need no such
proof. Then the person's role must allow the action (``people.roles``): a
refusal is a 403 whose ``detail`` says why in plain words.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from fastapi import Depends, HTTPException, Request, Response

from hitl_bus import keys
from hitl_bus.bus import get_bus
from hitl_bus.people.roles import Action, allows, refusal
from hitl_bus.people.store import (
    BOOTSTRAP_ADMIN,
    Person,
    bootstrap_admin,
    person_for_token,
    person_with_digest,
    token_digest,
)
from hitl_bus.settings import get_settings

COOKIE = "hitl_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
_LONGEST_ID = 128  # a cookie longer than any id we issue names no session


@dataclass(frozen=True)
class Session:
    """A live login: its id (the cookie's value), its anti-forgery token and who it is."""

    id: str
    csrf: str
    person: Person


def token_fingerprint(session_id: str, token: str) -> str:
    """Which token a session was made with, salted by the session (never the token itself)."""
    digest = hmac.new(token.encode(), b"hitl-bus session:" + session_id.encode(), hashlib.sha256)
    return digest.hexdigest()


def token_is_valid(given: str | None) -> bool:
    """Whether ``given`` is the bootstrap token, ``HITL_BUS_API_TOKEN``."""
    expected = get_settings().api_token
    if not expected or not given:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


async def current_session(request: Request) -> Session | None:
    """The request's login, read from Redis once per request.

    None without a cookie, when the record expired or was deleted (logout), when the
    person was removed or their token rotated, or when the bootstrap admin's session
    was made with another token than the one configured now.
    """
    if hasattr(request.state, "hitl_session"):
        cached: Session | None = request.state.hitl_session
        return cached
    session = await _load(request.cookies.get(COOKIE))
    request.state.hitl_session = session
    return session


async def _load(session_id: str | None) -> Session | None:
    if not session_id or len(session_id) > _LONGEST_ID:
        return None
    raw = await get_bus().client.get(keys.session(session_id))
    if raw is None:
        return None
    record = orjson.loads(raw)
    person: Person | None
    if "person" in record:
        person = await person_with_digest(str(record["person"]), str(record.get("digest", "")))
        if person is not None and person.name == BOOTSTRAP_ADMIN:
            person = None  # the bootstrap admin's sessions are checked by fingerprint only
    else:
        token = get_settings().api_token
        fingerprint = token_fingerprint(session_id, token) if token else ""
        valid = bool(token) and secrets.compare_digest(str(record.get("login", "")), fingerprint)
        person = bootstrap_admin() if valid else None
    return Session(session_id, str(record["csrf"]), person) if person is not None else None


async def log_in(request: Request, response: Response, token: str) -> Person | None:
    """Start a new session for the owner of ``token`` (never reusing the id the browser
    brought) and set its cookie; None, and nothing stored, when the token is nobody's."""
    person = await person_for_token(token)
    if person is None:
        return None
    settings = get_settings()
    client = get_bus().client
    previous = request.cookies.get(COOKIE)
    if previous and len(previous) <= _LONGEST_ID:
        await client.delete(keys.session(previous))
    session_id = secrets.token_urlsafe(32)
    record: dict[str, str] = {"csrf": secrets.token_urlsafe(32)}
    if token_is_valid(token):
        record["login"] = token_fingerprint(session_id, token)
    else:  # a person's token is 32 random bytes: its plain digest gives nothing away
        record.update(person=person.name, digest=token_digest(token))
    await client.set(keys.session(session_id), orjson.dumps(record), ex=settings.session_max_age)
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=settings.session_max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.session_https_only,
    )
    return person


async def log_out(request: Request, response: Response) -> None:
    """End the session: its record goes, so the cookie is worthless even if kept."""
    session_id = request.cookies.get(COOKIE)
    if session_id and len(session_id) <= _LONGEST_ID:
        await get_bus().client.delete(keys.session(session_id))
    response.delete_cookie(
        COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=get_settings().session_https_only,
    )


async def logged_in(request: Request) -> bool:
    """A session whose person and token are still current."""
    return await current_session(request) is not None


async def csrf_token(request: Request) -> str:
    """The session's anti-forgery token (pages put it in a meta tag for scripts); none without."""
    session = await current_session(request)
    return session.csrf if session else ""


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


async def _bearer_person(request: Request) -> Person | None:
    """The owner of the request's Bearer token (looked up once per request)."""
    if not hasattr(request.state, "hitl_bearer"):
        bearer = _bearer(request)
        request.state.hitl_bearer = await person_for_token(bearer) if bearer else None
    found: Person | None = request.state.hitl_bearer
    return found


async def current_person(request: Request) -> Person | None:
    """Who makes the request: the Bearer token's owner, else the session's; or nobody."""
    if _bearer(request) is not None:
        return await _bearer_person(request)
    session = await current_session(request)
    return session.person if session else None


def same_origin(request: Request) -> bool:
    """The browser says the request comes from a page of this site (or says nothing)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:  # some same-origin requests omit it; the CSRF token must still match
        return True
    parts = urlsplit(origin)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)


def reads_open() -> bool:
    """Reads need no one: ``HITL_BUS_PUBLIC_READS``, or no bootstrap token configured."""
    settings = get_settings()
    return settings.public_reads or not settings.api_token


async def can_read(request: Request) -> bool:
    return reads_open() or await current_person(request) is not None


async def require_read(request: Request) -> None:
    if not await can_read(request):
        raise HTTPException(401, "log in, or send Authorization: Bearer <token>")


async def require_write(request: Request) -> Person:
    """Bearer token, or a session plus same-origin proof; otherwise refused (401/403)."""
    configured = bool(get_settings().api_token)
    bearer = _bearer(request)
    if bearer is not None:
        person = await _bearer_person(request)
        if person is not None:
            return person
        if not configured:
            raise HTTPException(403, "writes are disabled: set HITL_BUS_API_TOKEN")
        raise HTTPException(401, "the token is not valid")
    session = await current_session(request)
    if session is None:
        if not configured:
            raise HTTPException(403, "writes are disabled: set HITL_BUS_API_TOKEN")
        raise HTTPException(401, "a valid token is required (log in, or Authorization: Bearer)")
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        given = str((await request.form()).get(CSRF_FIELD) or "")
    if (
        not same_origin(request)
        or not given
        or not secrets.compare_digest(given.encode(), session.csrf.encode())
    ):
        raise HTTPException(403, "cross-site request refused: reload the page and try again")
    return session.person


def may(action: Action) -> Callable[[Request], Awaitable[Person]]:
    """A dependency: the person making a write, when their role allows ``action`` (else 403
    with the plain reason)."""

    async def check(request: Request) -> Person:
        person = await require_write(request)
        if not allows(person.role, action):
            raise HTTPException(403, refusal(person.name, person.role, action))
        return person

    return check


Read = Depends(require_read)
Write = Depends(require_write)
Answerer = Depends(may(Action.ANSWER))
Operator = Depends(may(Action.OPERATE))
PeopleAdmin = Depends(may(Action.MANAGE_PEOPLE))
