"""Who may read and who may write.

Two ways in, one token (``HITL_BUS_API_TOKEN``): programs send it as
``Authorization: Bearer <token>``; people log in with it once and get a session.
A session is a random id in an HttpOnly cookie and a record in Redis
(``hitl:session:<id>``) that expires with it; the record holds the session's
CSRF token and a fingerprint of the token it was made with. The cookie carries
nothing derived from the token, so a stolen cookie gives no way to test token
guesses offline; logging out deletes the record, and a new token no longer
matches the fingerprint, so either ends the session at once.

A cookie rides along on any request the browser makes, so writes made with it
must also come from this site: the ``Origin`` (and ``Sec-Fetch-Site``) must say
same-origin and the ``X-CSRF-Token`` header (or a ``csrf_token`` form field)
must match the session's. Bearer requests carry no cookie, so they need no such
proof.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from fastapi import Depends, HTTPException, Request, Response

from hitl_bus import keys
from hitl_bus.bus import get_bus
from hitl_bus.settings import get_settings

COOKIE = "hitl_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
_LONGEST_ID = 128  # a cookie longer than any id we issue names no session


@dataclass(frozen=True)
class Session:
    """A live login: its id (the cookie's value) and its anti-forgery token."""

    id: str
    csrf: str


def token_fingerprint(session_id: str, token: str) -> str:
    """Which token a session was made with, salted by the session (never the token itself)."""
    digest = hmac.new(token.encode(), b"hitl-bus session:" + session_id.encode(), hashlib.sha256)
    return digest.hexdigest()


def token_is_valid(given: str | None) -> bool:
    expected = get_settings().api_token
    if not expected or not given:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


async def current_session(request: Request) -> Session | None:
    """The request's login, read from Redis once per request.

    None without a cookie, when the record expired or was deleted (logout), or when
    it was made with another token than the one configured now (rotation).
    """
    if hasattr(request.state, "hitl_session"):
        cached: Session | None = request.state.hitl_session
        return cached
    session = await _load(request.cookies.get(COOKIE))
    request.state.hitl_session = session
    return session


async def _load(session_id: str | None) -> Session | None:
    token = get_settings().api_token
    if not token or not session_id or len(session_id) > _LONGEST_ID:
        return None
    raw = await get_bus().client.get(keys.session(session_id))
    if raw is None:
        return None
    record = orjson.loads(raw)
    if not secrets.compare_digest(
        str(record.get("login", "")), token_fingerprint(session_id, token)
    ):
        return None
    return Session(session_id, str(record["csrf"]))


async def log_in(request: Request, response: Response) -> None:
    """Start a new session (never reusing the id the browser brought) and set its cookie."""
    settings = get_settings()
    client = get_bus().client
    previous = request.cookies.get(COOKIE)
    if previous and len(previous) <= _LONGEST_ID:
        await client.delete(keys.session(previous))
    session_id = secrets.token_urlsafe(32)
    record = {
        "csrf": secrets.token_urlsafe(32),
        "login": token_fingerprint(session_id, settings.api_token or ""),
    }
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
    """A session made with the token currently configured."""
    return await current_session(request) is not None


async def csrf_token(request: Request) -> str:
    """The session's anti-forgery token (pages put it in a meta tag for scripts); none without."""
    session = await current_session(request)
    return session.csrf if session else ""


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


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


async def can_read(request: Request) -> bool:
    settings = get_settings()
    if settings.public_reads or not settings.api_token:
        return True
    return token_is_valid(_bearer(request)) or await logged_in(request)


async def require_read(request: Request) -> None:
    if not await can_read(request):
        raise HTTPException(401, "log in, or send Authorization: Bearer <token>")


async def require_write(request: Request) -> None:
    """Bearer token, or a session plus same-origin proof; otherwise refused."""
    if not get_settings().api_token:
        raise HTTPException(403, "writes are disabled: set HITL_BUS_API_TOKEN")
    bearer = _bearer(request)
    if bearer is not None:
        if token_is_valid(bearer):
            return
        raise HTTPException(401, "the token is not valid")
    session = await current_session(request)
    if session is None:
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


Read = Depends(require_read)
Write = Depends(require_write)
