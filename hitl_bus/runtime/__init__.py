"""Facts about the code's current run, under Prefect's names (``runtime.flow_run.id``)."""

from hitl_bus.runtime import flow_run as flow_run

__all__ = ["flow_run"]
