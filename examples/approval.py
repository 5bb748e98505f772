"""An approval step: an expense request waits for a person's decision on a described form.

    python examples/approval.py

The flow pauses with a Markdown description of the request and a typed form
(``ApprovalDecision``). The form's schema caps the approved amount at the
amount asked for, so ``resume_flow_run`` refuses a larger one before the run
sees it; the model's own validator (a rejection needs a reason) runs in the
flow after resume, and the flow asks again when it fails.

Here the "person" is code in the same script: it reads the pause as a form
would (description, fields, defaults), first answers with too much money,
is refused, then approves part of the request. A worker serves the flow as
``expense-approval/default`` (``python -m workers.examples``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pydantic
from pydantic import Field, ValidationError, model_validator

from hitl_bus import HitlClient, flow, start_flow_run  # all but flow: hitl_bus only
from hitl_bus.client.orchestration import get_client
from hitl_bus.exceptions import ResumeRejected
from hitl_bus.flow_runs import pause_flow_run, resume_flow_run
from hitl_bus.input import RunInput
from hitl_bus.logging import get_run_logger

POLICY_URL = "https://example.com/finance/expense-policy"
#: How long a request waits for a decision before the run fails.
DECISION_TIMEOUT = 24 * 3600.0
#: The cap of the base form; each request's form is capped at the amount asked.
LARGEST_EXPENSE = 1_000_000.0


def money(amount: float) -> str:
    """Dollars as people read them, the same in the description and the logs."""
    return f"${amount:,.2f}"


def _amount_field(limit: float) -> Any:
    """The approved-amount field capped at ``limit``; the cap lands in the form's schema."""
    return Field(
        None,
        title="Approved amount",
        description="Lower it to approve part of the request; empty approves all of it.",
        ge=0,
        le=limit,
    )


class ApprovalDecision(RunInput):
    """An approver's answer to one expense request."""

    approved: bool = Field(
        title="Approve",
        description="Yes approves the request; No rejects it (say why in the comment).",
    )
    approver: str = Field(
        min_length=1, title="Your name", description="Recorded with the decision."
    )
    approved_amount: float | None = _amount_field(LARGEST_EXPENSE)
    payout: Literal["payroll", "bank-transfer", "corporate-card"] = Field(
        "payroll", title="Pay out via", description="How the approved money reaches the requester."
    )
    comment: str = Field(
        "", title="Comment", description="Shown to the requester; needed when rejecting."
    )

    @model_validator(mode="after")
    def rejection_has_reason(self) -> ApprovalDecision:
        """A requester told "no" deserves to know why."""
        if not self.approved and not self.comment.strip():
            raise ValueError("Say in the comment why the request is rejected.")
        return self

    @classmethod
    def for_request(cls, amount: float, description: str) -> type[ApprovalDecision]:
        """The form for one request: amount capped at what was asked, prefilled with it."""
        capped: type[ApprovalDecision] = pydantic.create_model(
            cls.__name__, __base__=cls, approved_amount=(float | None, _amount_field(amount))
        )
        capped.__doc__ = cls.__doc__
        return capped.with_initial_data(description=description, approved_amount=amount)


def describe(amount: float, requester: str, purpose: str) -> str:
    """The Markdown the approver reads above the form."""
    return "\n".join(
        [
            f"### Expense request from {requester}: {money(amount)}",
            "",
            f"> {purpose}",
            "",
            f"- **Requester:** {requester}",
            f"- **Amount:** {money(amount)}",
            "- **Receipts:** attached to the request",
            f"- **Policy:** [expense policy]({POLICY_URL})",
            "",
            "Approve it in full, lower the amount to approve part of it, "
            "or reject it with a reason.",
        ]
    )


@flow
async def expense_approval(
    amount: float = 1250.0,
    requester: str = "Ada",
    purpose: str = "Conference trip: flight and two nights' hotel",
) -> ApprovalDecision:
    """Hold an expense request until a person decides on it; returns the decision."""
    if amount <= 0:
        raise ValueError(f"an expense request needs a positive amount, not {amount}")
    logger = get_run_logger()
    form = ApprovalDecision.for_request(amount, describe(amount, requester, purpose))
    logger.info("Waiting for a decision on %s for %s", money(amount), requester)
    while True:  # the model's validator runs here, after resume; ask again when it refuses
        try:
            decision: ApprovalDecision = await pause_flow_run(
                wait_for_input=form, timeout=DECISION_TIMEOUT
            )
        except ValidationError as exc:
            reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            logger.warning("Decision refused: %s", reason)
            continue
        break
    if decision.approved:
        granted = amount if decision.approved_amount is None else decision.approved_amount
        logger.info(
            "Approved %s of %s for %s by %s (payout: %s)",
            money(granted),
            money(amount),
            requester,
            decision.approver,
            decision.payout,
        )
    else:
        logger.info(
            "Rejected %s for %s by %s: %s",
            money(amount),
            requester,
            decision.approver,
            decision.comment,
        )
    return decision


async def main() -> str:
    """Start a request, answer its form as an approver would, print what happened."""
    client: HitlClient = get_client()
    run = await start_flow_run(expense_approval)
    run_id = str(run.id)
    await client.wait_for_flow_run(run_id, lambda s: s.is_paused(), timeout=30)
    pause = await client.read_pause(run_id)
    assert pause is not None and pause.schema_ is not None
    print(pause.description)
    print()
    for name, field in pause.schema_["properties"].items():
        default = f" [{pause.defaults[name]}]" if name in pause.defaults else ""
        print(f"{field['title']}{default}: {field['description']}")
    print()
    print("answering: approve $5,000.00")
    try:
        await resume_flow_run(
            run_id, {"approved": True, "approver": "Grace", "approved_amount": 5000}
        )
    except ResumeRejected as exc:
        print(f"refused: {exc}")
    print("answering: approve $1,000.00 by bank transfer")
    await resume_flow_run(
        run_id,
        {
            "approved": True,
            "approver": "Grace",
            "approved_amount": 1000,
            "payout": "bank-transfer",
            "comment": "The hotel is above the policy rate; the flight is fine.",
        },
    )
    state = (await client.wait_for_flow_run(run_id, timeout=30)).state
    for record in await client.read_logs(run_id):
        if record["message"].startswith(("Approved", "Rejected")):
            print(record["message"])
    print(f"run {state.name}")
    return state.name


if __name__ == "__main__":
    asyncio.run(main())
