"""Who may read and who may write.

Two ways in, one token (``HITL_BUS_API_TOKEN``): programs send it as
``Authorization: Bearer <token>``; people log in with it once and keep a
signed session cookie. A cookie rides along on any request the browser makes,
so writes made with it must also come from this site: the ``Origin`` (and
``Sec-Fetch-Site``) must say same-origin and the ``X-CSRF-Token`` header (or a
``csrf_token`` form field) must match the one kept in the session. Bearer
requests carry no cookie, so they need no such proof.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request

from hitl_bus.settings import Settings, get_settings

SESSION_AUTH = "auth"
SESSION_CSRF = "csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


def session_secret(settings: Settings) -> str:
    """The cookie-signing key: configured, else derived from the token, else random."""
    if settings.session_secret:
        return settings.session_secret
    if settings.api_token:
        digest = hmac.new(settings.api_token.encode(), b"hitl-bus session", hashlib.sha256)
        return digest.hexdigest()
    return secrets.token_hex(32)  # no token: nobody can log in, sessions carry nothing


def token_fingerprint(token: str) -> str:
    """What a session stores to prove its login (never the token itself)."""
    return hashlib.sha256(b"hitl-bus login:" + token.encode()).hexdigest()[:32]


def token_is_valid(given: str | None) -> bool:
    expected = get_settings().api_token
    if not expected or not given:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


def log_in(request: Request) -> None:
    token = get_settings().api_token or ""
    request.session[SESSION_AUTH] = token_fingerprint(token)
    request.session[SESSION_CSRF] = secrets.token_urlsafe(24)


def log_out(request: Request) -> None:
    request.session.clear()


def logged_in(request: Request) -> bool:
    """A session made with the token currently configured."""
    token = get_settings().api_token
    stamp = request.session.get(SESSION_AUTH)
    return bool(token and stamp) and secrets.compare_digest(
        str(stamp), token_fingerprint(token or "")
    )


def csrf_token(request: Request) -> str:
    """The session's anti-forgery token (pages put it in a meta tag for scripts)."""
    token = request.session.get(SESSION_CSRF)
    if not token:
        token = request.session[SESSION_CSRF] = secrets.token_urlsafe(24)
    return str(token)


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


def can_read(request: Request) -> bool:
    settings = get_settings()
    if settings.public_reads or not settings.api_token:
        return True
    return token_is_valid(_bearer(request)) or logged_in(request)


async def require_read(request: Request) -> None:
    if not can_read(request):
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
    if not logged_in(request):
        raise HTTPException(401, "a valid token is required (log in, or Authorization: Bearer)")
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        given = str((await request.form()).get(CSRF_FIELD) or "")
    expected = request.session.get(SESSION_CSRF) or ""
    if not same_origin(request) or not given or not secrets.compare_digest(given, expected):
        raise HTTPException(403, "cross-site request refused: reload the page and try again")


Read = Depends(require_read)
Write = Depends(require_write)
