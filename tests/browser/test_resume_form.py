"""The Resume form, one control type at a time, filled in as a person would.

Each test pauses a flow for a typed input, opens the run page, fills the form the
browser generated from the input's JSON schema, presses Resume and checks that the
flow received exactly what was typed (the flow runs on the test's loop, so the
value it got is compared as a Python object, and its log line is read on the page).
"""

from __future__ import annotations

import datetime
import enum
from typing import Any, Literal

from playwright.async_api import Locator, Page, Request, expect
from pydantic import BaseModel, Field

from examples.shirt_order import shirt
from hitl_bus import RunInput, flow, get_run_logger, pause_flow_run
from hitl_bus.engine.flows import Flow
from tests.helpers import start_paused


def waits_for(input_type: Any) -> tuple[Flow[[], Any], list[Any]]:
    """A flow that pauses for ``input_type``, then logs and keeps what it received."""
    received: list[Any] = []

    @flow(name=f"wait-for-{getattr(input_type, '__name__', 'input')}")
    async def answer() -> None:
        value = await pause_flow_run(wait_for_input=input_type, timeout=600)
        received.append(value)
        get_run_logger().info("Received %r", value)

    return answer, received


async def open_form(page: Page, input_type: Any) -> tuple[list[Any], list[Request]]:
    """Pause a flow for ``input_type`` and open its run page; returns (received, POSTs)."""
    answer, received = waits_for(input_type)
    run_id = await start_paused(answer)
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    await page.goto(f"/runs/{run_id}")
    await expect(page.locator("#resume")).to_be_visible()  # shown with the form built in it
    return received, posts


async def resume(page: Page) -> None:
    await page.get_by_role("button", name="Resume").click()


