"""Browser tests: the UI served by a real uvicorn, driven in headless Chromium.

Debian's ``chromium`` drives the pages through Playwright's async API. Without
it these tests are skipped, except in CI (``CI=true``), where they must run.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn

from hitl_bus.web import create_app

TOKEN = "browser-s3cret"
CHROMIUM = os.environ.get("HITL_BUS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.browser


def _have_chromium() -> bool:
    return os.path.exists(CHROMIUM)


@pytest.fixture
def web_url(real_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app on a free loopback port, in a thread with its own event loop and bus."""
    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if not _have_chromium():
        if os.environ.get("CI") == "true":
            pytest.fail(f"chromium is not installed at {CHROMIUM} (CI must run browser tests)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            await launched.close()


#: Run in every page before its own scripts (outside the page's CSP): a violation of the
#: Content-Security-Policy, which otherwise only stops a script or style silently, is
#: reported on the console, where the fixtures below collect it.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.effectiveDirective} blocked ${event.blockedURI}`
    + ` at ${event.sourceFile}:${event.lineNumber} (${event.sample})`);
});
"""


@pytest.fixture
async def page(browser: object, web_url: str) -> AsyncIterator[object]:
    """A page logged in with the token (as the link ``hitl-bus dev`` prints does).

    The test fails on any uncaught script error and on any CSP violation.
    """
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    context = await browser.new_context(base_url=web_url)
    context.set_default_timeout(10_000)
    await context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text) if msg.type == "error" and "CSP violation" in msg.text else None
        ),
    )
    await page.goto(f"/login?token={TOKEN}")
    yield page
    await context.close()
    assert not errors, f"errors in the page's scripts: {errors}"
