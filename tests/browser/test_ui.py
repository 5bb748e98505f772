"""The UI as a person uses it: log in, find a paused run, answer it, watch it go on."""

from __future__ import annotations

import uuid
from typing import Literal

from playwright.async_api import Page, expect
from pydantic import Field

from hitl_bus import (
    RunInput,
    flow,
    get_client,
    get_run_logger,
    pause_flow_run,
    receive_input,
    start_flow_run,
    suspend_flow_run,
)
from tests.helpers import start_paused


class Approval(RunInput):
    approver: str = Field(title="Approver", description="Who decides.", min_length=1)
    count: int = Field(title="Count", description="How many to order.", ge=1, le=5)
    approved: bool = Field(default=False, title="Approved")


async def test_answer_a_paused_run_from_the_runs_page(page: Page) -> None:
    @flow
    async def purchase() -> str:
        form = Approval.with_initial_data(
            description="## Approve **$120**\n\nSee the [policy](https://example.com/policy).",
            approver="Grace",
        )
        decision = await pause_flow_run(wait_for_input=form, timeout=600)
        get_run_logger().info("Ordered %d, approved by %s", decision.count, decision.approver)
        return "done"

    run_id = await start_paused(purchase)
    await page.goto("/")
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    await expect(row).to_contain_text("Paused")
    await row.get_by_role("link", name="Resume").click()

    description = page.locator("#description")
    # "##" sits below the page's own h1 and h2.
    await expect(description.get_by_role("heading", level=4)).to_have_text("Approve $120")
    await expect(description.locator('a[href="https://example.com/policy"]')).to_be_visible()
    await expect(page.locator("#pause-context")).to_contain_text("times out in")
    await expect(page.get_by_label("Approver")).to_have_value("Grace")  # the default
    await expect(page.get_by_text("How many to order.")).to_be_visible()  # help text

    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    await page.get_by_label("Count").fill("9")
    await expect(page.locator(".field-error", has_text="Count must be at most 5")).to_be_visible()
    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("#summary")).to_contain_text("Count must be at most 5")
    assert sent == []  # the browser refused it: nothing went to the server

    await page.get_by_label("Count").fill("3")
    await page.get_by_label("Approved").check()
    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("#notice")).to_contain_text("The flow has your input")
    await expect(page.locator("#logs")).to_contain_text("Ordered 3, approved by Grace")
    await expect(page.locator("#state")).to_have_text("Completed")
    assert len(sent) == 1 and sent[0].endswith(f"/api/runs/{run_id}/resume")


async def test_runs_page_updates_live(page: Page) -> None:
    await page.goto("/")
    await expect(page.locator("#runs")).to_contain_text("No runs yet.")

    @flow
    async def waits() -> None:
        await pause_flow_run(timeout=600)

    run_id = await start_paused(waits)  # started after the page loaded: pushed to it
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    await expect(row).to_contain_text("Paused")
    await get_client().cancel_flow_run(run_id)
    await expect(row).to_contain_text("Cancelled")


async def test_chat_with_the_greeter(page: Page) -> None:
    @flow
    async def greeter() -> None:
        async for name in receive_input(str, with_metadata=True, timeout=60):
            if name.value == "bye":
                return
            await name.respond(f"Hello, {name.value}!")

    run = await start_flow_run(greeter)
    await page.goto(f"/runs/{run.id}")
    box = page.locator('form.send-form[data-prefix="str-auto"]')
    for name in ("Ada", "Grace"):
        await box.get_by_label("Message").fill(name)
        await box.get_by_role("button", name="Send").click()
        await expect(page.locator(".say-run").last).to_have_text(f"Run Hello, {name}!")
    await expect(page.locator(".say-you")).to_have_count(2)
    await expect(page.locator("#inputs")).to_contain_text("Grace")
    await box.get_by_label("Message").fill("bye")
    await box.get_by_role("button", name="Send").click()
    await expect(page.locator("#state")).to_have_text("Completed")


async def test_a_description_cannot_inject_script(page: Page) -> None:
    hostile = (
        "Hi <script>window.pwned = 1</script>\n\n"
        '<img src="x" onerror="window.pwned = 2">\n\n'
        "[click me](javascript:window.pwned=3) and ![pic](https://example.com/p.png)"
    )

    @flow
    async def hostile_pause() -> None:
        await pause_flow_run(wait_for_input=Approval.with_initial_data(description=hostile))

    run_id = await start_paused(hostile_pause)
    await page.goto(f"/runs/{run_id}")
    description = page.locator("#description")
    await expect(description).to_contain_text("<script>window.pwned = 1</script>")  # as text
    await expect(description).to_contain_text('onerror="window.pwned = 2"')
    assert await description.locator("script, img, [onerror]").count() == 0
    hrefs = await description.locator("a").evaluate_all("links => links.map(a => a.href)")
    assert hrefs == ["https://example.com/p.png"]  # the image became a link; no javascript:
    assert await page.evaluate("window.pwned") is None


