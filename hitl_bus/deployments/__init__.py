"""Deployments and workers: flows served by processes, started with ``run_deployment``."""

from hitl_bus.deployments.deployment import Deployment
from hitl_bus.deployments.flows import Flow, flow
from hitl_bus.deployments.registry import (
    DeploymentRecord,
    arun_deployment,
    read_deployment,
    register,
    run_deployment,
)
from hitl_bus.deployments.worker import Worker, serve

__all__ = [
    "Deployment",
    "DeploymentRecord",
    "Flow",
    "Worker",
    "arun_deployment",
    "flow",
    "read_deployment",
    "register",
    "run_deployment",
    "serve",
]
