"""The web app for tests: its token, a client of the app with reads closed, logging in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from hitl_bus.web import create_app

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def app(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a token and reads closed: everything needs a login."""
    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def log_in(app: httpx.AsyncClient) -> str:
    """Log in with the ``?token=`` link; the session id the cookie holds."""
    login = await app.get("/login", params={"token": TOKEN})
    assert login.status_code == 303
    return app.cookies["hitl_session"]
