"""People in the UI: signing in with one's own token, what a role shows, "Waiting for me",
and answering through a single-use link without logging in."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest
import redis.asyncio as aioredis
from playwright.async_api import Browser, Page, expect
from pydantic import Field

from hitl_bus import RunInput, flow, get_client, pause_flow_run
from hitl_bus.people import links
from hitl_bus.people.roles import Role
from hitl_bus.people.store import PersonExists, add_person
from tests.browser.conftest import REPORT_CSP_VIOLATIONS
from tests.browser.test_axe import serious
from tests.browser.test_pages_person import PHONE, _check_fits
from tests.helpers import shirt_order_for, start_paused

GONE = "This link was already used, or it has expired."


class Expense(RunInput):
    amount: int = Field(title="Amount", description="In euros.", ge=1, le=500)
    reason: Literal["travel", "equipment"] = Field(title="Reason")


@flow(name="expense")
async def expense() -> str:
    claim = await pause_flow_run(
        wait_for_input=Expense.with_initial_data(description="Approve **Linus's** claim"),
        timeout=600,
    )
    return f"{claim.amount} {claim.reason}"


OpenPage = Callable[[], Awaitable[Page]]


@pytest.fixture
async def fresh_page(browser: Browser, web_url: str) -> AsyncIterator[OpenPage]:
    """Pages in new browser contexts (no session), failing on script errors and CSP
    violations as the ``page`` fixture does."""
    contexts = []
    errors: list[str] = []

    async def open_page() -> Page:
        context = await browser.new_context(base_url=web_url)
        context.set_default_timeout(10_000)
        await context.add_init_script(REPORT_CSP_VIOLATIONS)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: (
                errors.append(msg.text)
                if msg.type == "error" and "CSP violation" in msg.text
                else None
            ),
        )
        return page

    yield open_page
    for context in contexts:
        await context.close()
    assert not errors, f"errors in the page's scripts: {errors}"


async def log_in(page: Page, token: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("header .who")).to_contain_text("Signed in as")


async def post(page: Page, path: str, body: Any, bearer: str | None = None) -> dict[str, Any]:
    """A write from the page's own script context (with the session's CSRF token)."""
    result: dict[str, Any] = await page.evaluate(
        """async ([path, body, bearer]) => {
            const headers = { "Content-Type": "application/json",
              "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]')?.content ?? "" };
            if (bearer) headers.Authorization = `Bearer ${bearer}`;
            const r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body),
              credentials: bearer ? "omit" : "same-origin" });
            return { status: r.status, body: await r.json().catch(() => ({})) };
        }""",
        [path, body, bearer],
    )
    return result


async def test_a_person_signs_in_with_their_token_and_sees_what_waits_for_them(
    fresh_page: OpenPage, admin: aioredis.Redis, tmp_path: Path
) -> None:
    _, token = await add_person("grace", Role.RESPONDER, teams=["finance"])
    for_grace = await start_paused(expense)
    for_linus = await start_paused(shirt_order_for(["linus"]))
    page = await fresh_page()
    await log_in(page, token)
    await expect(page.locator("header .who")).to_contain_text("Signed in as grace · responder")
    await page.screenshot(path=tmp_path / "runs-signed-in.png")
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()
    both = page.locator(f'tr[data-run-id="{for_grace}"], tr[data-run-id="{for_linus}"]')
    await expect(both).to_have_count(2)
    await expect(page.get_by_role("button", name="Start run")).to_have_count(0)  # operators'

    mine = page.get_by_role("button", name="Waiting for me")
    await expect(mine).to_have_attribute("aria-pressed", "false")
    await mine.focus()
    await page.keyboard.press("Enter")  # a keyboard toggles it too
    await expect(mine).to_have_attribute("aria-pressed", "true")
    await expect(page.locator(f'tr[data-run-id="{for_grace}"]')).to_be_visible()
    await expect(page.locator(f'tr[data-run-id="{for_linus}"]')).to_have_count(0)
    assert "waiting_for=me" in page.url
    await page.reload()  # the view is in the address, so a reload keeps it
    await expect(mine).to_have_attribute("aria-pressed", "true")
    await expect(page.locator(f'tr[data-run-id="{for_linus}"]')).to_have_count(0)
    assert await serious(page) == []

    await page.goto(f"/runs/{for_grace}")
    await expect(page.get_by_role("button", name="Resume")).to_be_visible()
    await expect(page.locator("#cancel")).to_be_hidden()  # a responder does not cancel
    await page.get_by_label("Amount").fill("40")
    await page.get_by_label("Reason").select_option("travel")
    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("#state")).to_have_text("Completed")


async def test_a_viewer_sees_no_resume_or_cancel_and_the_api_refuses(
    fresh_page: OpenPage,
) -> None:
    _, token = await add_person("ada", Role.VIEWER)
    run_id = await start_paused(expense)
    page = await fresh_page()
    await log_in(page, token)
    await expect(page.locator("header .who")).to_contain_text("Signed in as ada · viewer")
    await expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_contain_text("Paused")
    await expect(
        page.locator(f'tr[data-run-id="{run_id}"]').get_by_role("link", name="Resume")
    ).to_have_count(0)

    await page.goto(f"/runs/{run_id}")
    await expect(page.locator("#resume")).to_be_visible()  # the question is readable
    await expect(page.get_by_label("Amount")).to_be_visible()
    await expect(page.get_by_role("button", name="Resume")).to_have_count(0)
    await expect(page.locator("#resume-status")).to_contain_text(
        "answering needs the responder role"
    )
    await expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)

    refused = await post(
        page, f"/api/runs/{run_id}/resume", {"input": {"amount": 5, "reason": "travel"}}
    )
    assert refused["status"] == 403
    assert (
        refused["body"]["detail"]
        == "ada is a viewer; to answer you need the responder role or above"
    )
    cancel = await post(page, f"/api/runs/{run_id}/cancel", {})
    assert cancel["status"] == 403
    assert (await get_client().read_flow_run(run_id)).state.is_paused()


async def mint(run_id: str, assignee: str) -> str:
    """A link sent to ``assignee``, a responder (made here the first time)."""
    with contextlib.suppress(PersonExists):
        await add_person(assignee, Role.RESPONDER)
    pause = await get_client().read_pause(run_id)
    assert pause is not None
    return await links.mint(links.AnswerLink(run_id, pause.pause_key, assignee), 600)


async def test_an_answer_link_opens_the_form_without_login_and_works_once(
    fresh_page: OpenPage, tmp_path: Path
) -> None:
    run_id = await start_paused(expense)
    other = await start_paused(expense)
    token = await mint(run_id, "grace")
    page = await fresh_page()
    await page.goto(f"/answer/{token}")
    await expect(page.locator("#description strong")).to_have_text("Linus's")
    await expect(page.locator("#pause-context")).to_contain_text("waiting for grace")
    await expect(page.locator("header nav")).to_have_count(0)  # no way into the rest
    await expect(page.get_by_role("link")).to_have_count(0)
    assert await serious(page) == []
    await page.set_viewport_size(PHONE)
    await _check_fits(page, tmp_path, "answer-360")  # a link opened on a phone

    await page.get_by_label("Amount").fill("900")
    await page.get_by_role("button", name="Send answer").click()
    await expect(page.locator("#summary")).to_contain_text("Amount must be at most 500")
    await page.get_by_label("Amount").fill("120")
    await page.get_by_label("Reason").select_option("equipment")
    await page.get_by_role("button", name="Send answer").click()
    await expect(page.locator("#notice")).to_contain_text("Your answer was sent")
    done = await get_client().wait_for_flow_run(run_id, timeout=10)
    assert done.state.is_completed()

    await page.goto(f"/answer/{token}")  # the second use
    await expect(page.get_by_role("alert")).to_have_text(GONE)
    again = await post(page, f"/api/answer/{token}", {"input": {"amount": 5, "reason": "travel"}})
    assert again["status"] == 410 and again["body"]["detail"] == GONE

    # The link's token opens no other run, and no session.
    second = await mint(other, "grace")
    elsewhere = await post(
        page,
        f"/api/runs/{other}/resume",
        {"input": {"amount": 5, "reason": "travel"}},
        bearer=second,
    )
    assert elsewhere["status"] == 401
    await page.goto(f"/runs/{other}")
    await page.wait_for_url(re.compile(r"/login\?next="))  # no session came with the link
    assert (await get_client().read_flow_run(other)).state.is_paused()


async def test_an_answer_refused_by_the_server_keeps_the_link_and_what_was_typed(
    fresh_page: OpenPage,
) -> None:
    @flow(name="note")
    async def note() -> None:
        await pause_flow_run(wait_for_input=str, timeout=600)

    run_id = await start_paused(note)
    token = await mint(run_id, "grace")
    page = await fresh_page()
    await page.goto(f"/answer/{token}")
    await expect(page.get_by_label("Your answer")).to_be_visible()
    # The server refuses what reaches it (a number where text is asked): a 422.
    await page.route(
        f"**/api/answer/{token}",
        lambda route: (
            route.continue_(post_data=orjson.dumps({"input": {"value": 5}}))
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    await page.get_by_label("Your answer").fill("kept")
    await page.get_by_role("button", name="Send answer").click()
    await expect(page.locator("#summary")).to_be_visible()
    await expect(page.get_by_label("Your answer")).to_have_value("kept")
    await page.unroute(f"**/api/answer/{token}")
    await page.get_by_label("Your answer").fill("kept, and sent")  # the server's mark goes
    await page.get_by_role("button", name="Send answer").click()
    await expect(page.locator("#notice")).to_contain_text("Your answer was sent")


async def test_the_link_in_the_email_answers_the_pause_once(
    fresh_page: OpenPage, web_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole way: a pause for grace, the notifier's email to her, the link in it."""
    from tests.helpers import eventually, shirt_order_for
    from tests.notify_support import running_notifier, smtp_server

    await add_person("grace", Role.RESPONDER, email="grace@example.test")
    monkeypatch.setenv("HITL_BUS_PUBLIC_URL", web_url)
    with smtp_server() as (mailbox, smtp_url):
        monkeypatch.setenv("HITL_BUS_SMTP_URL", smtp_url)
        async with running_notifier():
            run_id = await start_paused(shirt_order_for(["grace"]))
            other = await start_paused(shirt_order_for(["grace"]))

            async def mailed() -> bool:
                return len(mailbox.messages) == 2

            await eventually(mailed, timeout=20)
    by_run = {}
    for message in mailbox.messages:
        text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        [link] = re.findall(re.escape(web_url) + r"/answer/\S+", text)
        [run] = [r for r in (run_id, other) if r in text]
        by_run[run] = link
    page = await fresh_page()
    await page.goto(by_run[run_id])
    await page.get_by_label("Size").select_option("large")
    await page.get_by_label("Color").select_option("red")
    await page.get_by_role("button", name="Send answer").click()
    await expect(page.locator("#notice")).to_contain_text("Your answer was sent")
    done = await get_client().wait_for_flow_run(run_id, timeout=10)
    assert done.state.is_completed()
    history = await get_client().read_state_history(run_id)
    assert any(state.state_details.actor == "hitl.user.grace" for state in history)

    await page.goto(by_run[run_id])  # the second use
    await expect(page.get_by_role("alert")).to_have_text(GONE)
    # The other run's link answers only that run: used on this run's API it opens nothing.
    token = by_run[other].rsplit("/", 1)[1]
    elsewhere = await post(
        page, f"/api/runs/{run_id}/resume", {"input": {"size": "small"}}, bearer=token
    )
    assert elsewhere["status"] == 401
    assert (await get_client().read_flow_run(other)).state.is_paused()
