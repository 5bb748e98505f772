"""The pages as a person meets them: on a phone and a wide screen, through a Redis outage,
small details of the layout, and the API docs without internet."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Page, Route, expect
from pydantic import BaseModel, Field

from hitl_bus import RunInput, aresume_flow_run, flow, get_client, get_run_logger, pause_flow_run
from hitl_bus.redis_server import RedisServer
from hitl_bus.web import create_app
from tests.browser.conftest import TOKEN
from tests.helpers import start_paused

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1920, "height": 1080}
OUTAGE_TEXT = "The server can't reach its store; your answers are kept. Trying again…"


class Address(BaseModel):
    street: str = Field(title="Street", description="Number and street, as on the door.")
    city: str = Field(title="City")
    postcode: str = Field(title="Postcode", pattern=r"^\d{5}$")


class Order(RunInput):
    recipient: str = Field(title="Recipient", description="Who signs for the parcel.")
    address: Address = Field(title="Ship to", description="Where the parcel goes.")
    quantities: dict[str, int] = Field(
        default_factory=lambda: {"blue-shirt-extra-large": 2}, title="Quantities"
    )
    notes: list[str] = Field(default_factory=lambda: ["leave at the door"], title="Notes")


async def _no_horizontal_scroll(page: Page) -> None:
    sizes = await page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]"
    )
    scroll, inner, body = sizes
    assert scroll <= inner and body <= inner, f"the page scrolls sideways: {sizes}"


async def _wide_elements(page: Page) -> list[str]:
    """Elements whose right edge goes past the window (what makes a page scroll sideways)."""
    found: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll("main *")]
          .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
          .filter((e) => getComputedStyle(e).visibility !== "hidden")
          .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`)"""
    )
    return found


async def _check_fits(page: Page, shots: Path, name: str) -> None:
    await page.screenshot(path=shots / f"{name}.png", full_page=True)
    await _no_horizontal_scroll(page)
    assert await _wide_elements(page) == [], name


async def _order_run() -> str:
    @flow(name="ship-an-order")
    async def ship() -> None:
        order = await pause_flow_run(
            wait_for_input=Order.with_initial_data(
                description="Check the **address** before shipping.", recipient="Ada"
            ),
            timeout=600,
        )
        get_run_logger().info("shipping to %s", order.address.city)

    return await start_paused(ship)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Screenshots of each page at each width, kept with the test's other files."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder


# -- 1. phones and wide screens ------------------------------------------------------------


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["360px", "1920px"])
async def test_every_page_fits_the_screen_on_a_phone_and_a_wide_screen(
    page: Page, shots: Path, size: dict[str, int]
) -> None:
    await page.set_viewport_size(size)
    run_id = await _order_run()
    width = size["width"]

    await page.goto("/")
    card = page.locator(f'[data-run-id="{run_id}"]')
    await expect(card).to_contain_text("Paused")
    await expect(card.locator(".state")).to_be_visible()
    await expect(card.locator(".state")).to_be_in_viewport()
    resume = card.get_by_role("link", name="Resume")
    await expect(resume).to_be_visible()
    await expect(resume).to_be_in_viewport()
    await _check_fits(page, shots, f"runs-{width}")

    await resume.click()
    await expect(page.get_by_label("Recipient")).to_have_value("Ada")
    await expect(page.locator("fieldset.group").first).to_be_visible()
    await page.get_by_role("button", name="Add an entry").click()  # a second, empty row
    await _check_fits(page, shots, f"run-form-{width}")
    button = page.get_by_role("button", name="Resume")
    await button.scroll_into_view_if_needed()
    await expect(button).to_be_in_viewport()

    await page.context.clear_cookies()
    await page.goto("/login")
    await expect(page.get_by_label("Token")).to_be_visible()
    await _check_fits(page, shots, f"login-{width}")


async def test_on_a_phone_the_runs_are_cards_with_their_state_and_resume(
    page: Page, shots: Path
) -> None:
    await page.set_viewport_size(PHONE)
    run_id = await _order_run()
    await page.goto("/")
    card = page.locator(f'[data-run-id="{run_id}"]')
    await expect(card).to_contain_text("ship-an-order")
    box = await card.bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]
    # A card reads top to bottom: the run's name first, then its state and the Resume link.
    name = await card.get_by_role("link", name=await _run_name(run_id)).bounding_box()
    state = await card.locator(".state").bounding_box()
    assert name is not None and state is not None
    assert state["y"] >= name["y"] + name["height"] - 1
    await page.screenshot(path=shots / "runs-cards-360.png", full_page=True)


async def _run_name(run_id: str) -> str:
    return (await get_client().read_flow_run(run_id)).name


# -- 3. small layout details ---------------------------------------------------------------


