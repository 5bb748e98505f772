"""Input models of the seed, shared by tests."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hitl_bus import RunInput


class UserName(RunInput):
    name: str = Field(description="What people call you")


class ShirtOrder(RunInput):
    size: Literal["small", "medium", "large", "xlarge"]
    color: Literal["red", "green", "black"]

    @model_validator(mode="after")
    def in_stock(self) -> ShirtOrder:
        if self.color == "green" and self.size == "small":
            raise ValueError("Green is only in stock for medium, large and XL.")
        return self
