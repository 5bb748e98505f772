"""Prefect's ``prefect.flow_runs``: pause, suspend, resume and wait for flow runs.

Re-exports; each name is defined in :mod:`hitl_bus.engine`.
"""

from hitl_bus.engine.pausing import (
    apause_flow_run,
    asuspend_flow_run,
    pause_flow_run,
    suspend_flow_run,
)
from hitl_bus.engine.resuming import aresume_flow_run, resume_flow_run
from hitl_bus.engine.runs import await_for_flow_run, wait_for_flow_run

__all__ = [
    "apause_flow_run",
    "aresume_flow_run",
    "asuspend_flow_run",
    "await_for_flow_run",
    "pause_flow_run",
    "resume_flow_run",
    "suspend_flow_run",
    "wait_for_flow_run",
]
