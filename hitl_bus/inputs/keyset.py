"""Naming inside the input layer: mailboxes, key prefixes, input keys, keysets."""

from __future__ import annotations

import functools
import re
import typing
import uuid
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict

from hitl_bus import keys
from hitl_bus.context import acting_as, current_run_id
from hitl_bus.ids import normalize_run_id, uuid4_text
from hitl_bus.people.roles import USER_PREFIX, check_name, person_of

_PREFIX_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
FLOW_RUN: Literal["flow-run"] = "flow-run"
CLIENT: Literal["client"] = "client"
USER: Literal["user"] = "user"


class Keyset(TypedDict):
    """The keys under which a pause keeps its response, schema and description (Prefect's)."""

    description: str
    response: str
    schema: str


def defaults_key(keyset: Keyset) -> str:
    """Where a pause keeps its form's defaults, beside the keyset's schema."""
    return keyset["schema"].removesuffix("-schema") + "-defaults"


def keyset_from_base_key(base_key: str) -> Keyset:
    """The keys of a pause's description, response and schema: ``<base_key>-<part>``."""
    return {
        "description": f"{base_key}-description",
        "response": f"{base_key}-response",
        "schema": f"{base_key}-schema",
    }


class _PauseDetails(Protocol):
    @property
    def pause_key(self) -> str | None: ...
    @property
    def run_input_keyset(self) -> dict[str, str] | None: ...


class _PausedState(Protocol):
    """What a keyset is named from: a paused state (the engine's ``State``)."""

    @property
    def name(self) -> str: ...
    @property
    def state_details(self) -> _PauseDetails: ...
    def is_paused(self) -> bool: ...


def pause_base_key(state_name: str, pause_key: str) -> str:
    """The base of a pause's keyset, named as Prefect does: ``paused-1``, ``suspended-2``."""
    return f"{state_name.lower()}-{pause_key}"


def keyset_from_paused_state(state: _PausedState) -> Keyset:
    """The keyset of a paused (or suspended) state's input: ``paused-<pause key>-...``.

    A state that records its keyset (every pause that asked for input does) gives
    that one, so a paused run whose worker died, and that now reads "Suspended",
    still names the keys its form was saved under.

    :raises RuntimeError: the state is not paused.
    """
    if not state.is_paused():
        raise RuntimeError(f"a {state.name!r} state has no pause keyset")
    recorded = state.state_details.run_input_keyset
    if recorded:
        return {
            "description": recorded["description"],
            "response": recorded["response"],
            "schema": recorded["schema"],
        }
    return keyset_from_base_key(pause_base_key(state.name, str(state.state_details.pause_key)))


@dataclass(frozen=True)
class Mailbox:
    """Where inputs can be delivered: a flow run, a client inbox outside any run, or a person.

    A person's mailbox (``hitl.user.<name>``, id: the name) needs no making: the first
    input sent to it makes it, so a reply to what a person sent always has somewhere
    to go. Its keys carry the tag ``{user:<name>}`` (:attr:`owner`).
    """

    kind: Literal["flow-run", "client", "user"]
    id: str

    @property
    def name(self) -> str:
        """The sender name stamped on inputs sent from here: ``hitl.<kind>.<id>``."""
        return f"hitl.{self.kind}.{self.id}"

    @property
    def owner(self) -> str:
        """The hash tag of this mailbox's keys: the run or inbox id, ``user:<name>``."""
        return keys.user_owner(self.id) if self.kind == USER else self.id

    @property
    def marker_key(self) -> str:
        """The key whose existence says this mailbox exists (a person's: made on first use)."""
        if self.kind == FLOW_RUN:
            return keys.run(self.id)
        return keys.user_mailbox(self.id) if self.kind == USER else keys.inbox(self.id)

    @classmethod
    def for_run(cls, flow_run_id: uuid.UUID | str) -> Mailbox:
        return cls(FLOW_RUN, normalize_run_id(flow_run_id))

    @classmethod
    def for_person(cls, name: str) -> Mailbox:
        """A person's mailbox, where replies to what they sent land.

        :raises ValueError: not a person's name.
        """
        return cls(USER, check_name(name))

    @classmethod
    def parse(cls, name: str | None) -> Mailbox | None:
        """The mailbox a sender name points to, or ``None`` when it is not answerable."""
        if not name or not name.startswith("hitl."):
            return None
        if name.startswith(USER_PREFIX):
            try:
                return cls.for_person(name[len(USER_PREFIX) :])
            except ValueError:
                return None
        for kind in (FLOW_RUN, CLIENT):
            head = f"hitl.{kind}."
            if name.startswith(head):
                try:
                    return cls(kind, str(uuid.UUID(name[len(head) :])))
                except ValueError:
                    return None
        return None


def current_actor(actor: str | None = None) -> str | None:
    """Who a resume, cancel or start is made by: ``actor`` when given, else who is acting
    (:func:`hitl_bus.context.acting_as`), else the current flow run, else ``None`` (a
    program calling the library)."""
    if actor is not None:
        return actor
    acting = acting_as()
    if acting is not None:
        return acting
    run_id = current_run_id()
    return Mailbox(FLOW_RUN, run_id).name if run_id is not None else None


def acting_person() -> Mailbox | None:
    """The mailbox of the person acting here (``acting_as()`` names one), if any."""
    name = person_of(acting_as())
    if name is None:
        return None
    try:
        return Mailbox.for_person(name)
    except ValueError:
        return None


def check_key_prefix(prefix: str) -> str:
    if not _PREFIX_RE.match(prefix):
        raise ValueError(
            f"key prefix {prefix!r} must be lowercase letters, digits and single dashes"
        )
    return prefix


def type_slug(tp: Any) -> str:
    """A prefix-safe name for a type: its class name, without generic arguments.

    ``list[int]`` and ``list`` share ``list`` so that ``send_input([1, 2])`` reaches
    ``receive_input(list[int])``, whose validation then checks the items (as in Prefect).
    """
    try:
        return _type_slug(tp)
    except TypeError:  # an unhashable type expression
        return _type_slug.__wrapped__(tp)


@functools.lru_cache(maxsize=1024)
def _type_slug(tp: Any) -> str:
    origin = typing.get_origin(tp) or tp
    name = getattr(origin, "__name__", None) or getattr(origin, "_name", None) or repr(origin)
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    return slug or "input"


def new_input_key(key_prefix: str) -> str:
    """A fresh input key: ``{key_prefix}-{uuid4}``."""
    return f"{key_prefix}-{uuid4_text()}"


#: Longest input key an application may choose (drawn keys are well under it).
MAX_INPUT_KEY = 200


def check_input_key(key: str) -> str:
    """An input key an application chose (``send_input(..., key=...)``), shaped like drawn ones.

    Lowercase letters, digits and single dashes, as key prefixes: it is stored in the
    stream entry and the run's ``input-keys`` set, and shown in UIs as is.
    """
    if not isinstance(key, str) or len(key) > MAX_INPUT_KEY or not _PREFIX_RE.match(key):
        raise ValueError(
            f"input key {key!r} must be lowercase letters, digits and single dashes "
            f"(at most {MAX_INPUT_KEY} characters)"
        )
    return key
