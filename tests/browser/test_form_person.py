"""The Resume form as a person meets it: asked again, choosing, checking, reading, waiting.

Each test drives the run page with the keyboard and the mouse and reads what the page
says (text, roles, names), the way an approver would.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Literal

from playwright.async_api import Browser, Page, Request, expect
from pydantic import BaseModel, Field, ValidationError, model_validator

from examples.approval import expense_approval
from examples.shirt_order import shirt
from hitl_bus import RunInput, flow, get_run_logger, pause_flow_run, suspend_flow_run
from hitl_bus.input.run_input import receive_input
from tests.browser.conftest import REPORT_CSP_VIOLATIONS, TOKEN
from tests.browser.test_resume_form import error_beside, group, open_form, resume
from tests.helpers import start_paused


def posts_of(page: Page) -> list[Request]:
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    return posts


# -- 1. a re-asked form keeps the last answer ----------------------------------------------


class Stay(BaseModel):
    street: str = Field(title="Street")
    city: str = Field(title="City")


class Booking(RunInput):
    guest: str = Field(title="Guest")
    nights: int = Field(1, title="Nights", ge=1, le=14)
    room: Literal["single", "double"] = Field("single", title="Room")
    breakfast: bool = Field(False, title="Breakfast")
    extras: list[str] = Field(default_factory=list, title="Extras")
    billing: Stay = Field(title="Billing address")
    comment: str = Field("", title="Comment")

    @model_validator(mode="after")
    def long_stays_say_why(self) -> Booking:
        if self.nights > 7 and not self.comment.strip():
            raise ValueError("Say in the comment why the stay is longer than a week.")
        return self


@flow(name="book-a-stay")
async def book() -> None:
    while True:
        try:
            booking = await pause_flow_run(wait_for_input=Booking, timeout=600)
        except ValidationError:
            continue
        get_run_logger().info("Booked %s for %d nights", booking.guest, booking.nights)
        return


async def test_a_refused_answer_comes_back_as_it_was_typed(page: Page) -> None:
    run_id = await start_paused(book)
    await page.goto(f"/runs/{run_id}")
    await page.get_by_role("textbox", name="Guest").fill("Ada")
    await page.get_by_role("spinbutton", name="Nights").fill("9")
    await page.get_by_role("combobox", name="Room").select_option(label="double")
    await page.get_by_role("checkbox", name="Breakfast").check()
    await page.get_by_role("button", name="Add an item to Extras").click()
    await page.keyboard.type("late checkout")
    billing = group(page, "Billing address")
    await billing.get_by_role("textbox", name="Street").fill("1 Main St")
    await billing.get_by_role("textbox", name="City").fill("Leeds")
    await resume(page)  # the schema takes it; the flow's validator does not

    refusal = page.get_by_role("alert").filter(has_text="Say in the comment why")
    await expect(refusal).to_be_visible()
    await expect(refusal).to_be_focused()
    await expect(refusal).to_be_in_viewport()
    comment = page.get_by_role("textbox", name="Comment")
    await expect(comment).to_have_attribute("aria-invalid", "true")
    await expect(error_beside(page, "Comment")).to_have_text(
        "Say in the comment why the stay is longer than a week."
    )
    # Every control starts from what was sent, not from the defaults.
    await expect(page.get_by_role("textbox", name="Guest")).to_have_value("Ada")
    await expect(page.get_by_role("spinbutton", name="Nights")).to_have_value("9")
    await expect(page.get_by_role("combobox", name="Room").locator("option:checked")).to_have_text(
        "double"
    )
    await expect(page.get_by_role("checkbox", name="Breakfast")).to_be_checked()
    await expect(page.get_by_role("textbox", name="Extras item 1")).to_have_value("late checkout")
    await expect(billing.get_by_role("textbox", name="Street")).to_have_value("1 Main St")
    await expect(billing.get_by_role("textbox", name="City")).to_have_value("Leeds")

    await comment.fill("A conference week.")
    await expect(comment).not_to_have_attribute("aria-invalid", "true")
    await resume(page)
    await expect(page.locator("#state")).to_have_text("Completed")
    await expect(page.locator("#logs")).to_contain_text("Booked Ada for 9 nights")


async def test_a_refused_shirt_order_keeps_both_choices(page: Page) -> None:
    run_id = await start_paused(shirt)
    await page.goto(f"/runs/{run_id}")
    await page.get_by_role("combobox", name="Size").select_option(label="small")
    await page.get_by_role("combobox", name="Color").select_option(label="green")
    await resume(page)
    refusal = page.get_by_role("alert").filter(has_text="Green is only in stock")
    await expect(refusal).to_be_focused()
    size = page.get_by_role("combobox", name="Size")
    await expect(size.locator("option:checked")).to_have_text("small")
    color = page.get_by_role("combobox", name="Color")
    await expect(color.locator("option:checked")).to_have_text("green")
    await size.select_option(label="medium")
    await resume(page)
    await expect(page.locator("#logs")).to_contain_text("Ordered a medium green shirt")


# -- 2. a required yes/no is an explicit choice --------------------------------------------


async def test_a_required_yes_no_is_two_radios_and_the_readme_walkthrough_works(
    page: Page,
) -> None:
    run_id = await start_paused(expense_approval)
    posts = posts_of(page)
    await page.goto(f"/runs/{run_id}")
    approve = page.get_by_role("radiogroup", name="Approve")
    yes, no = approve.get_by_role("radio", name="Yes"), approve.get_by_role("radio", name="No")
    await expect(yes).not_to_be_checked()
    await expect(no).not_to_be_checked()
    await expect(yes).to_have_attribute("required", "")
    await expect(approve).to_have_attribute("aria-required", "true")

    await page.get_by_role("textbox", name="Your name").fill("Grace")
    await resume(page)  # no choice yet: nothing is sent
    await expect(page.locator("#summary")).to_contain_text("Approve is required: choose Yes or No")
    assert posts == []

    await no.check()  # a rejection without a reason: the flow asks again, keeping "No"
    await resume(page)
    await expect(page.get_by_role("alert").filter(has_text="Say in the comment")).to_be_focused()
    await expect(page.get_by_role("radio", name="No")).to_be_checked()

    await page.get_by_role("radio", name="Yes").check()  # as the README says
    await resume(page)
    await expect(page.locator("#notice")).to_contain_text("The flow has your input")
    await expect(page.locator("#logs")).to_contain_text("Approved $1,250.00 of $1,250.00")


# -- 3. a recap beside the button ---------------------------------------------------------


async def test_a_one_line_recap_of_what_resume_sends(page: Page) -> None:
    run_id = await start_paused(expense_approval)
    await page.goto(f"/runs/{run_id}")
    recap = page.locator("#resume-form .actions").get_by_text(re.compile("^Sends:"))
    await expect(recap).to_have_text("Sends: 1,250 · payroll")
    await page.get_by_role("radio", name="Yes").check()
    await page.get_by_role("textbox", name="Your name").fill("Grace")
    amount = page.get_by_role("spinbutton", name="Approved amount")
    await amount.fill("")
    await amount.type("1000")
    await expect(recap).to_have_text("Sends: Approve · Grace · 1,000 · payroll")
    await page.get_by_role("combobox", name="Pay out via").select_option(label="bank-transfer")
    await expect(recap).to_have_text("Sends: Approve · Grace · 1,000 · bank-transfer")


# -- 4. the error summary's links ---------------------------------------------------------


class Profile(RunInput):
    name: str = Field(title="Name", min_length=1)
    city: str = Field(title="City", min_length=1)
    tags: list[str] = Field(title="Tags", min_length=1)


async def test_summary_links_move_focus_on_the_first_click(page: Page) -> None:
    await open_form(page, Profile)
    await resume(page)
    summary = page.locator("#summary")
    await expect(summary.get_by_role("link")).to_have_count(3)
    await expect(page.get_by_role("textbox", name="Name")).to_be_focused()
    await summary.get_by_role("link", name="City must not be empty").click()
    await expect(page.get_by_role("textbox", name="City")).to_be_focused()
    await summary.get_by_role("link", name="Tags needs at least 1 item").click()
    await expect(page.get_by_role("button", name="Add an item to Tags")).to_be_focused()


# -- 5. pattern fields --------------------------------------------------------------------


class Ticket(RunInput):
    code: str = Field(title="Code", pattern=r"^[A-Z]{3}-\d{3}$", examples=["ABC-123"])
    postcode: str = Field(title="Postcode", description="Five digits.", pattern=r"^\d{5}$")
    # Python's named-group syntax: the browser cannot compile it; the server can.
    extension: str = Field(
        title="Extension", description="Two to four digits.", pattern=r"^(?P<ext>\d{2,4})$"
    )


async def test_pattern_messages_show_an_example_or_the_help_never_the_regex(page: Page) -> None:
    await open_form(page, Ticket)
    await page.get_by_role("textbox", name="Code", exact=True).fill("abc")
    await expect(error_beside(page, "Code")).to_have_text(
        "Code does not have the expected form (for example ABC-123)"
    )
    await page.get_by_role("textbox", name="Postcode").fill("12a")
    await expect(error_beside(page, "Postcode")).to_have_text(
        "Postcode does not have the expected form: Five digits"
    )
    extension = page.locator(".field", has=page.get_by_role("textbox", name="Extension"))
    await expect(extension.locator(".hint")).to_have_text(
        "The server checks this field's form when you resume."
    )
    await page.get_by_role("textbox", name="Code", exact=True).fill("ABC-123")
    await page.get_by_role("textbox", name="Postcode").fill("12345")
    await page.get_by_role("textbox", name="Extension").fill("x1")
    await resume(page)
    await expect(error_beside(page, "Extension")).to_have_text(
        "Extension does not have the expected form: Two to four digits"
    )
    await expect(page.locator("#resume")).not_to_contain_text("(?P")
    await expect(page.locator("#resume")).not_to_contain_text("\\d")


# -- 6. hints ---------------------------------------------------------------------------


class Order(RunInput):
    units: int = Field(title="Units", description="How many units (1 to 10)", ge=1, le=10)
    budget: float | None = Field(
        None, title="Budget", description="Lower it to cap the order; empty approves all of it."
    )
    note: str | None = Field(None, title="Note")


async def test_help_and_hints_are_separate_lines_that_agree(page: Page) -> None:
    await open_form(page, Order)
    units = page.locator(".field", has=page.get_by_role("spinbutton", name="Units"))
    await expect(units.locator(".help")).to_have_text("How many units (1 to 10)")
    await expect(units.locator(".hint")).to_have_text("A whole number, at least 1 and at most 10.")
    budget = page.locator(".field", has=page.get_by_role("spinbutton", name="Budget"))
    await expect(budget.get_by_text("Leave empty for none.")).to_have_count(0)
    await expect(budget.get_by_text("empty approves all of it")).to_be_visible()
    note = page.locator(".field", has=page.get_by_role("textbox", name="Note"))
    await expect(note.get_by_text("Leave empty for none.")).to_be_visible()


# -- 7. screen readers --------------------------------------------------------------------


class Signup(RunInput):
    email: str = Field(title="Email", min_length=3)
    size: Literal["S", "M"] = Field(title="Size")
    seats: int = Field(title="Seats")
    nickname: str | None = Field(None, title="Nickname")


async def test_required_fields_are_announced_and_headings_sit_below_the_page(page: Page) -> None:
    @flow(name="signup")
    async def signup() -> None:
        await pause_flow_run(
            wait_for_input=Signup.with_initial_data(description="# Sign up\n\n## Details\n\nText"),
            timeout=600,
        )

    run_id = await start_paused(signup)
    await page.goto(f"/runs/{run_id}")
    for control in [
        page.get_by_role("textbox", name="Email", exact=True),
        page.get_by_role("combobox", name="Size", exact=True),
        page.get_by_role("spinbutton", name="Seats", exact=True),
    ]:
        await expect(control).to_have_attribute("aria-required", "true")
        await expect(control).to_have_attribute("required", "")
    nickname = page.get_by_role("textbox", name="Nickname", exact=True)
    await expect(nickname).not_to_have_attribute("aria-required", "true")
    description = page.locator("#description")
    await expect(description.get_by_role("heading", name="Sign up", level=3)).to_be_visible()
    await expect(description.get_by_role("heading", name="Details", level=4)).to_be_visible()
    await expect(page.get_by_role("heading", level=1)).to_have_count(1)  # the run's own


# -- 8. suspended runs --------------------------------------------------------------------


@flow(name="overnight-inbox")
async def overnight() -> None:
    async for _ in receive_input(str, timeout=0.3):
        pass
    await suspend_flow_run(timeout=600)


async def test_a_suspended_run_is_not_said_to_receive_input_or_take_yours(page: Page) -> None:
    run_id = await start_paused(overnight)
    await page.goto(f"/runs/{run_id}")
    await expect(page.get_by_role("heading", name=re.compile("^Suspended"))).to_be_visible()
    await expect(page.get_by_text("This run is suspended: what you send is kept")).to_be_visible()
    await expect(page.get_by_text("This run is receiving input")).to_have_count(0)
    await resume(page)
    notice = page.get_by_role("status")
    await expect(notice).to_have_text("Resumed. A worker will continue the run.")


# -- 9. date-times ------------------------------------------------------------------------


class Callback(RunInput):
    call_at: datetime.datetime = Field(title="Call me at")


async def test_a_date_time_shows_the_zone_and_sends_what_was_shown(
    browser: Browser, web_url: str
) -> None:
    context = await browser.new_context(base_url=web_url, timezone_id="Europe/Berlin")
    context.set_default_timeout(10_000)
    await context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"/login?token={TOKEN}")
    try:
        received, posts = await open_form(page, Callback)
        call_at = page.get_by_role("textbox", name="Call me at")
        if not await call_at.count():  # datetime-local has no textbox role everywhere
            call_at = page.get_by_label("Call me at", exact=True)
        field = page.locator(".field", has=call_at)
        await expect(field.get_by_text("Europe/Berlin (UTC+01:00)")).to_be_visible()
        await call_at.fill("2026-03-01T10:00")
        await expect(field.locator(".hint")).to_contain_text("sent as UTC: 2026-03-01 09:00 UTC")
        await resume(page)
        await expect(page.locator("#state")).to_have_text("Completed")
        assert posts[0].post_data_json == {"input": {"call_at": "2026-03-01T09:00:00.000Z"}}
        moment = datetime.datetime(2026, 3, 1, 9, 0, tzinfo=datetime.UTC)
        assert received[0].call_at == moment
    finally:
        await context.close()
    assert not errors


# -- 10. a pause that times out while the form is open ----------------------------------


class Reply(RunInput):
    answer: str = Field(title="Answer")


async def test_a_pause_timing_out_keeps_what_was_typed(page: Page) -> None:
    @flow(name="short-wait")
    async def short_wait() -> Any:
        return await pause_flow_run(wait_for_input=Reply, timeout=5)

    run_id = await start_paused(short_wait)
    await page.goto(f"/runs/{run_id}")
    answer = page.get_by_role("textbox", name="Answer")
    await answer.fill("Ship it on Monday, after the review")
    timed_out = page.get_by_role("alert").filter(has_text="timed out")
    await expect(timed_out).to_contain_text(
        "The pause timed out before you resumed it. Nothing was sent.", timeout=20_000
    )
    await expect(timed_out).to_contain_text("Ship it on Monday, after the review")  # to copy
    await expect(answer).to_have_value("Ship it on Monday, after the review")
    await expect(answer).to_have_attribute("readonly", "")
    await expect(page.get_by_role("button", name="Resume")).to_be_hidden()
