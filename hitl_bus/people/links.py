"""Single-use answer links: open one pause's form without a login, once.

A link's token is ``<id>.<signature>``: the id names a record in Redis (the run,
the pause key, the assignee it was sent to) that expires with the pause, and the
signature (HMAC-SHA256 with a secret kept in Redis, made on first use) binds the
id to that run and pause, so a record cannot be reused for another. Using the
link deletes the record in the same step that reads it, so it works once.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass

import orjson

from hitl_bus import keys
from hitl_bus.bus import get_bus

_SECRET_KEY = f"{keys.PREFIX}:{{people}}:link-secret"


@dataclass(frozen=True)
class AnswerLink:
    """What a link lets its holder do: answer ``pause_key`` of ``run_id``, as ``assignee``."""

    run_id: str
    pause_key: str
    assignee: str


async def _secret() -> bytes:
    client = get_bus().client
    await client.set(_SECRET_KEY, secrets.token_hex(32), nx=True)
    value = await client.get(_SECRET_KEY)
    assert value is not None
    return bytes(value)


def _signature(secret: bytes, link_id: str, link: AnswerLink) -> str:
    message = "\n".join((link_id, link.run_id, link.pause_key, link.assignee)).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


async def mint(link: AnswerLink, expires_in_s: float) -> str:
    """Make a link's token for ``link``, valid for ``expires_in_s`` seconds (at least 1)."""
    link_id = secrets.token_urlsafe(18)
    record = {"run": link.run_id, "pause": link.pause_key, "assignee": link.assignee}
    ttl_ms = max(1000, math.ceil(expires_in_s * 1000))
    await get_bus().client.set(keys.answer_link(link_id), orjson.dumps(record), px=ttl_ms)
    return f"{link_id}.{_signature(await _secret(), link_id, link)}"


def _parse(token: str) -> tuple[str, str] | None:
    link_id, dot, signature = token.partition(".")
    if not dot or not link_id or len(token) > 200:
        return None
    return link_id, signature


async def _checked(token: str, raw: bytes | None) -> AnswerLink | None:
    parsed = _parse(token)
    if parsed is None or raw is None:
        return None
    record = orjson.loads(raw)
    link = AnswerLink(str(record["run"]), str(record["pause"]), str(record["assignee"]))
    expected = _signature(await _secret(), parsed[0], link)
    return link if hmac.compare_digest(expected, parsed[1]) else None


async def peek(token: str) -> AnswerLink | None:
    """What an unused, unexpired link allows, without using it; None for any other token."""
    parsed = _parse(token)
    if parsed is None:
        return None
    return await _checked(token, await get_bus().client.get(keys.answer_link(parsed[0])))


async def use(token: str) -> AnswerLink | None:
    """Use the link: what it allowed, once; None when it was used, expired or never made."""
    parsed = _parse(token)
    if parsed is None:
        return None
    link = await peek(token)
    if link is None:
        return None
    raw = await get_bus().client.getdel(keys.answer_link(parsed[0]))
    return link if raw is not None else None
