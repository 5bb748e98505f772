"""The worker behind the web UI's examples; serves:

- ``shirt/order``: pauses for a ``ShirtOrder`` (examples/shirt_order.py)
- ``expense-approval/default``: an expense request waiting on a described
  ``ApprovalDecision`` form (examples/approval.py)
- ``monitor/default``: ten minutes of metric checks whose thresholds change
  through ``ThresholdUpdate`` inputs (examples/monitoring.py)
- ``resumable/default``: handles ``str`` inputs, suspends, completes once
  resumed (examples/suspend_resume.py)

python -m workers.examples        # from the repository root

Every flow parameter has a default, so a run starts without any. The
resumable flow keeps the keys it handled in a ``JSONBlock``; this module saves
an empty one at start when there is none, since the flow only loads it.
"""

from __future__ import annotations

import contextlib

from examples.approval import expense_approval
from examples.monitoring import monitor
from examples.shirt_order import shirt
from examples.suspend_resume import BLOCK, resumable
from hitl_bus import serve
from hitl_bus.blocks import JSONBlock

order = shirt.to_deployment(name="order")
approval = expense_approval.to_deployment(name="default")
monitoring = monitor.to_deployment(name="default")
resumable_default = resumable.to_deployment(name="default")

DEPLOYMENTS: list[str] = [d.full_name for d in (order, approval, monitoring, resumable_default)]


def main() -> None:
    """Make sure the resumable flow's block exists, then serve until SIGTERM (drains)."""
    with contextlib.suppress(ValueError):  # already there: keep what earlier runs saw
        JSONBlock(value=[]).save(BLOCK)
    # Paused approvals and ten-minute monitors each hold a slot, so allow plenty.
    serve(order, approval, monitoring, resumable_default, concurrency=32)


if __name__ == "__main__":
    main()
