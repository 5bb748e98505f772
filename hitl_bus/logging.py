"""Prefect's ``prefect.logging``: ``get_run_logger`` under Prefect's module path.

Re-exports; defined in :mod:`hitl_bus.engine.logger`.
"""

from hitl_bus.engine.logger import get_run_logger

__all__ = ["get_run_logger"]