async def test_reads_and_writes_need_the_token(page: Page, web_url: str) -> None:
    @flow
    async def waits() -> None:
        await pause_flow_run(timeout=600)

    run_id = await start_paused(waits)
    stranger = await page.context.browser.new_context(base_url=web_url)  # type: ignore[union-attr]
    anonymous = await stranger.new_page()
    await anonymous.goto(f"/runs/{run_id}")
    await expect(anonymous).to_have_url(f"{web_url}/login?next=/runs/{run_id}")
    refused = await anonymous.request.post(f"/api/runs/{run_id}/cancel")
    assert refused.status == 401
    await anonymous.get_by_label("Token").fill("wrong")
    await anonymous.get_by_role("button", name="Log in").click()
    await expect(anonymous.get_by_role("alert")).to_have_text("That token is not valid.")
    await stranger.close()
    assert (await get_client().read_flow_run(run_id)).state.is_paused()


async def test_a_cross_origin_form_post_with_the_session_cookie_is_refused(
    page: Page, web_url: str
) -> None:
    @flow
    async def waits() -> None:
        await pause_flow_run(timeout=600)

    run_id = await start_paused(waits)
    # Another origin on the same host (same site, so the strict cookie still rides along).
    host, port = web_url.rsplit(":", 1)
    evil = f"{host}:{int(port) + 1}/evil.html"
    form = (
        f'<form id="f" method="post" action="{web_url}/api/runs/{run_id}/cancel">'
        '<input name="csrf_token" value="guess"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    await page.route(evil, lambda route: route.fulfill(body=form, content_type="text/html"))
    async with page.expect_response(f"{web_url}/api/runs/{run_id}/cancel") as answer:
        await page.goto(evil)
    response = await answer.value
    assert response.status == 403
    assert "cookie" in (await response.request.all_headers())  # the session rode along
    assert (await get_client().read_flow_run(run_id)).state.is_paused()

    # The same write from the UI itself goes through.
    await page.goto(f"/runs/{run_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Cancel run").click()
    await expect(page.locator("#state")).to_have_text("Cancelled")


async def test_a_pause_without_input_and_a_suspended_run(page: Page) -> None:
    @flow
    async def gate() -> None:
        await pause_flow_run(timeout=600)
        get_run_logger().info("through the gate")

    run_id = await start_paused(gate)
    await page.goto(f"/runs/{run_id}")
    await expect(page.locator("#fields")).to_have_text("This pause takes no input.")
    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("#logs")).to_contain_text("through the gate")
    await expect(page.locator("#state")).to_have_text("Completed")

    @flow
    async def overnight() -> None:
        await suspend_flow_run(wait_for_input=Approval, timeout=600)

    suspended_id = await start_paused(overnight)
    await page.goto(f"/runs/{suspended_id}")
    await expect(page.locator("#resume-title")).to_contain_text("Suspended")
    await page.get_by_label("Approver").fill("Ada")
    await page.get_by_label("Count").fill("1")
    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("#notice")).to_contain_text("A worker will continue the run")
    await expect(page.locator("#state")).to_have_text("Resuming")  # queued for a worker
    await expect(page.locator("#resume")).to_be_hidden()


async def test_start_a_deployment_with_parameters_from_a_form(page: Page) -> None:
    from hitl_bus.deployments.registry import register

    @flow
    async def report(days: int = 7, fmt: Literal["pdf", "csv"] = "pdf") -> None:
        return None

    await register(report.to_deployment("weekly", parameters={"days": 14}))
    await page.goto("/")
    item = page.locator('li[data-deployment="report/weekly"]')
    await item.get_by_role("button", name="Start run…").click()
    days = item.get_by_label("Days", exact=True)
    await expect(days).to_have_value("14")  # the deployment's default
    await days.fill("2.5")
    await item.get_by_role("button", name="Start", exact=True).click()
    await expect(item.locator(".field-error:visible")).to_have_text("Days must be a whole number")
    await days.fill("30")
    await item.get_by_label("Fmt", exact=True).select_option("csv")
    await item.get_by_role("button", name="Start", exact=True).click()
    started = item.get_by_role("link")
    await expect(started).to_be_visible()
    run_id = (await started.get_attribute("href") or "").rsplit("/", 1)[-1]
    run = await get_client().read_flow_run(run_id)
    assert run.parameters == {"days": 30, "fmt": "csv"}
    assert run.deployment == "report/weekly"
    await expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_contain_text("Scheduled")


async def test_an_unknown_run_says_so(page: Page) -> None:
    await page.goto(f"/runs/{uuid.uuid4()}")  # its live stream is a 404: the page still reads
    await expect(page.locator("#notice")).to_have_text("No such run.")
