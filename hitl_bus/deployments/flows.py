"""Flows that can be deployed: ``flow.to_deployment(...)``, ``flow.serve(...)``, ``Deployment``.

The engine's :class:`~hitl_bus.engine.flows.Flow` runs a function as a flow run; this
layer adds what serving needs, so the engine knows nothing of deployments or workers.
``hitl_bus.flow`` makes flows of this class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar, overload

from hitl_bus.deployments.deployment import Deployment
from hitl_bus.deployments.worker import serve
from hitl_bus.engine import flows as engine_flows

P = ParamSpec("P")
R = TypeVar("R")


class Flow(engine_flows.Flow[P, R]):
    """A function wrapped as a flow; call it to create and execute a run, or deploy it."""

    def to_deployment(
        self, name: str, parameters: dict[str, Any] | None = None, retries: int = 0
    ) -> Deployment:
        """Describe a deployment of this flow (served by a worker: ``serve(...)``).

        ``retries`` counts runs whose worker died (they are run again elsewhere); the
        flow's own ``retries`` counts failures of its body, within one execution.
        """
        return Deployment(self, name, dict(parameters or {}), retries)

    def serve(self, name: str, parameters: dict[str, Any] | None = None, **options: Any) -> None:
        """Serve one deployment of this flow in this process until stopped (Prefect's name)."""
        serve(self.to_deployment(name, parameters), **options)


@overload
def flow(fn: Callable[P, R], /) -> Flow[P, R]: ...
@overload
def flow(
    *,
    name: str | None = None,
    version: str | None = None,
    description: str | None = None,
    retries: int | None = None,
    retry_delay_seconds: float | Sequence[float] | None = None,
    timeout_seconds: float | None = None,
    validate_parameters: bool = True,
    persist_result: bool | None = None,
    log_prints: bool | None = None,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...
def flow(fn: Callable[P, R] | None = None, /, **options: Any) -> Any:
    """Make ``fn`` a flow: each call creates a run with states, logs and inputs.

    The options are Prefect's (see :class:`~hitl_bus.engine.flows.Flow`): ``retries``
    and ``retry_delay_seconds`` run a failing body again within the execution (a
    deployment's ``retries`` count worker crashes instead), ``timeout_seconds`` fails a
    try that runs too long, ``validate_parameters`` (on by default) coerces arguments to
    their annotations, ``log_prints`` sends ``print`` to the run log; ``version``,
    ``description`` and ``persist_result`` are kept as given.
    """
    if fn is None:
        return lambda f: Flow(f, **options)
    return Flow(fn, **options)
