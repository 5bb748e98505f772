"""A deployment: a named way to run a flow, served by workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hitl_bus.engine.flows import Flow


@dataclass(frozen=True)
class Deployment:
    """A named way to run a flow: ``<flow name>/<deployment name>`` with default parameters.

    :ivar retries: how many times a run whose worker died is run again before it is Crashed.
    """

    flow: Flow[Any, Any]
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    retries: int = 0

    @property
    def full_name(self) -> str:
        return f"{self.flow.name}/{self.name}"
