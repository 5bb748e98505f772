"""Security headers on every response, and templates the Content-Security-Policy allows."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.web import log_in

pytestmark = pytest.mark.usefixtures("real_redis_url")
TEMPLATES = Path(__file__).resolve().parent.parent / "hitl_bus" / "web" / "templates"


async def test_every_page_asset_and_api_response_carries_the_security_headers(
    app: httpx.AsyncClient,
) -> None:
    await log_in(app)
    for path in (
        "/",
        "/login",
        "/docs",
        "/static/app.css",
        "/static/run.js",
        "/static/built/run.js",
        "/docs/assets/swagger-ui-bundle.js",
        "/api/runs",
        "/openapi.json",
        "/healthz",
        "/api/runs/not-a-uuid",  # an error too
    ):
        response = await app.get(path)
        assert response.status_code < 500, path
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "same-origin", path
        csp = dict(
            (d.split()[0], d.split()[1:]) for d in headers["content-security-policy"].split("; ")
        )
        assert csp["script-src"] == ["'self'"], path
        assert csp["style-src"] == ["'self'"], path
        assert csp["frame-ancestors"] == ["'none'"], path
        assert csp["default-src"] == ["'none'"], path
        assert "'unsafe-inline'" not in headers["content-security-policy"], path


def test_templates_hold_no_inline_script_style_or_handler() -> None:
    for template in TEMPLATES.glob("*.html"):
        html = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, f"{template.name}: inline script {tag}"
        assert "<style" not in html, template.name
        assert not re.search(r"\sstyle=", html), template.name
        assert not re.search(r"\son[a-z]+=", html), template.name
        assert "javascript:" not in html, template.name
        assert not re.search(r"(src|href)=\"(https?:)?//", html), f"{template.name}: off-site"
