"""Friendly run names (``brave-otter``), so people can tell runs apart at a glance.

A name only tells runs apart for people (the run's id names it), so it is drawn from
Python's own generator, without the system call a secure choice costs on every run.
"""

from __future__ import annotations

import random

_ADJECTIVES = (
    "amber", "bold", "brave", "calm", "clever", "crimson", "daring", "eager", "fancy", "gentle",
    "golden", "happy", "jolly", "keen", "lively", "lucky", "mellow", "nimble", "polite", "proud",
    "quick", "quiet", "rapid", "silver", "steady", "sunny", "swift", "tidy", "vivid", "witty",
)  # fmt: skip
_ANIMALS = (
    "badger", "beaver", "bison", "crane", "dingo", "falcon", "ferret", "gecko", "heron", "ibis",
    "jackal", "koala", "lemur", "lynx", "marten", "moose", "newt", "ocelot", "otter", "panda",
    "puffin", "quokka", "raven", "salmon", "seal", "tapir", "toucan", "walrus", "wombat", "yak",
)  # fmt: skip


def new_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}"