async def test_the_login_button_stands_apart_from_the_token_box(page: Page) -> None:
    await page.context.clear_cookies()
    await page.goto("/login")
    box = await page.get_by_label("Token").bounding_box()
    button = await page.get_by_role("button", name="Log in").bounding_box()
    assert box is not None and button is not None
    beside = button["x"] - (box["x"] + box["width"])
    below = button["y"] - (box["y"] + box["height"])
    assert beside >= 8 or below >= 8, (box, button)


async def test_an_empty_logs_card_is_small_and_says_so(page: Page) -> None:
    @flow(name="quiet")
    async def quiet() -> None:
        await pause_flow_run(timeout=600)
        get_run_logger().info("going on")

    run_id = await start_paused(quiet)
    await page.set_viewport_size(DESKTOP)
    await page.goto(f"/runs/{run_id}")
    logs = page.locator("#logs")
    await expect(logs).to_contain_text("No logs yet")
    box = await logs.bounding_box()
    assert box is not None and box["height"] < 80, box
    # The Logs card is as tall as what it holds, not stretched to the column beside it.
    card = await page.locator("section.logs-card").bounding_box()
    assert card is not None and card["height"] < 200, card

    await aresume_flow_run(run_id)
    await expect(logs.locator("li")).to_have_count(1)
    await expect(logs).to_contain_text("going on")
    await expect(logs).not_to_contain_text("No logs yet")  # the placeholder makes way


async def test_a_long_log_scrolls_inside_its_card(page: Page) -> None:
    @flow(name="chatty")
    async def chatty() -> None:
        for n in range(120):
            get_run_logger().info("line %d", n)
        await pause_flow_run(timeout=600)

    run_id = await start_paused(chatty)
    await page.goto(f"/runs/{run_id}")
    logs = page.locator("#logs")
    await expect(logs).to_contain_text("line 119")
    box = await logs.bounding_box()
    assert box is not None and 150 < box["height"] <= 0.7 * 1080, box


# -- 4. the API docs offline ---------------------------------------------------------------


async def test_the_api_docs_work_without_internet(page: Page, web_url: str) -> None:
    outside: list[str] = []

    async def only_this_server(route: Route) -> None:
        if route.request.url.startswith(web_url) or route.request.url.startswith("data:"):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await page.context.route("**/*", only_this_server)
    await page.goto("/docs")
    operations = page.locator(".opblock")
    await expect(operations.first).to_be_visible()
    await expect(
        page.locator(".opblock-summary-path", has_text="/api/runs/{run_id}/resume")
    ).to_be_visible()
    assert await operations.count() >= 10
    assert outside == []


# -- 2. a Redis outage ---------------------------------------------------------------------


