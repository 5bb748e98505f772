"""The send box, the chat and errors that name no field, as a person meets them.

Each test drives the run page as a person would (typing, choosing, pressing Send or
Resume, reloading) and reads what the page says.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated

from playwright.async_api import Locator, Page, Route, expect
from pydantic import BaseModel, Field

from examples.monitoring import monitor
from hitl_bus import RunInput, flow, get_client, start_flow_run
from hitl_bus.input.run_input import receive_input
from tests.browser.test_resume_form import error_beside, group, open_form, resume
from tests.helpers import eventually


def bubbles(page: Page) -> Locator:
    return page.locator("#conversation li")


async def receiving(run_id: object, prefix: str) -> None:
    """Until the run has announced it receives on ``prefix`` (so its page offers the box)."""

    async def announced() -> bool:
        return prefix in await get_client().read_receivers(str(run_id))

    await eventually(announced, timeout=20)


# -- the send box says what happened to each input -----------------------------------------


async def test_an_input_waiting_for_the_flow_is_delivered_until_it_is_taken(page: Page) -> None:
    gate = asyncio.Event()

    @flow(name="two-step-reader")
    async def two_step() -> None:
        inputs = receive_input(str, timeout=60)
        await inputs.next()  # the first opens the send box
        await gate.wait()
        await inputs.next()

    run = await start_flow_run(two_step)
    await receiving(run.id, "str-auto")
    await page.goto(f"/runs/{run.id}")
    box = page.locator('form.send-form[data-prefix="str-auto"]')
    await box.get_by_label("Message").fill("first")
    await box.get_by_role("button", name="Send").click()
    first = page.locator(".say-you", has_text="first")
    await expect(first.locator(".status")).to_have_text("Taken by the flow")
    await box.get_by_label("Message").fill("second")
    await box.get_by_role("button", name="Send").click()
    second = page.locator(".say-you", has_text="second")
    await expect(second.locator(".status")).to_have_text("Delivered")
    await asyncio.sleep(0.3)
    await expect(second.locator(".status")).to_have_text("Delivered")  # stored, not yet read
    gate.set()
    await expect(second.locator(".status")).to_have_text("Taken by the flow")
    await page.reload()  # the outcome is read back from the run's events
    await expect(page.locator(".say-you", has_text="second").locator(".status")).to_have_text(
        "Taken by the flow"
    )


async def test_a_threshold_the_monitor_ignores_says_why(page: Page) -> None:
    run = await start_flow_run(monitor, checks=600, interval=0.1)
    await receiving(run.id, "thresholdupdate-auto")
    try:
        await page.goto(f"/runs/{run.id}")
        box = page.locator('form.send-form[data-prefix="thresholdupdate-auto"]')
        await expect(box).to_contain_text("Threshold update")
        await expect(box).not_to_contain_text("thresholdupdate-auto")
        await box.get_by_label("Metric").select_option(label="cpu")
        await box.get_by_label("Threshold").fill("150")
        await box.get_by_role("button", name="Send").click()
        refused = page.locator(".say-you").last
        await expect(refused).to_contain_text("metric: cpu · threshold: 150")
        await expect(refused.locator(".status")).to_have_text(
            "Not taken: cpu is a percentage; use a threshold up to 100"
        )
        await box.get_by_label("Threshold").fill("80")
        await box.get_by_role("button", name="Send").click()
        taken = page.locator(".say-you").last
        await expect(taken).to_contain_text("threshold: 80")
        await expect(taken.locator(".status")).to_have_text("Taken by the flow")
        await page.reload()
        await expect(page.locator(".say-you .status")).to_have_text(
            ["Not taken: cpu is a percentage; use a threshold up to 100", "Taken by the flow"]
        )
    finally:
        await get_client().cancel_flow_run(run.id)


# -- the chat is a conversation, kept in order and across a reload --------------------------


@flow(name="echo-greeter")
async def echo_greeter() -> None:
    async for name in receive_input(str, with_metadata=True, timeout=60):
        if name.value == "bye":
            return
        await name.respond(f"Hello, {name.value}!")


async def _slow_send_replies(route: Route) -> None:
    """The send's answer comes late: the flow's reply reaches the page first."""
    response = await route.fetch()
    await asyncio.sleep(0.4)
    await route.fulfill(response=response)


async def test_a_reply_appears_below_the_message_it_answers(page: Page) -> None:
    run = await start_flow_run(echo_greeter)
    await receiving(run.id, "str-auto")
    await page.route(re.compile(r".*/api/runs/[^/]+/input$"), _slow_send_replies)
    await page.goto(f"/runs/{run.id}")
    box = page.locator('form.send-form[data-prefix="str-auto"]')
    await expect(box).to_contain_text("Text")
    await expect(box).not_to_contain_text("str-auto")
    await expect(box).not_to_contain_text("Input type")
    for name in ("Ada", "Grace"):
        await box.get_by_label("Message").fill(name)
        await box.get_by_role("button", name="Send").click()
        await expect(page.locator(".say-you", has_text=name)).to_have_count(1)
        await expect(page.locator(".say-run", has_text=f"Hello, {name}!")).to_have_count(1)
    expected = [
        re.compile(r"^You\s+Ada"),
        re.compile(r"^Run\s+Hello, Ada!"),
        re.compile(r"^You\s+Grace"),
        re.compile(r"^Run\s+Hello, Grace!"),
    ]
    await expect(bubbles(page)).to_have_text(expected)

    await page.unroute_all(behavior="wait")  # the last late answer is in before the reload
    await page.reload()  # the conversation is read back from the run
    await expect(bubbles(page)).to_have_text(expected)


class Pet(BaseModel):
    name: str
    age: int


class PetCard(RunInput):
    name: str
    age: int


async def test_model_inputs_and_replies_are_shown_as_their_fields(page: Page) -> None:
    @flow(name="pet-registry")
    async def registry() -> None:
        async for pet in receive_input(PetCard, timeout=60):
            await pet.respond(Pet(name=pet.name.upper(), age=pet.age + 1))
            return

    run = await start_flow_run(registry)
    await receiving(run.id, "petcard-auto")
    await page.goto(f"/runs/{run.id}")
    box = page.locator('form.send-form[data-prefix="petcard-auto"]')
    await expect(box).to_contain_text("Pet card")
    await box.get_by_label("Name").fill("Ada")
    await box.get_by_label("Age").fill("3")
    await box.get_by_role("button", name="Send").click()
    await expect(bubbles(page)).to_have_text(
        [re.compile(r"^You\s+name: Ada · age: 3"), re.compile(r"^Run\s+name: ADA · age: 4$")]
    )
    await expect(page.locator("#conversation")).not_to_contain_text("{")
    await page.reload()
    await expect(bubbles(page)).to_have_text(
        [re.compile(r"^You\s+name: Ada · age: 3"), re.compile(r"^Run\s+name: ADA · age: 4$")]
    )


# -- errors that find no field --------------------------------------------------------------


class Visits(RunInput):
    visits: dict[str, int] = Field(title="Visits", description="Visitors per city.")


async def test_a_server_error_inside_a_dict_value_marks_that_row(page: Page) -> None:
    received, _ = await open_form(page, Visits)

    async def lots(route: Route) -> None:  # what reaches the server is not what was typed
        await route.continue_(post_data=json.dumps({"input": {"visits": {"berlin": "lots"}}}))

    await page.route(re.compile(r".*/resume$"), lots)
    visits = group(page, "Visits")
    await visits.get_by_role("button", name="Add an entry").click()
    await visits.get_by_label("Visits key", exact=True).fill("berlin")
    await page.get_by_label('Visits "berlin"').fill("12")
    await resume(page)
    field = page.get_by_label('Visits "berlin"')
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(error_beside(page, 'Visits "berlin" *')).to_have_text(
        "berlin: must be a whole number"
    )
    await expect(page.locator("#summary")).to_contain_text("berlin: must be a whole number")
    await expect(field).to_be_focused()
    assert received == []


class Stock(RunInput):
    stock: dict[
        Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="Three capital letters.")], int
    ] = Field(title="Stock", description="Units per warehouse code.")
    shelves: dict[Annotated[str, Field(min_length=2)], int] = Field(
        default_factory=dict, title="Shelves"
    )


async def test_a_dict_with_key_rules_has_rows_and_checks_the_keys(page: Page) -> None:
    received, posts = await open_form(page, Stock)
    await expect(page.get_by_text("Any JSON value")).to_have_count(0)
    stock = group(page, "Stock")
    await stock.get_by_role("button", name="Add an entry").click()
    key = stock.get_by_label("Stock key", exact=True)
    await key.fill("lon")
    await page.get_by_label('Stock "lon"').fill("4")
    await resume(page)
    assert posts == []
    await expect(page.locator("#summary")).to_contain_text(
        'Stock key "lon" does not have the expected form'
    )
    await expect(key).to_be_focused()
    await expect(page.locator("#summary")).not_to_contain_text("[A-Z]")
    await key.fill("LON")
    shelves = group(page, "Shelves")
    await shelves.get_by_role("button", name="Add an entry").click()
    await shelves.get_by_label("Shelves key", exact=True).fill("a")
    await page.get_by_label('Shelves "a"').fill("1")
    await resume(page)
    await expect(page.locator("#summary")).to_contain_text(
        'Shelves key "a" needs at least 2 characters'
    )
    assert posts == []
    await shelves.get_by_label("Shelves key", exact=True).fill("a1")
    await resume(page)
    await expect(page.locator("#notice")).to_contain_text("The flow has your input")
    assert [r.model_dump() for r in received] == [{"stock": {"LON": 4}, "shelves": {"a1": 1}}]


async def test_a_send_box_error_inside_a_dict_value_marks_that_row(page: Page) -> None:
    @flow(name="city-counts")
    async def counts() -> None:
        async for _ in receive_input(dict[str, int], timeout=60):
            return

    run = await start_flow_run(counts)
    prefix = "dict-auto"
    await receiving(run.id, prefix)

    async def lots(route: Route) -> None:
        body = {"value": {"berlin": "lots"}, "key_prefix": prefix}
        await route.continue_(post_data=json.dumps(body))

    await page.route(re.compile(r".*/input$"), lots)
    await page.goto(f"/runs/{run.id}")
    box = page.locator(f'form.send-form[data-prefix="{prefix}"]')
    await box.get_by_role("button", name="Add an entry").click()
    await box.get_by_label("Message key", exact=True).fill("berlin")
    field = box.get_by_label('Message "berlin"')
    await field.fill("12")
    await box.get_by_role("button", name="Send").click()
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(
        box.locator(".field", has=page.get_by_label('Message "berlin"')).locator(".field-error")
    ).to_have_text("berlin: must be a whole number")
    await expect(page.locator(".say-you")).to_have_count(0)