def _fields(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


async def resume_and_receive(page: Page, received: list[Any], expected: Any) -> None:
    """Press Resume; the flow completes having received exactly ``expected``."""
    await resume(page)
    await expect(page.locator("#notice")).to_contain_text("The flow has your input")
    await expect(page.locator("#state")).to_have_text("Completed")
    assert type(received[0]) is type(expected)
    # Compared by fields: the received instance also carries its metadata (key, receiver).
    assert [_fields(r) for r in received] == [_fields(expected)]
    logged = page.locator("#logs .msg", has_text="Received")
    await expect(logged).to_have_text(f"Received {received[0]!r}")  # what the flow logged


def error_beside(page: Page, label: str) -> Locator:
    """The message shown beside the control labelled ``label``."""
    return page.locator(".field", has=page.get_by_label(label, exact=True)).locator(".field-error")


def group(page: Page, legend: str) -> Locator:
    """A list, dict or nested model's fieldset, by its legend."""
    return page.get_by_role("group", name=legend, exact=True)


def group_error(page: Page, legend: str) -> Locator:
    return group(page, legend).locator(":scope > .field-error")


# -- 1. text ------------------------------------------------------------------------------


class Note(RunInput):
    subject: str = Field(title="Subject", description="One line about it.", max_length=40)
    remark: str = Field(title="Remark", description="Anything else.", max_length=80)


async def test_text_is_a_single_line_input_and_may_be_empty(page: Page) -> None:
    received, posts = await open_form(page, Note)
    subject = page.get_by_label("Subject", exact=True)
    await expect(subject).to_have_attribute("type", "text")
    await expect(subject).to_have_attribute("maxlength", "40")
    assert await subject.evaluate("node => node.tagName") == "INPUT"
    await expect(page.locator("#fields textarea")).to_have_count(0)
    await expect(page.get_by_text("One line about it.")).to_be_visible()

    await subject.fill("Ship it on Monday")
    remark = page.get_by_label("Remark", exact=True)
    await remark.fill("typed, then cleared")
    await remark.fill("")
    await resume_and_receive(page, received, Note(subject="Ship it on Monday", remark=""))
    assert posts[0].post_data_json == {"input": {"subject": "Ship it on Monday", "remark": ""}}


# -- 2. bounded numbers --------------------------------------------------------------------


class Dose(RunInput):
    count: int = Field(title="Count", description="How many.", ge=1, le=5)
    weight: float = Field(title="Weight", description="In kilograms.", gt=0, multiple_of=0.5)


async def test_bounded_numbers_refuse_out_of_range_values_in_the_browser(page: Page) -> None:
    received, posts = await open_form(page, Dose)
    count = page.get_by_label("Count *", exact=True)
    weight = page.get_by_label("Weight *", exact=True)
    await expect(page.get_by_text("How many.", exact=True)).to_be_visible()
    bounds = page.get_by_text("A whole number, at least 1 and at most 5.", exact=True)
    await expect(bounds).to_be_visible()  # the bounds, in words, on their own line

    await count.fill("9")
    await expect(error_beside(page, "Count *")).to_have_text("Count must be at most 5")
    await weight.fill("0")
    await expect(error_beside(page, "Weight *")).to_have_text("Weight must be more than 0")
    await resume(page)
    summary = page.locator("#summary")
    await expect(summary).to_contain_text("Count must be at most 5")
    await expect(summary).to_contain_text("Weight must be more than 0")
    await expect(count).to_be_focused()  # the first problem

    await count.fill("0")
    await expect(error_beside(page, "Count *")).to_have_text("Count must be at least 1")
    await count.fill("2.5")
    await expect(error_beside(page, "Count *")).to_have_text("Count must be a whole number")
    await weight.fill("1.25")
    await expect(error_beside(page, "Weight *")).to_have_text("Weight must be a multiple of 0.5")
    await resume(page)
    await expect(summary).to_contain_text("Weight must be a multiple of 0.5")
    assert posts == []  # nothing went to the server while there were problems

    await count.fill("3")
    await weight.fill("2.5")
    await expect(error_beside(page, "Count *")).to_be_hidden()
    await expect(error_beside(page, "Weight *")).to_be_hidden()
    await expect(summary).to_be_hidden()
    await resume_and_receive(page, received, Dose(count=3, weight=2.5))
    assert len(posts) == 1


# -- 3. checkbox --------------------------------------------------------------------------


class Consent(RunInput):
    approved: bool = Field(default=False, title="Approved", description="Tick to approve.")
    notify: bool = Field(default=True, title="Notify the team")
    urgent: bool = Field(title="Urgent")


async def test_checkboxes(page: Page) -> None:
    received, _ = await open_form(page, Consent)
    approved = page.get_by_label("Approved", exact=True)
    notify = page.get_by_label("Notify the team", exact=True)
    for box in (approved, notify):
        await expect(box).to_have_attribute("type", "checkbox")
    await expect(approved).not_to_be_checked()
    await expect(notify).to_be_checked()  # its default
    # Without a default the answer is a choice to make, not an unticked box.
    urgent = page.get_by_role("radiogroup", name="Urgent")
    await expect(urgent.get_by_role("radio")).to_have_count(2)
    await expect(urgent.get_by_role("radio", checked=True)).to_have_count(0)

    await approved.check()
    await notify.uncheck()
    await urgent.get_by_role("radio", name="Yes").check()
    await urgent.get_by_role("radio", name="No").check()
    await resume_and_receive(page, received, Consent(approved=True, notify=False, urgent=False))


# -- 4. select ----------------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Pick(RunInput):
    size: Literal["small", "medium", "large"] = Field(title="Size", description="Fits small.")
    colour: Colour = Field(title="Colour", description="In stock today.")
    fit: Literal["slim", "regular"] = Field(default="regular", title="Fit")


async def test_selects_for_a_literal_and_an_enum(page: Page) -> None:
    received, posts = await open_form(page, Pick)
    size = page.get_by_label("Size *", exact=True)
    colour = page.get_by_label("Colour *", exact=True)
    fit = page.get_by_label("Fit", exact=True)  # it has a default: not marked required
    await expect(size.locator("option")).to_have_text(["Choose…", "small", "medium", "large"])
    await expect(colour.locator("option")).to_have_text(["Choose…", "red", "green", "blue"])
    await expect(fit.locator("option")).to_have_text(["slim", "regular"])
    await expect(fit.locator("option:checked")).to_have_text("regular")  # its default
    await expect(page.get_by_text("In stock today.")).to_be_visible()

    await resume(page)
    await expect(error_beside(page, "Size *")).to_have_text("Size is required: choose one")
    await expect(error_beside(page, "Colour *")).to_have_text("Colour is required: choose one")
    assert posts == []

    await size.select_option(label="large")
    await colour.select_option(label="green")
    await expect(page.locator("#summary")).to_be_hidden()
    await resume_and_receive(page, received, Pick(size="large", colour=Colour.GREEN, fit="regular"))


# -- 5. list ------------------------------------------------------------------------------


class Tagging(RunInput):
    tags: list[str] = Field(
        title="Tags", description="One to three words.", min_length=1, max_length=3
    )


async def test_a_list_with_bounds_adds_and_removes_rows(page: Page) -> None:
    received, posts = await open_form(page, Tagging)
    tags = group(page, "Tags")
    await expect(tags.get_by_text("One to three words.")).to_be_visible()
    await expect(tags.locator("li.row")).to_have_count(0)
    await resume(page)
    await expect(group_error(page, "Tags")).to_have_text("Tags needs at least 1 item")
    await expect(page.locator("#summary")).to_contain_text("Tags needs at least 1 item")
    assert posts == []

    add = tags.get_by_role("button", name="Add")
    for n, word in enumerate(["red", "green", "blue", "black"], start=1):
        await add.click()
        item = page.get_by_label(f"Tags item {n}", exact=True)
        await expect(item).to_be_focused()
        await item.fill(word)
    await expect(group_error(page, "Tags")).to_have_text("Tags takes at most 3 items")
    await resume(page)
    await expect(page.locator("#summary")).to_contain_text("Tags takes at most 3 items")
    assert posts == []

    await page.get_by_role("button", name="Remove Tags item 2", exact=True).click()
    await expect(group_error(page, "Tags")).to_be_hidden()
    # The rows after the removed one are numbered again.
    await expect(page.get_by_label("Tags item 2", exact=True)).to_have_value("blue")
    await expect(page.get_by_label("Tags item 3", exact=True)).to_have_value("black")
    await expect(page.get_by_label("Tags item 4", exact=True)).to_have_count(0)
    await page.get_by_role("button", name="Remove Tags item 3", exact=True).click()
    await add.click()
    await page.get_by_label("Tags item 3", exact=True).fill("white")
    await resume_and_receive(page, received, Tagging(tags=["red", "blue", "white"]))


class Stop(BaseModel):
    # A Python-only pattern: the browser cannot check it, so only the server's 422 can.
    code: str = Field(title="Code", pattern=r"^(?P<code>[A-Z]{3})$")


class Route(RunInput):
    stops: list[Stop] = Field(title="Stops")


async def test_server_errors_follow_rows_that_moved_up(page: Page) -> None:
    received, posts = await open_form(page, Route)
    stops = group(page, "Stops")
    add = stops.get_by_role("button", name="Add")
    for code in ["AMS", "ber", "cdg"]:
        await add.click()
        await stops.locator("li.row").last.get_by_label("Code").fill(code)
    await page.get_by_role("button", name="Remove Stops item 1", exact=True).click()
    await resume(page)  # the server refuses both codes, by their position now
    wrong = "Code does not have the expected form"
    await expect(page.locator("#summary li")).to_have_text(
        [f"Stops item 1 \u203a {wrong}", f"Stops item 2 \u203a {wrong}"]
    )
    rows = stops.locator("li.row")
    await expect(rows.nth(0).get_by_label("Code")).to_have_value("ber")
    await expect(rows.nth(0).locator(".field .field-error")).to_have_text(wrong)
    await expect(rows.nth(1).locator(".field .field-error")).to_have_text(wrong)
    await rows.nth(0).get_by_label("Code").fill("BER")
    await rows.nth(1).get_by_label("Code").fill("CDG")
    expected = Route(stops=[Stop(code="BER"), Stop(code="CDG")])
    await resume_and_receive(page, received, expected)
    assert len(posts) == 2


# -- 6. nested model ----------------------------------------------------------------------


class Address(BaseModel):
    street: str = Field(title="Street", min_length=1)
    postcode: str = Field(title="Postcode", description="Five digits.", pattern=r"^\d{5}$")


class Shipping(RunInput):
    recipient: str = Field(title="Recipient")
    address: Address = Field(title="Ship to", description="Where the parcel goes.")


async def test_a_nested_model_with_a_pattern(page: Page) -> None:
    received, posts = await open_form(page, Shipping)
    ship_to = group(page, "Ship to")
    await expect(ship_to.get_by_text("Where the parcel goes.")).to_be_visible()
    await page.get_by_label("Recipient", exact=True).fill("Ada Lovelace")
    await ship_to.get_by_label("Street *", exact=True).fill("12 Analytical Row")
    await ship_to.get_by_label("Postcode", exact=True).fill("12a45")
    await expect(error_beside(page, "Postcode")).to_have_text(
        "Postcode does not have the expected form: Five digits"
    )
    await ship_to.get_by_label("Street *", exact=True).fill("")
    await expect(error_beside(page, "Street *")).to_have_text("Street must not be empty")
    await resume(page)
    await expect(page.locator("#summary li")).to_have_count(2)
    assert posts == []

    await ship_to.get_by_label("Street *", exact=True).fill("12 Analytical Row")
    await ship_to.get_by_label("Postcode", exact=True).fill("12345")
    await expect(error_beside(page, "Postcode")).to_be_hidden()
    expected = Shipping(
        recipient="Ada Lovelace", address=Address(street="12 Analytical Row", postcode="12345")
    )
    await resume_and_receive(page, received, expected)


# -- 7. optional --------------------------------------------------------------------------


class Extras(RunInput):
    nickname: str | None = Field(default=None, title="Nickname")
    age: int | None = Field(default=None, title="Age", ge=0)
    limit: int | None = Field(default=10, title="Limit", description="Clear it for no limit.")
    comment: str | None = Field(default=None, title="Comment")


async def test_optional_fields_left_empty_send_none(page: Page) -> None:
    received, posts = await open_form(page, Extras)
    await expect(page.get_by_label("Limit", exact=True)).to_have_value("10")
    # "Clear it for no limit." already says what empty means: no second hint beside it.
    await expect(page.locator(".field .hint", has_text="Leave empty for none.")).to_have_count(3)
    await page.get_by_label("Age", exact=True).fill("7")
    await page.get_by_label("Age", exact=True).fill("")
    await page.get_by_label("Limit", exact=True).fill("")
    await page.get_by_label("Comment", exact=True).fill("none of it")
    await resume_and_receive(
        page, received, Extras(nickname=None, age=None, limit=None, comment="none of it")
    )
    sent = {"nickname": None, "age": None, "limit": None, "comment": "none of it"}
    assert posts[0].post_data_json == {"input": sent}


class Gift(RunInput):
    giver: str = Field(title="From")
    billing: Address | None = None  # no title of its own: labelled by its name, not "Address"


async def test_an_optional_nested_model_is_filled_in_only_when_asked(page: Page) -> None:
    received, posts = await open_form(page, Gift)
    billing = group(page, "Billing")
    fill_in = billing.get_by_label("Fill in Billing")
    await expect(fill_in).not_to_be_checked()
    await expect(billing.get_by_label("Street *", exact=True)).to_be_hidden()
    await page.get_by_label("From", exact=True).fill("Grace")
    await resume_and_receive(page, received, Gift(giver="Grace", billing=None))
    assert posts[0].post_data_json == {"input": {"giver": "Grace", "billing": None}}

    received, posts = await open_form(page, Gift)
    billing = group(page, "Billing")
    await page.get_by_label("From", exact=True).fill("Ada")
    await billing.get_by_label("Fill in Billing").check()
    await billing.get_by_label("Street *", exact=True).fill("1 Loop Lane")
    await billing.get_by_label("Postcode", exact=True).fill("1234")
    await resume(page)
    await expect(page.locator("#summary")).to_contain_text("Billing \u203a Postcode does not have")
    assert posts == []
    await billing.get_by_label("Postcode", exact=True).fill("12345")
    expected = Gift(giver="Ada", billing=Address(street="1 Loop Lane", postcode="12345"))
    await resume_and_receive(page, received, expected)


# -- 8. dates -----------------------------------------------------------------------------


class Delivery(RunInput):
    day: datetime.date = Field(title="Delivery date", description="Any weekday.")
    call_at: datetime.datetime | None = Field(default=None, title="Call me at")
    reminder: datetime.datetime | None = Field(default=None, title="Reminder")


async def test_a_date_and_an_optional_datetime(page: Page) -> None:
    received, posts = await open_form(page, Delivery)
    day = page.get_by_label("Delivery date *", exact=True)
    call_at = page.get_by_label("Call me at", exact=True)
    await expect(day).to_have_attribute("type", "date")
    await expect(call_at).to_have_attribute("type", "datetime-local")
    await resume(page)
    await expect(error_beside(page, "Delivery date *")).to_have_text(
        "Delivery date is required: pick a date"
    )
    assert posts == []

    await day.fill("2026-12-24")
    await call_at.fill("2026-12-24T18:30")
    # The person typed their local time; the flow gets that moment (timezone-aware).
    offset = await page.evaluate("new Date(2026, 11, 24, 18, 30).getTimezoneOffset()")
    moment = datetime.datetime(2026, 12, 24, 18, 30, tzinfo=datetime.UTC)
    expected = Delivery(
        day=datetime.date(2026, 12, 24),
        call_at=moment + datetime.timedelta(minutes=offset),
        reminder=None,
    )
    await resume_and_receive(page, received, expected)


# -- 9. dict ------------------------------------------------------------------------------


class Scores(RunInput):
    scores: dict[str, int] = Field(title="Scores", description="Points per player.")


async def test_a_dict_of_key_value_rows(page: Page) -> None:
    received, posts = await open_form(page, Scores)
    scores = group(page, "Scores")
    await expect(scores.get_by_text("Points per player.")).to_be_visible()
    add = scores.get_by_role("button", name="Add an entry")
    keys = scores.get_by_label("Scores key", exact=True)

    await add.click()
    await expect(keys.nth(0)).to_be_focused()
    await keys.nth(0).fill("ada")
    await page.get_by_label('Scores "ada"').fill("12")
    await add.click()
    await keys.nth(1).fill("bob")
    bob = page.get_by_label('Scores "bob"')
    await bob.press_sequentially("7e")  # not a number
    await expect(error_beside(page, 'Scores "bob" *')).to_have_text(
        'Scores "bob" must be a whole number'
    )
    await resume(page)
    await expect(page.locator("#summary")).to_contain_text('Scores "bob" must be a whole number')
    assert posts == []
    await bob.fill("7")
    await expect(page.locator("#summary")).to_be_hidden()

    await add.click()
    await keys.nth(2).fill("cy")
    await resume(page)  # a key without a value is not dropped silently
    await expect(page.locator("#summary")).to_contain_text('Scores "cy" is required')
    await keys.nth(2).fill("ada")
    await page.get_by_label('Scores "ada"').nth(1).fill("3")
    await expect(group_error(page, "Scores")).to_have_text('Scores has the key "ada" twice')
    await resume(page)
    await expect(page.locator("#summary")).to_contain_text('Scores has the key "ada" twice')
    assert posts == []

    await scores.get_by_role("button", name="Remove Scores entry").nth(2).click()
    await expect(group_error(page, "Scores")).to_be_hidden()
    await expect(keys).to_have_count(2)
    await resume_and_receive(page, received, Scores(scores={"ada": 12, "bob": 7}))


# -- 10. default_factory ------------------------------------------------------------------


class Labels(RunInput):
    tags: list[str] = Field(default_factory=lambda: ["urgent", "billing"], title="Tags")
    limits: dict[str, int] = Field(default_factory=lambda: {"daily": 5}, title="Limits")


async def test_default_factory_values_are_shown(page: Page) -> None:
    received, _ = await open_form(page, Labels)
    await expect(group(page, "Tags").locator("li.row")).to_have_count(2)
    await expect(page.get_by_label("Tags item 1", exact=True)).to_have_value("urgent")
    await expect(page.get_by_label("Tags item 2", exact=True)).to_have_value("billing")
    await expect(page.get_by_label("Limits key", exact=True)).to_have_value("daily")
    await expect(page.get_by_label('Limits "daily"')).to_have_value("5")

    await group(page, "Tags").get_by_role("button", name="Add").click()
    await page.get_by_label("Tags item 3", exact=True).fill("vip")
    await resume_and_receive(
        page, received, Labels(tags=["urgent", "billing", "vip"], limits={"daily": 5})
    )


# -- 11. wait_for_input=str -------------------------------------------------------------


async def test_a_plain_str_input_is_labelled_your_answer(page: Page) -> None:
    received, _ = await open_form(page, str)
    await expect(page.locator("#fields label")).to_have_text("Your answer")
    await expect(page.get_by_label("Value")).to_have_count(0)
    await page.get_by_label("Your answer", exact=True).fill("Ship it")
    await resume_and_receive(page, received, "Ship it")


# -- 12. the flow's own validator ---------------------------------------------------------


async def test_the_flows_validator_rejects_and_the_form_comes_back(page: Page) -> None:
    run_id = await start_paused(shirt)
    await page.goto(f"/runs/{run_id}")
    await expect(page.locator("#rejection")).to_be_hidden()
    await page.get_by_label("Size *", exact=True).select_option(label="small")
    await page.get_by_label("Color *", exact=True).select_option(label="green")
    await resume(page)  # the schema takes it; the flow's validator does not

    await expect(page.locator("#notice")).to_contain_text("The flow did not accept that input")
    rejection = page.locator("#rejection")
    await expect(rejection).to_contain_text("Green is only in stock for medium, large and XL.")
    await expect(page.locator("#logs")).to_contain_text("Invalid order")
    size = page.get_by_label("Size *", exact=True)
    await expect(size.locator("option:checked")).to_have_text("small")  # what was sent
    await size.select_option(label="medium")
    await page.get_by_label("Color *", exact=True).select_option(label="green")
    await resume(page)
    await expect(page.locator("#notice")).to_contain_text("The flow has your input")
    await expect(page.locator("#state")).to_have_text("Completed")
    await expect(page.locator("#logs")).to_contain_text("Ordered a medium green shirt")
    await expect(page.locator("#resume")).to_be_hidden()


# -- 13. the server's refusal, beside the field ------------------------------------------


class Office(BaseModel):
    # Python's named-group syntax: the browser cannot compile this pattern, the server can.
    extension: str = Field(title="Extension", pattern=r"^(?P<ext>\d{2,4})$")


class Contact(RunInput):
    phone: str = Field(title="Phone", pattern=r"^(?P<exchange>\d{3})-\d{4}$")
    office: Office = Field(title="Office")


async def test_the_servers_schema_errors_appear_beside_the_fields(page: Page) -> None:
    received, posts = await open_form(page, Contact)
    phone = page.get_by_label("Phone", exact=True)
    extension = page.get_by_label("Extension", exact=True)
    await phone.fill("5551234")
    await extension.fill("x12")
    await expect(error_beside(page, "Phone")).to_be_hidden()  # the browser cannot tell
    await resume(page)

    phone_error = "Phone does not have the expected form"
    extension_error = "Extension does not have the expected form"
    await expect(error_beside(page, "Phone")).to_have_text(phone_error)
    await expect(error_beside(page, "Extension")).to_have_text(extension_error)
    # The summary names a nested field with its group.
    summary = [phone_error, f"Office \u203a {extension_error}"]
    await expect(page.locator("#summary li")).to_have_text(summary)
    await expect(phone).to_be_focused()
    refused = await posts[0].response()
    assert len(posts) == 1 and refused is not None and refused.status == 422

    await phone.fill("555-1234")
    await expect(error_beside(page, "Phone")).to_be_hidden()  # typing clears it
    await extension.fill("12")
    await expect(page.locator("#summary")).to_be_hidden()
    expected = Contact(phone="555-1234", office=Office(extension="12"))
    await resume_and_receive(page, received, expected)
    assert len(posts) == 2
