"""Input models of the seed, shared by tests (ShirtOrder is the example's own)."""

from __future__ import annotations

from pydantic import Field

from examples.shirt_order import ShirtOrder
from hitl_bus import RunInput

__all__ = ["ShirtOrder", "UserName"]


class UserName(RunInput):
    name: str = Field(description="What people call you")