class TestRedisOutage:
    """A Redis of the test's own (AOF, so a kill -9 loses nothing), killed and restarted by pid."""

    @pytest.fixture
    def own_redis(self) -> Iterator[RedisServer]:
        with RedisServer(appendonly=True) as server:
            yield server

    @pytest.fixture
    def real_redis_url(self, own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
        """Overrides the shared server: the web app and this test use the test's own."""
        monkeypatch.setenv("HITL_BUS_REDIS_URL", own_redis.url)
        return own_redis.url

    @pytest.fixture
    def server_log(self, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
        caplog.set_level(logging.WARNING, logger="hitl_bus")
        return caplog

    async def test_the_run_page_rides_out_a_redis_outage(
        self,
        page: Page,
        own_redis: RedisServer,
        server_log: pytest.LogCaptureFixture,
        shots: Path,
    ) -> None:
        @flow(name="outage")
        async def outage() -> None:
            get_run_logger().info("before the outage")
            order = await pause_flow_run(wait_for_input=Order, timeout=600)
            get_run_logger().info("shipping to %s", order.address.city)

        run_id = await start_paused(outage)
        await page.goto(f"/runs/{run_id}")
        live = page.locator("#live")
        await expect(live).to_have_text("live")
        await expect(page.locator("#logs")).to_contain_text("before the outage")
        await page.get_by_label("Recipient").fill("Grace")
        await page.get_by_label("City").fill("Lyon")

        own_redis.kill()
        banner = page.locator("#connection")
        await expect(banner).to_have_text(OUTAGE_TEXT, timeout=15_000)
        await expect(live).to_have_text("reconnecting")
        await expect(live).to_have_class(re.compile("reconnecting"))
        await page.get_by_role("button", name="Resume").scroll_into_view_if_needed()
        await expect(banner).to_be_in_viewport()  # seen from the Resume button too
        await page.screenshot(path=shots / "run-outage.png")
        body = await page.locator("body").inner_text()
        for internal in ("Error 111", "127.0.0.1", "HITL_BUS", "redis", "Redis"):
            assert internal not in body, internal
        await asyncio.sleep(1.0)  # the page keeps waiting quietly

        await asyncio.to_thread(own_redis.start)
        await expect(banner).to_be_hidden(timeout=20_000)
        await expect(live).to_have_text("live")
        await expect(page.get_by_label("Recipient")).to_have_value("Grace")  # kept
        await expect(page.get_by_label("City")).to_have_value("Lyon")

        await aresume_flow_run(
            run_id,
            {
                "recipient": "Grace",
                "address": {"street": "1 Rue", "city": "Lyon", "postcode": "69001"},
            },
        )
        await expect(page.locator("#state")).to_have_text("Completed", timeout=15_000)
        await expect(page.locator("#logs")).to_contain_text("shipping to Lyon")
        assert await page.locator("#logs li", has_text="before the outage").count() == 1
        assert await page.locator("#logs li", has_text="shipping to Lyon").count() == 1
        assert await page.locator("#history li", has_text="Completed").count() == 1
        assert "Error 111" in server_log.text  # the detail is in the server log

    async def test_the_runs_page_rides_out_a_redis_outage(
        self, page: Page, own_redis: RedisServer
    ) -> None:
        await page.goto("/")
        await expect(page.locator("#live")).to_have_text("live")
        own_redis.kill()
        await expect(page.locator("#connection")).to_have_text(OUTAGE_TEXT, timeout=15_000)
        await expect(page.locator("#live")).to_have_text("reconnecting")
        await asyncio.to_thread(own_redis.start)
        await expect(page.locator("#connection")).to_be_hidden(timeout=20_000)

        @flow(name="after-the-outage")
        async def later() -> None:
            await pause_flow_run(timeout=600)

        run_id = await start_paused(later)  # made after the restart: pushed to the page
        await expect(page.locator(f'[data-run-id="{run_id}"]')).to_contain_text("Paused")
        assert await page.locator(f'[data-run-id="{run_id}"]').count() == 1


async def test_a_resume_while_redis_is_down_answers_503_in_plain_words(
    app: object, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx

    from tests.web import AUTH

    assert isinstance(app, httpx.AsyncClient)
    with RedisServer() as server:
        monkeypatch.setenv("HITL_BUS_REDIS_URL", server.url)
        monkeypatch.setenv("HITL_BUS_RECONNECT_TIMEOUT", "0.5")
        assert (await app.get("/api/runs", headers=AUTH)).status_code == 200
        server.kill()
        caplog.set_level(logging.WARNING, logger="hitl_bus.web")
        reply = await app.get("/api/runs", headers=AUTH)
    assert reply.status_code == 503
    detail = reply.json()["detail"]
    assert detail.startswith("The server can't reach its store")
    assert "Error" not in detail and "127.0.0.1" not in detail and "HITL_BUS" not in detail
    assert str(server.port) in caplog.text  # the detail is for the server's log


class _RestartableServer:
    """The app on one loopback port that a test can stop and start again."""

    def __init__(self) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
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
        self._server, self._thread, self._sock = server, thread, sock

    def stop(self) -> None:
        if self._server is not None and self._thread is not None and self._sock is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._sock.close()
        self._server = self._thread = self._sock = None


class TestServerRestart:
    @pytest.fixture
    def server(
        self, real_redis_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[_RestartableServer]:
        monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
        server = _RestartableServer()
        server.start()
        yield server
        server.stop()

    @pytest.fixture
    def web_url(self, server: _RestartableServer) -> str:
        return server.url

    async def test_the_run_page_comes_back_after_a_server_restart(
        self, page: Page, server: _RestartableServer
    ) -> None:
        go_on = asyncio.Event()

        @flow(name="restart")
        async def restart() -> None:
            get_run_logger().info("before the restart")
            await go_on.wait()
            get_run_logger().info("while the server was away")
            await pause_flow_run(wait_for_input=Order, timeout=600)

        run = asyncio.create_task(restart())
        try:
            await page.goto("/")
            row = page.locator("[data-run-id]", has_text="restart").first
            await row.get_by_role("link").click()
            await expect(page.locator("#logs")).to_contain_text("before the restart")
            await expect(page.locator("#live")).to_have_text("live")

            await asyncio.to_thread(server.stop)
            banner = page.locator("#connection")
            await expect(banner).to_have_text(
                "The connection to the server was lost; your answers are kept. Trying again…"
            )
            await expect(page.locator("#live")).to_have_text("reconnecting")
            go_on.set()
            await asyncio.sleep(1.0)
            await asyncio.to_thread(server.start)

            await expect(banner).to_be_hidden(timeout=20_000)
            await expect(page.locator("#live")).to_have_text("live")
            await expect(page.locator("#logs")).to_contain_text("while the server was away")
            await expect(page.locator("#state")).to_have_text("Paused")
            await page.get_by_label("Recipient").fill("Grace")  # the form came with the pause
            assert await page.locator("#logs li", has_text="before the restart").count() == 1
            assert await page.locator("#logs li", has_text="while the server was").count() == 1
        finally:
            run.cancel()
