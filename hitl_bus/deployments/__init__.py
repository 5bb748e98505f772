"""Deployments and workers: flows served by processes, started with ``run_deployment``."""

from hitl_bus.deployments.registry import (
    DeploymentRecord,
    arun_deployment,
    read_deployment,
    register,
    run_deployment,
)
from hitl_bus.deployments.worker import Worker, serve
from hitl_bus.engine.flows import Deployment, set_serve_hook


def _serve_one(deployment: Deployment, **options: object) -> None:
    serve(deployment, **options)  # type: ignore[arg-type]


set_serve_hook(_serve_one)

__all__ = [
    "Deployment",
    "DeploymentRecord",
    "Worker",
    "arun_deployment",
    "read_deployment",
    "register",
    "run_deployment",
    "serve",
]
