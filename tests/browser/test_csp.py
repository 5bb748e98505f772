"""The pages work under their Content-Security-Policy: no script, style or request blocked.

A CSP violation stops a script or a style without breaking anything visibly, so these
tests listen for every console error (a violation is reported as one) on each page,
used as a person would, and fail on any.
"""

from __future__ import annotations

from playwright.async_api import Browser, ConsoleMessage, Page, expect

from hitl_bus import flow, get_run_logger, pause_flow_run
from tests.browser.conftest import REPORT_CSP_VIOLATIONS
from tests.browser.test_ui import Approval
from tests.helpers import eventually, start_paused

ALIGNED_TABLE = "| Item | Price |\n|:--|--:|\n| Shirt | $20 |\n| Hat | $12 |"


def console_errors(page: Page) -> list[str]:
    """Every console error the page logs from now on, CSP violations included."""
    errors: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{page.url}: {message.text}")

    page.on("console", keep)
    return errors


async def test_every_page_runs_without_a_console_error_or_csp_violation(page: Page) -> None:
    @flow
    async def priced() -> None:
        form = Approval.with_initial_data(description=f"Approve these?\n\n{ALIGNED_TABLE}")
        decision = await pause_flow_run(wait_for_input=form, timeout=600)
        get_run_logger().info("approved by %s", decision.approver)

    run_id = await start_paused(priced)
    errors = console_errors(page)

    response = await page.goto("/")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    await expect(row).to_contain_text("Paused")
    await row.get_by_role("link", name="Resume").click()

    price = page.locator("#description th", has_text="Price")
    await expect(price).to_be_visible()
    assert await price.evaluate("th => getComputedStyle(th).textAlign") == "right"  # allowed
    await page.get_by_label("Approver").fill("Ada")
    await page.get_by_label("Count").fill("2")
    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("#logs")).to_contain_text("approved by Ada")
    await expect(page.locator("#state")).to_have_text("Completed")

    await page.goto("/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("hitl_bus")
    operation = page.locator(".opblock", has_text="/api/runs/{run_id}/resume").first
    await operation.locator(".opblock-summary").click()
    await expect(operation.locator(".parameters-container")).to_be_visible()

    await page.goto("/login")
    await expect(page.get_by_label("Token")).to_be_visible()
    assert errors == []


async def test_an_inline_script_is_blocked_and_reported(browser: Browser, web_url: str) -> None:
    """The check above would see a violation: the policy holds, and is reported."""
    context = await browser.new_context(base_url=web_url)
    await context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = await context.new_page()
    errors = console_errors(page)
    await page.goto("/login")
    await page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.injected = true";
          document.body.append(script);
        }"""
    )

    async def reported() -> bool:
        return any("CSP violation: script-src-elem blocked inline" in e for e in errors)

    await eventually(reported)
    assert await page.evaluate("window.injected") is None
    await context.close()
