"""axe-core finds no serious or critical accessibility violation on the pages a person uses.

The runs page, a run page, and a Resume form holding every kind of control the form draws.
"""

from __future__ import annotations

import datetime
import enum
from typing import Any, Literal

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, expect
from pydantic import BaseModel, Field

from hitl_bus import RunInput, flow, pause_flow_run
from tests.helpers import start_paused


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str = Field(title="Street")
    city: str = Field(title="City")


class EveryControl(RunInput):
    """Every control type the form draws."""

    name: str = Field(title="Name", description="Who answers")
    note: str = Field("", title="Note", max_length=200)
    count: int = Field(1, title="Count", ge=1, le=10)
    weight: float = Field(2.5, title="Weight")
    approve: bool = Field(title="Approve")
    notify: bool = Field(False, title="Notify")
    size: Literal["small", "large"] = Field(title="Size")
    colour: Colour = Field(Colour.RED, title="Colour")
    tags: list[str] = Field(default_factory=list, title="Tags")
    address: Address = Field(title="Address")
    scores: dict[str, int] = Field(default_factory=dict, title="Scores")
    code: str = Field("ABC-123", title="Code", pattern=r"^[A-Z]{3}-\d{3}$")
    day: datetime.date = Field(title="Day")
    at: datetime.datetime | None = Field(None, title="At")


async def serious(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations of impact serious or critical on the page as it stands."""
    results = await Axe().run(page)
    found = results.response["violations"]
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["html"] for n in v["nodes"][:3]]}
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture
async def paused_run() -> str:
    @flow(name="every-control")
    async def every_control() -> None:
        await pause_flow_run(
            wait_for_input=EveryControl.with_initial_data(description="# Check\nAll of it."),
            timeout=600,
        )

    return await start_paused(every_control)


async def test_the_runs_page_has_no_serious_violation(page: Page, paused_run: str) -> None:
    await page.goto("/")
    await expect(page.locator("table.runs")).to_contain_text("every-control")
    assert await serious(page) == []


async def test_a_run_page_with_a_form_of_every_control_has_no_serious_violation(
    page: Page, paused_run: str
) -> None:
    await page.goto(f"/runs/{paused_run}")
    await expect(page.locator("#resume")).to_be_visible()
    assert await serious(page) == []
    await page.get_by_role("button", name="Resume").click()  # every problem shown
    assert await serious(page) == []
