"""How a delivery is tried: bounded tries with exponential backoff (tenacity).

A failure that another try may cure (a network error, a timeout, an HTTP 408,
429 or 5xx, an SMTP 4xx) is tried again after ``backoff`` seconds, doubling up
to ``max_backoff``, plus up to ``backoff`` at random so notifiers retrying together spread out; any
other failure is final at once. After ``attempts`` tries the delivery is parked
as a dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a delivery is tried before it is parked."""

    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0


class DeliveryFailed(Exception):
    """A delivery failed for good (this try, or after every try)."""

    #: The tries made before it was given up.
    tries: int = 1


class TryAgain(DeliveryFailed):
    """A try failed in a way another try may cure."""


def retrying(policy: RetryPolicy) -> AsyncRetrying:
    """``async for attempt in retrying(policy): with attempt: ...`` tries per the policy;
    the last failure is raised as is."""
    return AsyncRetrying(
        stop=stop_after_attempt(max(1, policy.attempts)),
        wait=wait_exponential(multiplier=policy.backoff, max=policy.max_backoff)
        + wait_random(0, policy.backoff),
        retry=retry_if_exception_type(TryAgain),
        reraise=True,
    )
